"""The board's buses and always-on parts as the firmware reaches them: I2C, ADC, I2S, GPIO, RTC.

Each method serves one :class:`~gonggi_emu.rpc.Op` from ``board/machine.py``; payload layouts
are documented next to the op.
"""

from __future__ import annotations

import datetime as dt
import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass

from gonggi_emu import esp32_adc
from gonggi_emu.rpc import Op, RpcError, RpcServer
from gonggi_emu.wiring import Wiring

__all__ = ["RTC_EPOCH", "RTC_MEMORY_BYTES", "I2SConfig", "Peripherals"]

# The ESP32's RTC counts from 2000-01-01 00:00:00 after power-on.
RTC_EPOCH = dt.datetime(2000, 1, 1)
RTC_MEMORY_BYTES = 2048
_I2C_WRITE = 1
_I2C_READ = 2
_PIN_MODE_IN = 1
_PULL_UP = 2
_I2C_FIRST, _I2C_LAST = 0x08, 0x77  # the addresses machine.I2C.scan() probes
_RTC = struct.Struct("<HBBBBBBI")  # year, month, day, weekday, hour, minute, second, microsecond


@dataclass(frozen=True)
class I2SConfig:
    bits: int
    stereo: bool
    rate: int


class Peripherals:
    """Answers the firmware's bus transactions from the bench's devices at scenario time."""

    def __init__(self, wiring: Wiring, now: Callable[[], float]) -> None:
        self.wiring = wiring
        self._now = now
        self.driven: dict[int, int] = {}  # GPIO -> level the firmware drives
        self.i2s: dict[int, I2SConfig] = {}
        self.rtc_memory = b""
        self._rtc_base = RTC_EPOCH
        self._rtc_at = 0.0

    def register(self, server: RpcServer) -> None:
        for op, handler in (
            (Op.I2C_XFER, self.i2c_xfer),
            (Op.I2C_SCAN, self.i2c_scan),
            (Op.ADC_READ, self.adc_read),
            (Op.I2S_INIT, self.i2s_init),
            (Op.I2S_READ, self.i2s_read),
            (Op.I2S_DEINIT, self.i2s_deinit),
            (Op.PIN_WRITE, self.pin_write),
            (Op.PIN_READ, self.pin_read),
            (Op.RTC_GET, self.rtc_get),
            (Op.RTC_SET, self.rtc_set),
            (Op.RTC_MEM_GET, self.rtc_mem_get),
            (Op.RTC_MEM_SET, self.rtc_mem_set),
        ):
            server.register(op, handler)

    def chip_reset(self) -> None:
        """A reset of the ESP32 (not a soft reboot): GPIOs and I2S go back to their reset state."""
        self.driven.clear()
        self.i2s.clear()

    def power_on(self) -> None:
        """Power came up (or EN was pulled low): the RTC domain starts over too."""
        self.chip_reset()
        self.rtc_memory = b""
        self._rtc_base = RTC_EPOCH
        self._rtc_at = self._now()

    # -- I2C: payload = addr, flags, nread (u16), nmem, memaddr bytes, data ------------------

    def i2c_xfer(self, bus: int, p: bytes) -> bytes:
        addr, flags, nread = p[0], p[1], p[2] | p[3] << 8  # p[4]: how many of p[5:] are memaddr
        device = self.wiring.i2c.get(bus, {}).get(addr)
        now = self._now()
        if device is None:
            raise RpcError(errno.ENODEV)
        if flags & _I2C_WRITE and not device.i2c_write(bytes(p[5:]), now):
            raise RpcError(errno.ENODEV)
        if not flags & _I2C_READ:
            return b""
        data = device.i2c_read(nread, now)
        if data is None:
            raise RpcError(errno.ENODEV)
        # Bytes a target does not drive read as the released (pulled-up) bus.
        return bytes(data[:nread]).ljust(nread, b"\xff")

    def i2c_scan(self, bus: int, p: bytes) -> bytes:
        now = self._now()
        found = [
            addr
            for addr, device in sorted(self.wiring.i2c.get(bus, {}).items())
            if _I2C_FIRST <= addr <= _I2C_LAST and not {"nack", "unplug"} & device.fault(now)
        ]
        return bytes(found)

    # -- ADC: unit = GPIO, payload = attenuation; reply raw (u16), microvolts (u32) ----------

    def adc_read(self, gpio: int, p: bytes) -> bytes:
        source = self.wiring.adc.get(gpio)
        volts = source.volts(self._now()) if source is not None else 0.0
        code = esp32_adc.raw_code(volts, p[0])
        return struct.pack("<HI", code, esp32_adc.calibrated_uv(code, p[0]))

    # -- I2S: init payload = bits, format (1 stereo), rate (u32); read = skip (u32), n (u32) -

    def i2s_init(self, bus: int, p: bytes) -> bytes:
        bits, fmt, rate = struct.unpack("<BBI", p)
        self.i2s[bus] = I2SConfig(bits, fmt == 1, rate)
        return b""

    def i2s_read(self, bus: int, p: bytes) -> bytes:
        skip, n = struct.unpack("<II", p)
        cfg = self.i2s.get(bus)
        if cfg is None:
            raise RpcError(errno.EPERM, "I2S read before init")
        if skip:
            self._pcm(bus, cfg, skip)  # the samples the DMA overwrote: gone
        return self._pcm(bus, cfg, n)

    def _pcm(self, bus: int, cfg: I2SConfig, n: int) -> bytes:
        source = self.wiring.i2s.get(bus)
        if source is None:
            return bytes(n)  # no microphone: the data line stays low
        if not cfg.stereo:
            return source.i2s_read(n, cfg.bits, cfg.rate)
        # One microphone (L/R select low) fills the left slot; the right slot reads zero.
        slot = cfg.bits // 8
        mono = source.i2s_read(n // 2, cfg.bits, cfg.rate)
        out = bytearray(n)
        for i in range(0, len(mono), slot):
            out[2 * i : 2 * i + slot] = mono[i : i + slot]
        return bytes(out)

    def i2s_deinit(self, bus: int, p: bytes) -> bytes:
        self.i2s.pop(bus, None)
        return b""

    # -- GPIO: write payload = level, mode; read payload = pull; reply level -----------------

    def pin_write(self, gpio: int, p: bytes) -> bytes:
        level, mode = p[0], p[1]
        if mode == _PIN_MODE_IN:
            self.driven.pop(gpio, None)
            return b""
        self.driven[gpio] = level
        wired = self.wiring.pins.get(gpio)
        if wired is not None:
            device, role = wired
            device.pin_changed(role, level, self._now())
        return b""

    def pin_read(self, gpio: int, p: bytes) -> bytes:
        wired = self.wiring.pins.get(gpio)
        level = wired[0].pin_level(wired[1], self._now()) if wired is not None else None
        if level is None:
            level = self.driven.get(gpio, 1 if p[0] & _PULL_UP else 0)
        return bytes([level])

    # -- RTC: datetime as (year, month, day, weekday, hour, minute, second, microsecond) -----

    def rtc_now(self) -> dt.datetime:
        return self._rtc_base + dt.timedelta(seconds=self._now() - self._rtc_at)

    def rtc_get(self, unit: int, p: bytes) -> bytes:
        t = self.rtc_now()
        return _RTC.pack(t.year, t.month, t.day, t.weekday(), t.hour, t.minute, t.second, t.microsecond)

    def rtc_set(self, unit: int, p: bytes) -> bytes:
        year, month, day, _weekday, hour, minute, second, us = _RTC.unpack(p)
        try:
            self._rtc_base = dt.datetime(year, month, day, hour, minute, second, us)
        except ValueError as exc:
            raise RpcError(errno.EINVAL) from exc
        self._rtc_at = self._now()
        return b""

    def rtc_mem_get(self, unit: int, p: bytes) -> bytes:
        return self.rtc_memory

    def rtc_mem_set(self, unit: int, p: bytes) -> bytes:
        if len(p) > RTC_MEMORY_BYTES:
            raise RpcError(errno.EINVAL)
        self.rtc_memory = bytes(p)
        return b""
