"""gonggi messages over any link: node data packets, node hellos, gateway control messages.

Specified in docs/protocol.md; the vectors in tests/vectors/ pin the exact bytes.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cbor2

from gonggi_gateway.errors import BadMac, MalformedPacket, UnknownNode
from gonggi_gateway.protocol.cose import Mac0, mac0_decode, mac0_encode, mac0_verify
from gonggi_gateway.protocol.senml import RELATIVE_TIME_LIMIT, Record, decode_pack

__all__ = [
    "KeyLookup",
    "DataPacket",
    "Hello",
    "Control",
    "Ack",
    "decode_data",
    "decode_hello",
    "encode_control",
    "decode_control",
    "encode_hello",
    "open_mac0",
]

# A node's key, or every key its packets may carry (after a key rotation, the previous key for a
# grace period: docs/gateway.md); None or empty for a node the gateway does not know.
KeyLookup = Callable[[str], "bytes | Sequence[bytes] | None"]

# HELLO payload keys
_HELLO_FW, _HELLO_BACKLOG, _HELLO_UPTIME, _HELLO_FLAGS, _HELLO_SYNCED, _HELLO_DROPPED = 1, 2, 3, 4, 5, 6
# CONTROL payload keys
_CTL_ACKS, _CTL_TIME, _CTL_CONFIG = 1, 2, 3


def open_mac0(data: bytes, keys: KeyLookup) -> Mac0:
    """Parse and verify a COSE_Mac0 from a node: MalformedPacket, UnknownNode or BadMac otherwise."""
    msg = mac0_decode(data)
    found = keys(msg.node_id)
    if not found:
        raise UnknownNode(msg.node_id)
    *first, last = (found,) if isinstance(found, bytes) else found
    for key in first:
        with contextlib.suppress(BadMac):
            mac0_verify(msg, key)
            return msg
    mac0_verify(msg, last)
    return msg


@dataclass(frozen=True)
class DataPacket:
    """A verified data packet. ``records`` carry node time; ``wall_time()`` maps it to Unix time."""

    node_id: str
    boot: int
    seq: int
    uptime_ms: int  # the node's uptime when it sent this copy (link level, outside the MAC)
    records: tuple[Record, ...]
    cose: bytes

    @property
    def synced(self) -> bool:
        return all(r.time >= RELATIVE_TIME_LIMIT for r in self.records)

    def wall_time(self, node_time: float, received_at: float) -> float:
        """Unix time of a record: absolute as sent, or boot-relative mapped through the send uptime."""
        if node_time >= RELATIVE_TIME_LIMIT:
            return node_time
        # Both uptimes are ms since the same boot; the u32 wraps after 49.7 days.
        age_ms = (self.uptime_ms - round(node_time * 1000)) % 2**32
        return received_at - age_ms / 1000


def decode_data(body: bytes, keys: KeyLookup) -> DataPacket:
    """Decode the body of a DATA frame: u32 BE uptime_ms, then the COSE_Mac0 packet."""
    if len(body) < 5:
        raise MalformedPacket("DATA frame too short")
    (uptime_ms,) = struct.unpack_from(">I", body)
    cose = bytes(body[4:])
    msg = open_mac0(cose, keys)
    records = decode_pack(msg.payload)
    return DataPacket(msg.node_id, msg.boot, msg.seq, uptime_ms, tuple(records), cose)


@dataclass(frozen=True)
class Hello:
    """A node's status: sent at boot, when its link comes up, and as a heartbeat."""

    node_id: str
    boot: int
    firmware: str
    backlog: int
    uptime_ms: int
    flags: int
    synced: bool
    dropped: int


def _payload_map(msg: Mac0, what: str) -> dict[Any, Any]:
    try:
        body = cbor2.loads(msg.payload)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise MalformedPacket(f"{what} payload is not CBOR: {exc}") from exc
    if not isinstance(body, Mapping):
        raise MalformedPacket(f"{what} payload must be a map")
    return body


def decode_hello(body: bytes, keys: KeyLookup) -> Hello:
    msg = open_mac0(body, keys)
    m = _payload_map(msg, "HELLO")
    try:
        return Hello(
            node_id=msg.node_id,
            boot=msg.boot,
            firmware=str(m.get(_HELLO_FW, "")),
            backlog=int(m.get(_HELLO_BACKLOG, 0)),
            uptime_ms=int(m.get(_HELLO_UPTIME, 0)),
            flags=int(m.get(_HELLO_FLAGS, 0)),
            synced=bool(m.get(_HELLO_SYNCED, False)),
            dropped=int(m.get(_HELLO_DROPPED, 0)),
        )
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: int(inf)
        raise MalformedPacket(f"HELLO field of the wrong type: {exc}") from exc


def encode_hello(key: bytes, hello: Hello, seq: int = 0) -> bytes:
    """What a node sends (used by tests and the Python node simulator)."""
    payload = cbor2.dumps(
        {
            _HELLO_FW: hello.firmware,
            _HELLO_BACKLOG: hello.backlog,
            _HELLO_UPTIME: hello.uptime_ms,
            _HELLO_FLAGS: hello.flags,
            _HELLO_SYNCED: hello.synced,
            _HELLO_DROPPED: hello.dropped,
        }
    )
    return mac0_encode(key, hello.node_id.encode(), hello.boot, seq, payload)


@dataclass(frozen=True)
class Ack:
    """Packets ``first..last`` (inclusive) of boot ``boot`` are durably stored: the node may forget them."""

    boot: int
    first: int
    last: int


@dataclass(frozen=True)
class Control:
    """Gateway -> node. Bound to the node's current boot, so it cannot be replayed into a later boot."""

    node_id: str
    boot: int
    acks: tuple[Ack, ...] = ()
    time_ms: int | None = None
    config: dict[str, Any] = field(default_factory=dict)


def encode_control(key: bytes, ctl: Control, seq: int = 0) -> bytes:
    body: dict[int, Any] = {}
    if ctl.acks:
        body[_CTL_ACKS] = [[a.boot, a.first, a.last] for a in ctl.acks]
    if ctl.time_ms is not None:
        body[_CTL_TIME] = ctl.time_ms
    if ctl.config:
        body[_CTL_CONFIG] = ctl.config
    return mac0_encode(key, ctl.node_id.encode(), ctl.boot, seq, cbor2.dumps(body))


def decode_control(data: bytes, key: bytes) -> Control:
    msg = mac0_decode(data)
    mac0_verify(msg, key)
    m = _payload_map(msg, "CONTROL")
    try:
        acks = tuple(Ack(int(b), int(f), int(last)) for b, f, last in m.get(_CTL_ACKS, ()))
        time_ms = m.get(_CTL_TIME)
        return Control(msg.node_id, msg.boot, acks, None if time_ms is None else int(time_ms), dict(m.get(_CTL_CONFIG, {})))
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: int(inf)
        raise MalformedPacket(f"CONTROL field of the wrong type: {exc}") from exc
