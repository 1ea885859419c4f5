"""``gonggi gateway install``: the systemd unit, the service user, a default configuration, the state dir.

Paths are the installed system's (``/etc/gonggi``, ``/var/lib/gonggi``); ``prefix`` puts the files
under another root first (a package build, an image, a test), like DESTDIR. Existing
configuration and registry files are never overwritten; the unit and the sysusers entry are.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from gonggi_gateway.config import ID_PATTERN
from gonggi_gateway.registry import format_registry

__all__ = [
    "CONFIG_DIR",
    "STATE_DIR",
    "SYSUSERS",
    "UNIT_NAME",
    "USER",
    "InstallPlan",
    "default_config",
    "default_gateway_id",
    "gonggi_executable",
    "install",
    "render_unit",
]

UNIT_NAME = "gonggi-gateway.service"
USER = "gonggi"
CONFIG_DIR = Path("/etc/gonggi")
STATE_DIR = Path("/var/lib/gonggi")
SYSUSERS = f'u {USER} - "gonggi gateway" {STATE_DIR}\nm {USER} dialout\n'


def gonggi_executable() -> Path:
    """The ``gonggi`` command of the running installation (a venv's, or the one on PATH)."""
    beside = Path(sys.executable).parent / "gonggi"
    if beside.exists():
        return beside
    found = shutil.which("gonggi")
    return Path(found) if found else Path("/usr/local/bin/gonggi")


def render_unit(gonggi: Path, config: Path = CONFIG_DIR / "gateway.toml", state_dir: Path = STATE_DIR) -> str:
    template = files("gonggi_gateway.ops").joinpath("data/gonggi-gateway.service.in").read_text(encoding="utf-8")
    return (template.replace("@GONGGI@", str(gonggi)).replace("@CONFIG@", str(config))
            .replace("@STATE_DIR@", str(state_dir)))


def default_config(gateway_id: str, state_dir: Path = STATE_DIR) -> str:
    return f"""\
# gonggi gateway configuration, written by `gonggi gateway install`. Reference: docs/gateway.md
# and docs/operations.md. Check it with `gonggi gateway check --config {CONFIG_DIR / 'gateway.toml'}`.

[gateway]
id = "{gateway_id}"
spool = "{state_dir / 'spool.sqlite'}"
registry = "nodes.toml"            # beside this file; edit with `gonggi gateway node`
synchronous = "full"               # an acked packet survives a power cut

# One table per node's serial link; prefer /dev/serial/by-id/... paths.
# [[serial]]
# port = "/dev/serial/by-id/usb-..."

# Upstream broker; without [mqtt] every reading stays in the local archive.
# [mqtt]
# host = "broker.example"

[archive]
path = "{state_dir / 'archive.sqlite'}"

[http]
listen = "127.0.0.1:9100"          # /metrics, /healthz, the status page

[logging]
format = "json"                    # one JSON object per line in the journal
level = "info"
"""


def default_gateway_id() -> str:
    """``gw-<hostname>``, made a valid gateway id."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).strip("-._")[:60]
    return f"gw-{name}" if name and ID_PATTERN.fullmatch(f"gw-{name}") else "gw-1"


@dataclass(frozen=True)
class _File:
    path: Path  # on the installed system
    text: str
    mode: int
    replace: bool  # ours (unit, sysusers) or the operator's (configuration, keys)
    group: str | None = None  # chown root:group when installing for real


@dataclass
class InstallPlan:
    """What ``install`` does, so ``--dry-run`` and the real thing cannot disagree."""

    prefix: Path
    gonggi: Path
    gateway_id: str

    def files(self) -> list[_File]:
        return [
            _File(Path("/etc/systemd/system") / UNIT_NAME, render_unit(self.gonggi), 0o644, True),
            _File(Path("/etc/sysusers.d/gonggi.conf"), SYSUSERS, 0o644, True),
            _File(CONFIG_DIR / "gateway.toml", default_config(self.gateway_id), 0o640, False, USER),
            # Keys: readable by the gateway's group, writable by root (`gonggi gateway node`).
            _File(CONFIG_DIR / "nodes.toml", format_registry({}), 0o640, False, USER),
        ]

    def staged(self, path: Path) -> Path:
        return self.prefix / path.relative_to("/")

    @property
    def for_real(self) -> bool:
        """Installing into the running system as root: users and ownership can be set up too."""
        return self.prefix == Path("/") and os.geteuid() == 0


def _owner_ids(user: str) -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def install(plan: InstallPlan, *, dry_run: bool = False, say: Callable[[str], None] = print) -> None:
    """Write the files and create the state directory; ``say`` reports every step."""
    verb = "would " if dry_run else ""
    for f in plan.files():
        target = plan.staged(f.path)
        if target.exists() and not f.replace:
            say(f"kept {target} (exists)")
            continue
        say(f"{verb}write {target} (mode {f.mode:o})")
        if dry_run:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.new")
        tmp.write_text(f.text, encoding="utf-8")
        tmp.chmod(f.mode)
        tmp.replace(target)
    state = plan.staged(STATE_DIR)
    say(f"{verb}create {state} (mode 750)")
    if not dry_run:
        state.mkdir(parents=True, exist_ok=True)
        state.chmod(0o750)
    if plan.for_real and not dry_run:
        _set_up_user(plan, say)
    say(f"next: add nodes with `gonggi gateway node add NODE --registry {CONFIG_DIR / 'nodes.toml'} ...`, then "
        f"`systemctl daemon-reload && systemctl enable --now {UNIT_NAME}`")


def _set_up_user(plan: InstallPlan, say: Callable[[str], None]) -> None:
    subprocess.run(["systemd-sysusers", "/etc/sysusers.d/gonggi.conf"], check=True)
    ids = _owner_ids(USER)
    if ids is None:
        raise OSError(f"user {USER} was not created by systemd-sysusers")
    uid, gid = ids
    for f in plan.files():
        if f.group is not None:
            os.chown(f.path, 0, gid)
    os.chown(STATE_DIR, uid, gid)
    say(f"created user {USER}; {CONFIG_DIR} readable by its group, {STATE_DIR} owned by it")
