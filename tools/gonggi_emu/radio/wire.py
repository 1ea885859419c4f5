"""The virtual radio's wire format, shared by its server, the boards' ``bluetooth`` module and the bleak backend.

Every message on the radio's AF_UNIX stream socket is ``length (u16 LE) | op (u8) | payload``,
length counting op and payload. The first message of a connection says who is speaking:
``HELLO_PERIPHERAL`` (a board's emulated ``bluetooth`` module, binary payloads because the VM side
is MicroPython with a 150 KB heap) or ``HELLO_CENTRAL`` (a bleak backend object, JSON payloads).

Peripheral requests are answered by one ``STATUS`` message (payload: errno, 0 = OK); radio events
for the peripheral carry the codes of MicroPython's ``bluetooth`` IRQs. ``board/bluetooth.py``
keeps the same numbers (tests/ble/test_radio.py checks it).
"""

from __future__ import annotations

import json
import struct
from enum import IntEnum
from typing import Any

__all__ = ["Op", "MAX_MESSAGE", "pack", "pack_json", "Splitter"]

MAX_MESSAGE = 4096


class Op(IntEnum):
    # peripheral -> radio (binary)
    HELLO_PERIPHERAL = 0x01  # addr (6)
    ADVERTISE = 0x02  # interval_us (u32 LE, 0 = stop), connectable (u8), adv length (u8), adv, resp
    NOTIFY = 0x03  # conn (u16 LE), value handle (u16 LE), data
    DISCONNECT = 0x04  # conn (u16 LE)
    GATT_TABLE = 0x05  # per characteristic: service uuid (16), char uuid (16), handle (u16), flags (u16)
    PREFERRED_MTU = 0x06  # mtu (u16 LE)
    VALUE = 0x07  # handle (u16 LE), value: what a central's read returns
    # radio -> peripheral (binary)
    EV_CONNECT = 0x81  # conn (u16 LE), addr type (u8), addr (6)
    EV_DISCONNECT = 0x82  # conn (u16 LE), addr type (u8), addr (6)
    EV_WRITE = 0x83  # conn (u16 LE), handle (u16 LE), data
    EV_MTU = 0x84  # conn (u16 LE), mtu (u16 LE)
    STATUS = 0xC0  # errno (u8)
    # central <-> radio (JSON object; requests carry "id", replies echo it)
    HELLO_CENTRAL = 0x10  # {"adapter": "hci0"}
    REQUEST = 0x11  # {"id", "call": "scan"|"stop_scan"|"connect"|"exchange_mtu"|"write"|"read"|"disconnect", ...}
    REPLY = 0x91  # {"id", "ok": bool, "error": str, ...}
    ADVERT = 0x92  # {"address", "adv": hex, "resp": hex, "rssi"}
    NOTIFICATION = 0x93  # {"conn", "handle", "data": hex}
    DISCONNECTED = 0x94  # {"conn", "reason"}


_HEAD = struct.Struct("<HB")


def pack(op: int, payload: bytes = b"") -> bytes:
    """One message: length, op, payload."""
    if len(payload) + 1 > MAX_MESSAGE:
        raise ValueError(f"radio message of {len(payload) + 1} bytes is over {MAX_MESSAGE}")
    return _HEAD.pack(len(payload) + 1, op) + payload


def pack_json(op: int, obj: dict[str, Any]) -> bytes:
    return pack(op, json.dumps(obj, separators=(",", ":")).encode())


class Splitter:
    """Cuts a byte stream into (op, payload) messages."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out: list[tuple[int, bytes]] = []
        while len(self._buf) >= 2:
            (n,) = struct.unpack_from("<H", self._buf)
            if n == 0 or n > MAX_MESSAGE:
                raise ValueError(f"bad radio message length {n}")
            if len(self._buf) < 2 + n:
                break
            out.append((self._buf[2], bytes(self._buf[3:2 + n])))
            del self._buf[:2 + n]
        return out
