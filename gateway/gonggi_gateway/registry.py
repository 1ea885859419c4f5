"""The node registry (key store): which nodes this gateway accepts, and their keys.

A TOML file, one table per node::

    [nodes."gg-a4cf12"]
    key = "000102...1f"          # hex, at least 16 bytes: the node's HMAC key
    name = "Jongno-gu 3"         # optional
    location = "37.5729,126.9794"  # optional
    previous_key = "a0a1...bf"   # optional: the key before a rotation, accepted until
    previous_key_expires = 2026-11-27T10:00:00Z  # this time (a TOML datetime with an offset)

``Registry.keys`` is the protocol's KeyLookup: the current key, plus the previous one while its
grace period lasts, so packets a node sealed before it was re-keyed (still in its flash ring)
verify. ``Registry.lookup`` is the current key only: what CONTROL messages are sealed with.
The registry notices when the file changed (mtime, size, inode) and reads it again, and
``reload()`` (SIGHUP) forces it, so a field tech can add, remove or re-key a node without
restarting the gateway. A broken edit is logged and the previous keys stay in use.

``edit_registry`` is how ``gonggi gateway node …`` changes the file: under a lock, validated,
written to a temporary file and renamed over the old one, so the gateway never reads half a file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gonggi_gateway.config import ID_PATTERN
from gonggi_gateway.errors import ConfigError

__all__ = [
    "MIN_KEY_BYTES",
    "NodeInfo",
    "Registry",
    "edit_registry",
    "format_registry",
    "key_fingerprint",
    "parse_registry",
    "read_key_file",
]

log = logging.getLogger(__name__)

MIN_KEY_BYTES = 16
_NODE_KEYS = ("key", "name", "location", "previous_key", "previous_key_expires")
_HEADER = (
    "# gonggi node registry: one table per node this gateway accepts (docs/gateway.md).\n"
    "# Written by `gonggi gateway node add|remove|rotate`; hand edits work too, comments are not kept.\n"
)


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    key: bytes
    name: str = ""
    location: str = ""
    previous_key: bytes | None = None  # the key before the last rotation ...
    previous_key_expires: float | None = None  # ... accepted until this Unix time

    def __repr__(self) -> str:  # keys never end up in a log line or a traceback
        return (f"NodeInfo(node_id={self.node_id!r}, key={key_fingerprint(self.key)}, name={self.name!r}, "
                f"location={self.location!r}, previous_key_expires={self.previous_key_expires!r})")

    def in_grace(self, now: float) -> bool:
        """Whether the key before the last rotation still verifies at ``now``."""
        return self.previous_key_expires is not None and now < self.previous_key_expires

    def keys(self, now: float) -> tuple[bytes, ...]:
        """The keys a packet of this node may be sealed with at ``now``, current first."""
        if self.previous_key is not None and self.in_grace(now):
            return (self.key, self.previous_key)
        return (self.key,)


def key_fingerprint(key: bytes) -> str:
    """What may be shown of a key: enough to tell two keys apart, nothing to forge a MAC with."""
    return "sha256:" + hashlib.sha256(key).hexdigest()[:12]


def read_key_file(path: Path) -> bytes:
    """A node key from a file holding its hex (``-``: standard input), so it never sits on a
    command line. Raises ConfigError naming the file."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the key file: {exc.strerror or exc}") from exc
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"{path}: must hold a hex key of at least {MIN_KEY_BYTES} bytes")
    return key


def _hex_key(value: Any, where: str, name: str) -> bytes:
    try:
        key = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        key = b""
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"{where} {name}: must be hex of at least {MIN_KEY_BYTES} bytes ({2 * MIN_KEY_BYTES} hex digits)")
    return key


def _node(node_id: str, entry: Any, where: str) -> NodeInfo:
    if not ID_PATTERN.fullmatch(node_id) or len(node_id) > 23:
        raise ConfigError(f"{where}: node id must be 1..23 letters, digits, '.', '_' or '-'")
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: must be a table with key, name, location")
    unknown = sorted(set(entry) - set(_NODE_KEYS))
    if unknown:
        raise ConfigError(f"{where} unknown key {unknown[0]!r} (allowed: {', '.join(_NODE_KEYS)})")
    key = _hex_key(entry.get("key"), where, "key")
    texts = {k: entry.get(k, "") for k in ("name", "location")}
    for k, v in texts.items():
        if not isinstance(v, str):
            raise ConfigError(f"{where} {k}: must be a string, got {v!r}")
    previous, expires = entry.get("previous_key"), entry.get("previous_key_expires")
    if (previous is None) != (expires is None):
        raise ConfigError(f"{where} previous_key: previous_key and previous_key_expires go together")
    if expires is not None and (not isinstance(expires, datetime) or expires.tzinfo is None):
        raise ConfigError(f"{where} previous_key_expires: must be a TOML date-time with an offset "
                          f"(2026-11-27T10:00:00Z), got {expires!r}")
    return NodeInfo(
        node_id, key, **texts,
        previous_key=None if previous is None else _hex_key(previous, where, "previous_key"),
        previous_key_expires=None if expires is None else expires.timestamp(),
    )


def parse_registry(data: Mapping[str, Any], source: str) -> dict[str, NodeInfo]:
    """Validate a parsed registry document; errors name the file and the key."""
    extra = sorted(set(data) - {"nodes"})
    if extra:
        raise ConfigError(f"{source}: unknown key {extra[0]!r} (allowed: nodes)")
    nodes = data.get("nodes", {})
    if not isinstance(nodes, Mapping):
        raise ConfigError(f"{source}: nodes must be a table of [nodes.\"<node id>\"] tables")
    return {node_id: _node(node_id, entry, f'{source}: [nodes."{node_id}"]') for node_id, entry in nodes.items()}


def _toml_string(text: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes, \uXXXX included).
    return json.dumps(text, ensure_ascii=False)


def format_registry(nodes: Mapping[str, NodeInfo]) -> str:
    """The registry file for ``nodes``, in the canonical form ``edit_registry`` writes."""
    lines = [_HEADER]
    for node_id in sorted(nodes):
        info = nodes[node_id]
        lines.append(f"[nodes.{_toml_string(node_id)}]")
        lines.append(f'key = "{info.key.hex()}"')
        if info.name:
            lines.append(f"name = {_toml_string(info.name)}")
        if info.location:
            lines.append(f"location = {_toml_string(info.location)}")
        if info.previous_key is not None and info.previous_key_expires is not None:
            expires = datetime.fromtimestamp(info.previous_key_expires, UTC).isoformat(timespec="seconds")
            lines.append(f'previous_key = "{info.previous_key.hex()}"')
            lines.append(f"previous_key_expires = {expires.replace('+00:00', 'Z')}")
        lines.append("")
    return "\n".join(lines)


def _read(path: Path) -> dict[str, NodeInfo]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: node registry not found (create it: see docs/gateway.md)") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the node registry: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_registry(data, str(path))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise editors of one registry (two techs, or a script and a tech)."""
    lock = path.with_name(f".{path.name}.lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot lock the node registry: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_atomically(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, rename over ``path``, fsync the directory.

    The new file keeps the old one's mode and owner (the gateway's group must still read it);
    a new registry is readable by its owner only: it holds keys.
    """
    try:
        st: os.stat_result | None = path.stat()
    except FileNotFoundError:
        st = None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            if st is not None:
                os.fchmod(f.fileno(), st.st_mode & 0o7777)
                if os.geteuid() == 0:
                    os.fchown(f.fileno(), st.st_uid, st.st_gid)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def edit_registry(path: str | Path,
                  change: Callable[[dict[str, NodeInfo]], dict[str, NodeInfo]]) -> dict[str, NodeInfo]:
    """Apply ``change`` to the registry at ``path`` atomically; returns the new nodes.

    A missing file counts as empty. ``change`` may raise ConfigError to refuse (the file stays as
    it was). Rotated-out keys whose grace is over are dropped. The result is validated by
    reading it back before it replaces the old file.
    """
    path = Path(path)
    try:
        with _locked(path):
            nodes = _read(path) if path.exists() else {}
            now = time.time()
            new = {node_id: info if info.previous_key is None or info.in_grace(now)
                   else replace(info, previous_key=None, previous_key_expires=None)  # expired: gone
                   for node_id, info in change(dict(nodes)).items()}
            text = format_registry(new)
            parsed = parse_registry(tomllib.loads(text), str(path))
            if parsed != new:  # a bug in format_registry must not reach the gateway
                raise ConfigError(f"{path}: internal error: the registry does not read back as written")
            _write_atomically(path, text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the node registry: {exc.strerror or exc}") from exc
    return new


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class Registry:
    """Node keys from a TOML file, re-read when the file changes."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._signature = _signature(self.path)
        self._nodes = _read(self.path)  # at start-up a broken registry is fatal: ConfigError
        self._failed: tuple[int, int, int] | None = None

    @property
    def nodes(self) -> Mapping[str, NodeInfo]:
        self.refresh()
        return dict(self._nodes)

    def refresh(self) -> bool:
        """Re-read the file if it changed; True if new contents were loaded."""
        sig = _signature(self.path)
        if sig == self._signature or sig == self._failed:
            return False
        return self._load(sig)

    def reload(self) -> bool:
        """Re-read the file now, changed or not (SIGHUP); True if it loaded."""
        log.info("registry reload requested path=%s", self.path)
        return self._load(_signature(self.path))

    def _load(self, sig: tuple[int, int, int] | None) -> bool:
        try:
            nodes = _read(self.path)
        except ConfigError as exc:
            # A half-saved or mistyped edit must not take every node offline: keep the old keys.
            self._failed = sig
            log.error("registry reload failed, keeping %d known nodes: %s", len(self._nodes), exc)
            return False
        added = sorted(set(nodes) - set(self._nodes))
        removed = sorted(set(self._nodes) - set(nodes))
        changed = sorted(n for n in set(nodes) & set(self._nodes) if nodes[n] != self._nodes[n])
        log.info("registry reloaded path=%s nodes=%d added=%s removed=%s changed=%s",
                 self.path, len(nodes), added, removed, changed)
        self._nodes, self._signature, self._failed = nodes, sig, None
        return True

    def get(self, node_id: str) -> NodeInfo | None:
        self.refresh()
        return self._nodes.get(node_id)

    def lookup(self, node_id: str) -> bytes | None:
        """The node's current key (what CONTROL messages are sealed with), or None if unknown."""
        info = self.get(node_id)
        return None if info is None else info.key

    def keys(self, node_id: str) -> tuple[bytes, ...]:
        """The protocol's KeyLookup: every key the node's packets may carry now (empty if unknown)."""
        info = self.get(node_id)
        return () if info is None else info.keys(self._clock())
