"""What a gonggi node says over BLE besides frames: its GATT service, its advert, and fragmentation.

Mirrors ``firmware/link_ble.py``. A frame (type byte + body, as on serial without HDLC escaping and
FCS) travels in fragments of at most ATT MTU - 3 bytes, each led by a header byte: 0x80 first,
0x40 last, low 6 bits a counter that goes up by one per fragment and direction. A node starts
notifying once the gateway has written to it: the gateway's first write on every connection is
``GO``, an empty frame.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from gonggi_gateway.protocol import Frame
from gonggi_gateway.protocol.framing import MAX_FRAME

__all__ = ["SERVICE_UUID", "TX_UUID", "RX_UUID", "COMPANY_ID", "GO", "Advert", "id_hash", "parse_advert",
           "fragments", "Reassembler"]

SERVICE_UUID = "6b8f0001-5d2c-4c6e-9a1e-676f6e676769"
TX_UUID = "6b8f0002-5d2c-4c6e-9a1e-676f6e676769"  # notify: node -> gateway
RX_UUID = "6b8f0003-5d2c-4c6e-9a1e-676f6e676769"  # write: gateway -> node
COMPANY_ID = 0xFFFF  # Bluetooth SIG: for internal use and testing
FIRST, LAST, COUNT = 0x80, 0x40, 0x3F
GO = bytes((FIRST | LAST,))


@dataclass(frozen=True)
class Advert:
    id_hash: bytes  # first 4 bytes of SHA-256(node id)
    backlog: int


def id_hash(node_id: str) -> bytes:
    """What a node's advert carries instead of its id (which goes in the scan response)."""
    return hashlib.sha256(node_id.encode()).digest()[:4]


def parse_advert(manufacturer_data: dict[int, bytes]) -> Advert | None:
    """The node's state from its advert's manufacturer data, or None if it is not a gonggi node."""
    data = manufacturer_data.get(COMPANY_ID)
    if data is None or len(data) < 6:
        return None
    return Advert(bytes(data[:4]), int.from_bytes(data[4:6], "big"))


def fragments(frame: bytes, payload: int, counter: int) -> list[bytes]:
    """``frame`` cut into writes of at most ``payload`` (ATT MTU - 3) bytes, counting from ``counter``."""
    room = payload - 1
    if room < 1:
        raise ValueError(f"ATT payload of {payload} bytes cannot carry fragments")
    chunks = [frame[i:i + room] for i in range(0, len(frame), room)] or [b""]
    out = []
    for i, chunk in enumerate(chunks):
        head = ((counter + i) & COUNT) | (FIRST if i == 0 else 0) | (LAST if i == len(chunks) - 1 else 0)
        out.append(bytes((head,)) + chunk)
    return out


@dataclass
class Reassembler:
    """Fragments in, whole frames out; gaps and overlong frames are counted in ``errors`` and dropped."""

    max_frame: int = MAX_FRAME
    errors: dict[str, int] = field(default_factory=lambda: {"sequence": 0, "too_long": 0, "runt": 0})
    _buf: bytearray | None = None
    _next: int = 0

    def reset(self) -> None:
        self._buf = None

    def feed(self, fragment: bytes) -> Frame | None:
        if not fragment:
            self.errors["runt"] += 1
            return None
        head, data = fragment[0], fragment[1:]
        if head & FIRST:
            if self._buf:
                self.errors["sequence"] += 1  # the previous frame never got its last fragment
            self._buf = bytearray()
        elif self._buf is None or head & COUNT != self._next:
            self.errors["sequence"] += 1
            self._buf = None
            return None
        self._next = (head + 1) & COUNT
        if len(self._buf) + len(data) > self.max_frame:
            self.errors["too_long"] += 1
            self._buf = None
            return None
        self._buf += data
        if not head & LAST:
            return None
        whole, self._buf = bytes(self._buf), None
        if not whole:
            return None  # GO
        return Frame(whole[0], whole[1:])
