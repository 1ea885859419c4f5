"""The gateway's exceptions: one root, structured subclasses, library errors translated at the boundary."""

from __future__ import annotations

__all__ = [
    "GatewayError",
    "ConfigError",
    "ProtocolError",
    "FrameError",
    "MalformedPacket",
    "UnknownNode",
    "BadMac",
    "LinkError",
    "UplinkError",
    "UplinkRejected",
    "StorageError",
]


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """A configuration file or value that cannot be used; the message names file, key and allowed values."""


class ProtocolError(GatewayError):
    """Bytes from a node that are not a valid gonggi message. ``reason`` is the metric label."""

    reason = "malformed"


class FrameError(ProtocolError):
    reason = "frame"


class MalformedPacket(ProtocolError):
    reason = "malformed"


class UnknownNode(ProtocolError):
    reason = "unknown_node"

    def __init__(self, node_id: str) -> None:
        super().__init__(f"no key for node {node_id!r}")
        self.node_id = node_id


class BadMac(ProtocolError):
    reason = "bad_mac"

    def __init__(self, node_id: str) -> None:
        super().__init__(f"MAC check failed for a packet claiming to be from node {node_id!r}")
        self.node_id = node_id


class LinkError(GatewayError):
    """A link to nodes (serial port, BLE adapter) failed."""


class UplinkError(GatewayError):
    """An upstream (MQTT broker, HTTP endpoint) refused or could not be reached; the batch is
    sent again later. ``retry_after``: seconds upstream asked to wait (HTTP Retry-After)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UplinkRejected(UplinkError):
    """Upstream refused a batch for good (an HTTP 4xx): sending it again cannot help."""


class StorageError(GatewayError):
    """The spool or the archive (SQLite) cannot be opened or written: disk full, I/O error, newer schema."""
