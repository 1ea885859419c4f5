"""Sensirion I2C framing shared by the emulated SPS30, SCD4x and SGP40.

Commands are 16-bit big-endian; arguments and answers are 16-bit words, each followed by a
CRC-8 (polynomial 0x31, init 0xFF; the datasheets' example: CRC(0xBEEF) = 0x92). A command runs
for its execution time, during which the part NACKs; its answer can be read once, after it.
"""

from __future__ import annotations

import zlib
from abc import abstractmethod
from collections.abc import Iterable, Sequence

from gonggi_emu.devices.i2c_common import EPS, EmulatedI2C

__all__ = ["crc8", "frame_words", "parse_words", "serial_words", "SensirionTarget"]


def crc8(data: bytes) -> int:
    """Sensirion CRC-8 of ``data`` (normally one 16-bit word)."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def frame_words(words: Iterable[int]) -> bytes:
    """Words as they go on the wire: MSB, LSB, CRC for each."""
    out = bytearray()
    for w in words:
        pair = bytes(((w >> 8) & 0xFF, w & 0xFF))
        out += pair + bytes((crc8(pair),))
    return bytes(out)


def parse_words(data: bytes) -> list[int] | None:
    """Words of a framed sequence, or None if its length or any CRC is wrong."""
    if len(data) % 3:
        return None
    words = []
    for i in range(0, len(data), 3):
        if crc8(data[i : i + 2]) != data[i + 2]:
            return None
        words.append((data[i] << 8) | data[i + 1])
    return words


def serial_words(name: str) -> list[int]:
    """A 48-bit serial number as three words, derived from the device's name (stable per bench)."""
    value = ((zlib.crc32(name.encode()) << 16) | 0x5E45) & 0xFFFFFFFFFFFF
    return [(value >> 32) & 0xFFFF, (value >> 16) & 0xFFFF, value & 0xFFFF]


class SensirionTarget(EmulatedI2C):
    """Command/answer protocol with execution times; subclasses implement :meth:`command`."""

    def power_on(self, now: float) -> None:
        self._busy_until = now
        self._answer: tuple[float, list[int]] | None = None

    @abstractmethod
    def command(self, cmd: int, args: Sequence[int], now: float) -> bool:
        """Run ``cmd`` with its argument words; False = the part NACKs it."""

    def run(self, seconds: float, now: float, answer: Sequence[int] | None = None) -> None:
        """The command executes for ``seconds``; ``answer`` can be read after that."""
        self._busy_until = now + seconds
        self._answer = None if answer is None else (now + seconds, list(answer))

    def i2c_write(self, data: bytes, now: float) -> bool:
        if not self.answers(now):
            return False
        if not data:
            return True  # address-only write, as machine.I2C.scan() does
        if now + EPS < self._busy_until or len(data) < 2:
            return False
        args = parse_words(data[2:])
        if args is None:
            return False  # wrong argument CRC: the part refuses the command
        return self.command((data[0] << 8) | data[1], args, now)

    def i2c_read(self, n: int, now: float) -> bytes | None:
        if not self.answers(now) or self._answer is None:
            return None
        ready, words = self._answer
        if now + EPS < ready:
            return None  # still executing
        self._answer = None
        frame = frame_words(words)[:n]
        return self.corrupt(frame + b"\xff" * (n - len(frame)), now)
