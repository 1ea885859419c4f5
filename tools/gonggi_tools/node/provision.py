"""``gonggi node provision``: a board gets a node identity and key, its site's config.json, and a
place in the gateway's node registry. The key is made here, written to the registry (a file only
the gateway reads) and to the board, and never printed: output shows its fingerprint.

Re-running it is safe: a node already in the registry keeps its key unless ``rekey`` is asked
for (the old key then still verifies for a grace period: packets the node sealed with it may
still sit in its flash ring).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from gonggi_gateway.config import ID_PATTERN
from gonggi_gateway.errors import ConfigError
from gonggi_gateway.ops.commands import DEFAULT_GRACE, parse_duration
from gonggi_gateway.registry import NodeInfo, edit_registry, key_fingerprint
from gonggi_gateway.registry import read_key_file as registry_key_file
from gonggi_tools.node.board import Board, BoardInfo
from gonggi_tools.node.bus import require_sensors
from gonggi_tools.node.errors import SiteError
from gonggi_tools.node.flash import Identity
from gonggi_tools.node.site import Site
from gonggi_tools.node.ui import Ui

__all__ = ["Enrollment", "default_node_id", "provision", "read_key_file", "register"]

KEY_BYTES = 32


@dataclass(frozen=True)
class Enrollment:
    identity: Identity
    outcome: str  # "registered" | "already registered, key kept" | "re-keyed ..."
    fingerprint: str


def default_node_id(info: BoardInfo) -> str:
    """"gg-" and the board's MAC: unique, stable across reflashing, readable off the chip's label."""
    return f"gg-{info.uid}"


def read_key_file(path: Path) -> bytes:
    """The gateway's key-file reader, its errors as the field tools' (exit status 2)."""
    try:
        return registry_key_file(path)
    except ConfigError as exc:
        raise SiteError(str(exc)) from None


def register(registry: Path, node_id: str, *, key: bytes | None = None, rekey: bool = False,
             name: str = "", location: str = "") -> Enrollment:
    """Add or update ``node_id`` in the registry; the key: ``key``, else the registered one, else new."""
    if not ID_PATTERN.fullmatch(node_id) or len(node_id) > 23:
        raise SiteError(f"node id {node_id!r}: must be 1..23 letters, digits, '.', '_' or '-'")
    result: list[Enrollment] = []

    def change(nodes: dict[str, NodeInfo]) -> dict[str, NodeInfo]:
        old = nodes.get(node_id)
        if old is not None and key is not None and key != old.key and not rekey:
            raise SiteError(f"{registry}: node {node_id} is registered with another key "
                            f"({key_fingerprint(old.key)})", hint="to give it this key, add --rekey")
        new_key = key or (old.key if old is not None and not rekey else secrets.token_bytes(KEY_BYTES))
        previous, expires = None, None
        if old is None:
            outcome = "registered"
        elif new_key == old.key:
            outcome = "already registered, key kept"
        else:
            outcome = "re-keyed (the old key verifies for another " + DEFAULT_GRACE + ")"
            previous, expires = old.key, float(int(time.time() + parse_duration(DEFAULT_GRACE)))
        nodes[node_id] = NodeInfo(node_id, new_key, name or (old.name if old else ""),
                                  location or (old.location if old else ""),
                                  previous_key=previous, previous_key_expires=expires)
        result.append(Enrollment(Identity(node_id, new_key), outcome, key_fingerprint(new_key)))
        return nodes

    try:
        edit_registry(registry, change)
    except ConfigError as exc:
        raise SiteError(str(exc)) from None
    return result[-1]


def provision(board: Board, info: BoardInfo, site: Site, ui: Ui, *, registry: Path, node_id: str | None,
              key: bytes | None, rekey: bool, name: str, location: str, bus_check: bool) -> Identity:
    """Check the sensors are there, register the node, write its config.json; returns who it is."""
    node_id = node_id or default_node_id(info)
    if bus_check:
        reports = require_sensors(board, site.i2c_sensors())
        for r in reports:
            ui.ok(f"{r.sensor.name}: {r.describe()}")
    # The registry first: if the board then cannot be written, a re-run finds the same key there.
    enrollment = register(registry, node_id, key=key, rekey=rekey, name=name, location=location)
    ui.ok(f"node {node_id} {enrollment.outcome} in {registry} (key {enrollment.fingerprint})")
    config = site.config(node_id, enrollment.identity.key)
    board.replace_file("config.json", json.dumps(config, separators=(",", ":")).encode())
    sensors = ", ".join(s.get("name", s["driver"]) for s in site.sensors) or "no sensors"
    ui.ok(f"config.json written to the board: {site.link['kind']} link, {sensors}")
    return enrollment.identity
