"""``gonggi gateway install``, ``gonggi gateway node add|remove|rotate|list`` and
``gonggi gateway dead-letters list|resend|drop`` (in dead_letters.py).

Node commands edit the registry file atomically (``registry.edit_registry``); a running gateway
notices the new file before its next packet, so nothing needs a restart. Keys are never
printed: they travel in key files (mode 600), and listings show a fingerprint.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from gonggi_gateway.errors import ConfigError
from gonggi_gateway.ops.dead_letters import add_dead_letter_commands
from gonggi_gateway.registry import NodeInfo, Registry, edit_registry, key_fingerprint, read_key_file

__all__ = ["DEFAULT_GRACE", "add_commands", "parse_duration"]

DEFAULT_GRACE = "24h"  # how long a rotated-out key still verifies: a node's backlog sealed with it
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``24h``, ``7d`` -> seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use 90s, 15m, 24h or 7d)")
    return float(match[1]) * _UNITS[match[2]]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``install``, ``node`` and ``dead-letters`` under ``gonggi gateway``."""
    inst = commands.add_parser("install", help="install the systemd unit, a default configuration and the state dir")
    inst.add_argument("--prefix", type=Path, default=Path("/"), metavar="DIR",
                      help="put the files under DIR instead of / (package builds, images); nothing else is set up")
    inst.add_argument("--dry-run", action="store_true", help="only say what would be done")
    inst.add_argument("--id", dest="gateway_id", metavar="ID", help="the gateway id (default: gw-<hostname>)")
    inst.add_argument("--gonggi", type=Path, metavar="PATH",
                      help="the gonggi command the unit runs (default: this one)")
    inst.set_defaults(func=_install)

    node = commands.add_parser("node", help="add, remove, re-key or list the nodes of the registry (no restart)")
    sub = node.add_subparsers(dest="node_command", metavar="COMMAND", required=True)
    add = sub.add_parser("add", help="accept a new node")
    remove = sub.add_parser("remove", help="stop accepting a node")
    rotate = sub.add_parser("rotate", help="give a node a new key; the old one verifies for --grace more")
    listing = sub.add_parser("list", help="the registered nodes (key fingerprints, never keys)")
    for p in (add, remove, rotate, listing):
        p.add_argument("--registry", "-r", type=Path, required=True, metavar="FILE", help="the node registry (TOML)")
    for p in (add, remove, rotate):
        p.add_argument("node_id", metavar="NODE")
    for p in (add, rotate):
        source = p.add_mutually_exclusive_group(required=True)
        source.add_argument("--key-file", type=Path, metavar="FILE",
                            help="read the node's key (hex) from FILE, '-' for stdin")
        source.add_argument("--generate-key", type=Path, metavar="FILE",
                            help="make a random 32-byte key and write it (hex, mode 600) to FILE, "
                                 "for provisioning the node")
    for p in (add,):
        p.add_argument("--name", default="", help="shown on the status page")
        p.add_argument("--location", default="", help="free text, e.g. 37.5729,126.9794")
    rotate.add_argument("--grace", type=parse_duration, default=parse_duration(DEFAULT_GRACE), metavar="DURATION",
                        help=f"how long packets sealed with the old key still verify (default {DEFAULT_GRACE})")
    add.set_defaults(func=_add)
    remove.set_defaults(func=_remove)
    rotate.set_defaults(func=_rotate)
    listing.set_defaults(func=_list)
    add_dead_letter_commands(commands)


def _fail(message: str, status: int = 2) -> int:
    print(f"gonggi gateway: {message}", file=sys.stderr)
    return status


def _install(args: argparse.Namespace) -> int:
    from gonggi_gateway.ops.systemd import InstallPlan, default_gateway_id, gonggi_executable, install

    plan = InstallPlan(args.prefix.resolve(), args.gonggi or gonggi_executable(),
                       args.gateway_id or default_gateway_id())
    try:
        install(plan, dry_run=args.dry_run)
    except (OSError, ValueError) as exc:
        return _fail(f"install failed: {exc}", 1)
    return 0


class _NewKey:
    """A generated key, in its file before the registry names it; removed again if that fails."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.key = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError as exc:
            raise ConfigError(f"{path}: exists; a generated key never overwrites a file") from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write the key file: {exc.strerror or exc}") from exc
        with os.fdopen(fd, "w") as f:
            f.write(self.key.hex() + "\n")

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


# A registry edit: the nodes as they are and the key given (or b"") -> the nodes as they shall be.
_Change = Callable[[dict[str, NodeInfo], bytes], dict[str, NodeInfo]]


def _key_for(args: argparse.Namespace) -> tuple[bytes, _NewKey | None]:
    if args.generate_key is not None:
        new = _NewKey(args.generate_key)
        return new.key, new
    return read_key_file(args.key_file), None


def _edit(args: argparse.Namespace, change: _Change, done: str, *, with_key: bool) -> int:
    new: _NewKey | None = None
    try:
        key, new = _key_for(args) if with_key else (b"", None)
        edit_registry(args.registry, lambda nodes: change(nodes, key))
    except ConfigError as exc:
        if new is not None:
            new.discard()
        return _fail(str(exc))
    suffix = f"; key written to {new.path}" if new is not None else ""
    print(f"{done}{suffix}. A running gateway uses it from its next packet.")
    return 0


def _add(args: argparse.Namespace) -> int:
    def change(nodes: dict[str, NodeInfo], key: bytes) -> dict[str, NodeInfo]:
        if args.node_id in nodes:
            raise ConfigError(f"{args.registry}: node {args.node_id} is already registered (to re-key it: rotate)")
        nodes[args.node_id] = NodeInfo(args.node_id, key, args.name, args.location)
        return nodes

    return _edit(args, change, f"added {args.node_id} to {args.registry}", with_key=True)


def _remove(args: argparse.Namespace) -> int:
    def change(nodes: dict[str, NodeInfo], _key: bytes) -> dict[str, NodeInfo]:
        if nodes.pop(args.node_id, None) is None:
            raise ConfigError(f"{args.registry}: no node {args.node_id} in the registry")
        return nodes

    return _edit(args, change, f"removed {args.node_id} from {args.registry}", with_key=False)


def _rotate(args: argparse.Namespace) -> int:
    def change(nodes: dict[str, NodeInfo], key: bytes) -> dict[str, NodeInfo]:
        old = nodes.get(args.node_id)
        if old is None:
            raise ConfigError(f"{args.registry}: no node {args.node_id} in the registry (to register it: add)")
        if key == old.key:
            raise ConfigError(f"{args.registry}: node {args.node_id} already has this key")
        # Whole seconds: the file stores a TOML date-time to the second.
        expires = float(int(time.time() + args.grace)) if args.grace > 0 else None
        nodes[args.node_id] = NodeInfo(args.node_id, key, old.name, old.location,
                                       previous_key=old.key if expires is not None else None,
                                       previous_key_expires=expires)
        return nodes

    grace = f"{args.grace:g} s" if args.grace else "no grace"
    return _edit(args, change, f"rotated the key of {args.node_id} in {args.registry} (old key verifies for {grace})",
                 with_key=True)


def _list(args: argparse.Namespace) -> int:
    try:
        nodes = Registry(args.registry).nodes
    except ConfigError as exc:
        return _fail(str(exc))
    now = time.time()
    for node_id in sorted(nodes):
        info = nodes[node_id]
        rotation = ""
        if info.previous_key_expires is not None and info.in_grace(now):
            until = datetime.fromtimestamp(info.previous_key_expires, UTC).isoformat(timespec="seconds")
            rotation = f"  previous key until {until.replace('+00:00', 'Z')}"
        print(f"{node_id}  key {key_fingerprint(info.key)}  name {info.name or '-'}  "
              f"location {info.location or '-'}{rotation}")
    print(f"{len(nodes)} node(s) in {args.registry}")
    return 0
