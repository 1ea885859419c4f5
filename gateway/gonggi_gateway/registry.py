"""The node registry (key store): which nodes this gateway accepts, and their keys.

A TOML file, one table per node::

    [nodes."gg-a4cf12"]
    key = "000102...1f"          # hex, at least 16 bytes: the node's HMAC key
    name = "Jongno-gu 3"         # optional
    location = "37.5729,126.9794"  # optional

``Registry.lookup`` is the protocol's KeyLookup. It notices when the file changed (mtime, size,
inode) and reads it again, so a field tech can add a node or rotate a key without restarting
the gateway. A broken edit is logged and the previous keys stay in use.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gonggi_gateway.config import ID_PATTERN
from gonggi_gateway.errors import ConfigError

__all__ = ["MIN_KEY_BYTES", "NodeInfo", "Registry", "parse_registry"]

log = logging.getLogger(__name__)

MIN_KEY_BYTES = 16
_NODE_KEYS = ("key", "name", "location")


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    key: bytes
    name: str = ""
    location: str = ""


def parse_registry(data: Mapping[str, Any], source: str) -> dict[str, NodeInfo]:
    """Validate a parsed registry document; errors name the file and the key."""
    extra = sorted(set(data) - {"nodes"})
    if extra:
        raise ConfigError(f"{source}: unknown key {extra[0]!r} (allowed: nodes)")
    nodes = data.get("nodes", {})
    if not isinstance(nodes, Mapping):
        raise ConfigError(f"{source}: nodes must be a table of [nodes.\"<node id>\"] tables")
    out: dict[str, NodeInfo] = {}
    for node_id, entry in nodes.items():
        where = f'{source}: [nodes."{node_id}"]'
        if not ID_PATTERN.fullmatch(node_id) or len(node_id) > 23:
            raise ConfigError(f"{where}: node id must be 1..23 letters, digits, '.', '_' or '-'")
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: must be a table with key, name, location")
        unknown = sorted(set(entry) - set(_NODE_KEYS))
        if unknown:
            raise ConfigError(f"{where} unknown key {unknown[0]!r} (allowed: {', '.join(_NODE_KEYS)})")
        hex_key = entry.get("key")
        try:
            key = bytes.fromhex(hex_key) if isinstance(hex_key, str) else b""
        except ValueError:
            key = b""
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"{where} key: must be hex of at least {MIN_KEY_BYTES} bytes ({2 * MIN_KEY_BYTES} hex digits)")
        texts = {k: entry.get(k, "") for k in ("name", "location")}
        for k, v in texts.items():
            if not isinstance(v, str):
                raise ConfigError(f"{where} {k}: must be a string, got {v!r}")
        out[node_id] = NodeInfo(node_id, key, **texts)
    return out


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


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class Registry:
    """Node keys from a TOML file, re-read when the file changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
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
        """The protocol's KeyLookup: the node's key, or None for a node this gateway does not know."""
        info = self.get(node_id)
        return None if info is None else info.key
