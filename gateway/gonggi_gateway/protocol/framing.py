"""Serial framing: HDLC-like async framing as PPP does it (RFC 1662), with a full control-character map.

A frame on the wire is ``7E  escaped(type || body || FCS-32 little-endian)  7E``. Inside a frame,
0x7E, 0x7D and every byte below 0x20 are sent as ``7D (byte ^ 0x20)``. So:

* a receiver resynchronises at the next 0x7E after line noise: at most the damaged frame is lost;
* no frame ever contains a control character, so data on a UART shared with the MicroPython REPL
  can never look like Ctrl-A..Ctrl-E (raw REPL, interrupt, soft reset, paste mode).
"""

from __future__ import annotations

import enum
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["FLAG", "ESC", "MAX_FRAME", "FrameType", "Frame", "encode_frame", "FrameDecoder"]

FLAG = 0x7E
ESC = 0x7D
MAX_FRAME = 2048  # unescaped type + body + FCS: a node with every supported sensor fits (node.py checks)

_NEEDS_ESCAPE = frozenset([*range(0x20), FLAG, ESC])
_ESCAPE_TABLE = {b: bytes((ESC, b ^ 0x20)) for b in _NEEDS_ESCAPE}


class FrameType(enum.IntEnum):
    DATA = 0x44  # "D": node -> gateway, uptime_ms (u32 BE) + COSE_Mac0 data packet
    HELLO = 0x48  # "H": node -> gateway, COSE_Mac0 status message
    CONTROL = 0x43  # "C": gateway -> node, COSE_Mac0 control message (acks, time, config)


class Frame(NamedTuple):
    """One frame as received: its type byte and its body (FCS checked and removed). A named
    tuple: links build one per packet, and it costs half of a frozen dataclass to make."""

    type: int
    body: bytes


def encode_frame(ftype: int, body: bytes) -> bytes:
    content = bytes((ftype,)) + body
    content += zlib.crc32(content).to_bytes(4, "little")
    out = bytearray((FLAG,))
    for b in content:
        esc = _ESCAPE_TABLE.get(b)
        if esc is None:
            out.append(b)
        else:
            out += esc
    out.append(FLAG)
    return bytes(out)


@dataclass
class FrameDecoder:
    """Incremental decoder: feed it whatever the port delivered, get back the complete valid frames.

    Damaged frames are counted by reason (``errors``) and dropped; the decoder never raises on
    line noise.
    """

    max_frame: int = MAX_FRAME
    errors: dict[str, int] = field(default_factory=lambda: {"fcs": 0, "too_long": 0, "runt": 0, "escape": 0})
    _buf: bytearray = field(default_factory=bytearray)
    _escaped: bool = False
    _discarding: bool = True  # until the first flag: bytes before it may be half a frame

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        for b in data:
            if b == FLAG:
                if not self._discarding and self._buf:
                    frame = self._finish()
                    if frame is not None:
                        frames.append(frame)
                self._buf.clear()
                self._escaped = False
                self._discarding = False
            elif self._discarding:
                continue
            elif b == ESC:
                if self._escaped:
                    self._drop("escape")
                else:
                    self._escaped = True
            elif b < 0x20:
                # Unescaped control bytes never occur inside a frame: noise, or a REPL banner.
                self._drop("escape")
            else:
                if self._escaped:
                    b ^= 0x20
                    self._escaped = False
                if len(self._buf) >= self.max_frame:
                    self._drop("too_long")
                else:
                    self._buf.append(b)
        return frames

    def _drop(self, reason: str) -> None:
        self.errors[reason] += 1
        self._buf.clear()
        self._escaped = False
        self._discarding = True

    def _finish(self) -> Frame | None:
        if self._escaped or len(self._buf) < 5:
            self.errors["runt"] += 1
            return None
        content, fcs = bytes(self._buf[:-4]), bytes(self._buf[-4:])
        if zlib.crc32(content).to_bytes(4, "little") != fcs:
            self.errors["fcs"] += 1
            return None
        return Frame(content[0], content[1:])
