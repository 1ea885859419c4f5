"""Read a node's data UART and decode what it sends with the gateway's own protocol code.

``gonggi node monitor`` shows each packet with its verification status; ``gonggi node flash``
uses the same reader to wait for the first packet of a freshly flashed node. The monitor only
listens: it never acknowledges, so a node without a gateway sends its packets again (shown as
"repeat") until one answers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import serial

from gonggi_gateway.errors import BadMac, MalformedPacket, ProtocolError, UnknownNode
from gonggi_gateway.protocol import FrameDecoder, FrameType, KeyLookup, decode_data, decode_hello, mac0_decode
from gonggi_gateway.protocol.framing import FLAG
from gonggi_tools.node.board import BAUDRATE, check_port, open_error

__all__ = ["Packet", "PacketReader", "open_data_port", "read_packets"]

_KIND = {FrameType.DATA: "DATA", FrameType.HELLO: "HELLO", FrameType.CONTROL: "CONTROL"}


@dataclass(frozen=True)
class Packet:
    """One thing seen on the line: a packet (verified or why not) or a damaged frame."""

    kind: str  # "DATA" | "HELLO" | "CONTROL" | "frame"
    status: str  # "verified" | "repeat" | "unknown node" | "bad MAC" | "malformed" | "damaged"
    node_id: str = ""
    boot: int | None = None
    seq: int | None = None
    detail: str = ""

    @property
    def verified(self) -> bool:
        return self.status in ("verified", "repeat")


@dataclass
class PacketReader:
    """Feed it bytes from the data UART; get back what they held."""

    keys: KeyLookup
    _frames: FrameDecoder = field(default_factory=FrameDecoder)
    _seen: set[tuple[str, int, int]] = field(default_factory=set)

    def feed(self, data: bytes) -> list[Packet]:
        # Up to each flag byte at a time, so a damaged frame is reported where it was on the line.
        out: list[Packet] = []
        start = 0
        while start < len(data):
            end = data.find(FLAG, start)
            end = len(data) if end < 0 else end + 1
            before = sum(self._frames.errors.values())
            frames = self._frames.feed(data[start:end])
            damaged = sum(self._frames.errors.values()) - before
            out += [Packet("frame", "damaged", detail="line noise, or text on the data UART")] * damaged
            out += [self._decode(frame.type, frame.body) for frame in frames]
            start = end
        return out

    def _decode(self, ftype: int, body: bytes) -> Packet:
        kind = _KIND.get(ftype)
        if kind is None:
            return Packet("frame", "malformed", detail=f"unknown frame type 0x{ftype:02x}")
        cose = body[4:] if ftype == FrameType.DATA else body
        try:
            head = mac0_decode(cose)
        except ProtocolError as exc:
            return Packet(kind, "malformed", detail=str(exc))
        ident = {"node_id": head.node_id, "boot": head.boot, "seq": head.seq}
        if ftype == FrameType.CONTROL:
            return Packet(kind, "gateway", **ident, detail="from a gateway on this line")
        try:
            if ftype == FrameType.DATA:
                data = decode_data(body, self.keys)
                detail = ", ".join(_reading(r.name, r.value, r.unit) for r in data.records)
            else:
                hello = decode_hello(body, self.keys)
                detail = (f"firmware {hello.firmware}, backlog {hello.backlog}, up {hello.uptime_ms / 1000:.0f} s, "
                          f"flags 0x{hello.flags:02x}, time {'synced' if hello.synced else 'not synced'}, "
                          f"dropped {hello.dropped}")
        except UnknownNode:
            return Packet(kind, "unknown node", **ident, detail="not in the registry")
        except BadMac:
            return Packet(kind, "bad MAC", **ident, detail="sealed with another key than the registry's")
        except MalformedPacket as exc:
            return Packet(kind, "malformed", **ident, detail=str(exc))
        status = "verified"
        if ftype == FrameType.DATA:
            key = (head.node_id, head.boot, head.seq)
            status = "repeat" if key in self._seen else "verified"
            self._seen.add(key)
        return Packet(kind, status, **ident, detail=detail)


def _reading(name: str, value: object, unit: str | None) -> str:
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    return f"{name} {shown}{' ' + unit if unit else ''}"


@contextlib.contextmanager
def open_data_port(port: str) -> Iterator[serial.Serial]:
    """The node's data UART, opened exclusively as the gateway opens it."""
    check_port(port, "data port")
    try:
        line = serial.Serial(port, BAUDRATE, timeout=0.2, exclusive=True)
    except (serial.SerialException, OSError) as exc:
        raise open_error(port, exc, "data port") from None
    try:
        yield line
    finally:
        line.close()


def read_packets(line: serial.Serial, reader: PacketReader, deadline: float | None = None) -> Iterator[Packet]:
    """Packets as they arrive, until ``time.monotonic()`` passes ``deadline`` (None: forever)."""
    while deadline is None or time.monotonic() < deadline:
        yield from reader.feed(line.read(max(1, line.in_waiting)))
