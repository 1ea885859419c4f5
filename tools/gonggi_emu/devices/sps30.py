"""Emulated Sensirion SPS30 particulate matter sensor on I2C (0x69), from the datasheet.

Idle after power-on; start measurement (float or, firmware >= 2.0, uint16 output) gives a new
sample every second; sleep mode hears only the wake-up sequence (the first command wakes the
interface and is NACKed). Mass concentrations come from the scenario's ``pm1_ugm3``,
``pm2_5_ugm3``, ``pm4_ugm3`` and ``pm10_ugm3`` (defaults derived from PM2.5); number
concentrations and typical particle size follow from an urban aerosol model (most particles
below 1 um). During the first 8 s after start (the datasheet's start-up time) readings ramp up
as the fan spins up. Float output is quantised to IEEE float32, uint16 output to whole units.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from gonggi_emu.devices.i2c_common import EPS
from gonggi_emu.devices.sensirion import SensirionTarget, serial_words

__all__ = ["SPS30"]

_START = 0x0010
_STOP = 0x0104
_DATA_READY = 0x0202
_READ_VALUES = 0x0300
_SLEEP = 0x1001
_WAKE_UP = 0x1103
_FAN_CLEAN = 0x5607
_CLEAN_INTERVAL = 0x8004
_PRODUCT_TYPE = 0xD002
_SERIAL = 0xD033
_VERSION = 0xD100
_STATUS = 0xD206
_CLEAR_STATUS = 0xD210
_RESET = 0xD304

_FORMAT_FLOAT = 0x0300
_FORMAT_UINT16 = 0x0500
_STARTUP_S = 8.0
_CLEANING_S = 10.0
_DEFAULT_CLEAN_INTERVAL = 604800  # one week, the factory setting


def _ascii_words(text: str, nwords: int) -> list[int]:
    raw = text.encode().ljust(2 * nwords, b"\0")
    return [(raw[i] << 8) | raw[i + 1] for i in range(0, 2 * nwords, 2)]


class SPS30(SensirionTarget):
    kind = "sps30"
    address = 0x69

    def power_on(self, now: float) -> None:
        super().power_on(now)
        self.mode = "idle"  # idle | measuring | sleep
        self.format = _FORMAT_FLOAT
        self._started = now
        self._read_index = 0
        self._iface_awake = False
        self._cleaning_until = now
        if not hasattr(self, "clean_interval"):
            self.clean_interval = _DEFAULT_CLEAN_INTERVAL  # kept in the part's flash

    def serial(self) -> str:
        w = serial_words(self.name)
        return "%04X%04X%04X%04X" % (0xE9F1, w[0], w[1], w[2])

    def sample(self, t: float) -> list[float]:
        """Mass (ug/m3, PM1/2.5/4/10), number (#/cm3, 0.5/1/2.5/4/10 um) and size (um) at ``t``."""
        pm25 = self.scenario.value("pm2_5_ugm3", t, 10.0)
        pm1 = self.scenario.value("pm1_ugm3", t, 0.85 * pm25)
        pm10 = self.scenario.value("pm10_ugm3", t, 1.2 * pm25)
        pm4 = self.scenario.value("pm4_ugm3", t, pm25 + 0.4 * (pm10 - pm25))
        # One noise draw for the whole sample: the bins come from the same particle counts.
        gain = max(0.0, 1.0 + self.jitter(0.02))
        ramp = min(1.0, (t - self._started) / _STARTUP_S)
        mass = [max(0.0, m * gain * ramp) for m in (pm1, pm25, pm4, pm10)]
        for i in range(1, 4):  # the sensor's mass bins are cumulative
            mass[i] = max(mass[i], mass[i - 1])
        nc05 = 6.0 * mass[0]
        nc1 = 7.0 * mass[0]
        nc25 = nc1 + 0.25 * (mass[1] - mass[0])
        nc4 = nc25 + 0.03 * (mass[2] - mass[1])
        nc10 = nc4 + 0.01 * (mass[3] - mass[2])
        coarse = (mass[3] - mass[0]) / mass[3] if mass[3] > 0 else 0.0
        size = 0.45 + 0.6 * coarse if mass[3] > 0 else 0.0
        return [*mass, nc05, nc1, nc25, nc4, nc10, size]

    def _latest(self, now: float) -> int:
        return int(now - self._started + EPS)

    def _values(self, now: float) -> list[int]:
        self._read_index = self._latest(now)
        t = self._started + self._read_index
        return self.held(now, lambda: self._encode(self.sample(t)))

    def _encode(self, values: list[float]) -> list[int]:
        if self.format == _FORMAT_UINT16:
            # Whole units; the typical size is in nm in this format.
            ints = [round(v) for v in values[:9]] + [round(values[9] * 1000)]
            return [min(0xFFFF, v) for v in ints]
        words = []
        for v in values:
            hi, lo = struct.unpack(">HH", struct.pack(">f", v))
            words += [hi, lo]
        return words

    def i2c_write(self, data: bytes, now: float) -> bool:
        if self.mode == "sleep" and self.answers(now):
            # Sleeping: the first transaction only wakes the interface and is not acknowledged.
            if not self._iface_awake:
                self._iface_awake = True
                return False
        return super().i2c_write(data, now)

    def command(self, cmd: int, args: Sequence[int], now: float) -> bool:
        if self.mode == "sleep":
            if cmd != _WAKE_UP or args:
                return False
            self.mode = "idle"
            self._iface_awake = False
            self.run(0.005, now)
            return True
        measuring = self.mode == "measuring"
        if cmd == _START and len(args) == 1 and not measuring:
            if args[0] not in (_FORMAT_FLOAT, _FORMAT_UINT16):
                return False
            self.format = args[0]
            self.mode = "measuring"
            self._started = now
            self._read_index = 0
            self.run(0.020, now)
        elif cmd == _STOP and not args and measuring:
            self.mode = "idle"
            self.run(0.020, now)
        elif cmd == _DATA_READY and not args and measuring:
            ready = self._latest(now) > self._read_index and now + EPS >= self._cleaning_until
            self.run(0.0, now, [int(ready)])
        elif cmd == _READ_VALUES and not args and measuring:
            self.run(0.0, now, self._values(now))
        elif cmd == _SLEEP and not args and self.mode == "idle":
            self.mode = "sleep"
            self._iface_awake = False
            self.run(0.005, now)
        elif cmd == _WAKE_UP and not args:
            self.run(0.005, now)  # already awake: accepted, nothing to do
        elif cmd == _FAN_CLEAN and not args and measuring:
            self._cleaning_until = now + _CLEANING_S
            self.run(0.020, now)
        elif cmd == _CLEAN_INTERVAL and not args:
            self.run(0.0, now, [self.clean_interval >> 16, self.clean_interval & 0xFFFF])
        elif cmd == _CLEAN_INTERVAL and len(args) == 2:
            self.clean_interval = (args[0] << 16) | args[1]
            self.run(0.020, now)
        elif cmd == _PRODUCT_TYPE and not args:
            self.run(0.0, now, _ascii_words("00080000", 16))
        elif cmd == _SERIAL and not args:
            self.run(0.0, now, _ascii_words(self.serial(), 16))
        elif cmd == _VERSION and not args:
            self.run(0.0, now, [0x0202])  # firmware 2.2
        elif cmd == _STATUS and not args:
            self.run(0.0, now, [0x0000, 0x0000])
        elif cmd == _CLEAR_STATUS and not args:
            self.run(0.005, now)
        elif cmd == _RESET and not args:
            self.power_on(now)
            self.run(0.100, now)
        else:
            return False
        return True
