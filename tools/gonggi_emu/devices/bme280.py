"""Emulated Bosch BME280 (I2C 0x76, or 0x77 with SDO high), at the register level.

Chip id 0x60, soft reset, trimming parameters in 0x88..0xA1 and 0xE1..0xE7, ctrl_hum (taking
effect at the next ctrl_meas write), forced and normal mode with the datasheet's measurement
time for the oversampling chosen, the status register's measuring and im_update bits, and burst
reads of 0xF7..0xFE. The trimming values are the datasheet's worked example for T and P and a
real part's for H. The ADC values are found by inverting the datasheet's floating-point
compensation, so a driver that compensates correctly gets the scenario's ``temperature_c``,
``humidity_rh`` and ``pressure_pa`` back, to the ADC's resolution (16 + osrs - 1 bits for T and P
with the IIR filter off, 16 bits for H) and the part's noise.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from gonggi_emu.devices.i2c_common import EPS, EmulatedI2C

__all__ = ["BME280", "Trimming", "EXAMPLE_TRIMMING"]

_ID = 0xD0
_RESET = 0xE0
_CTRL_HUM = 0xF2
_STATUS = 0xF3
_CTRL_MEAS = 0xF4
_CONFIG = 0xF5
_DATA = 0xF7
_CHIP_ID = 0x60
_RESET_WORD = 0xB6
_NVM_COPY_S = 0.002
_OSRS = (0, 1, 2, 4, 8, 16)
_STANDBY_MS = (0.5, 62.5, 125, 250, 500, 1000, 10, 20)


@dataclass(frozen=True)
class Trimming:
    """The part's factory calibration (datasheet table 16)."""

    T1: int
    T2: int
    T3: int
    P1: int
    P2: int
    P3: int
    P4: int
    P5: int
    P6: int
    P7: int
    P8: int
    P9: int
    H1: int
    H2: int
    H3: int
    H4: int
    H5: int
    H6: int

    def registers(self) -> tuple[bytes, bytes]:
        """Contents of 0x88..0xA1 and 0xE1..0xE7."""
        tp = struct.pack(
            "<HhhHhhhhhhhh", self.T1, self.T2, self.T3, self.P1, self.P2, self.P3,
            self.P4, self.P5, self.P6, self.P7, self.P8, self.P9,
        )
        low = tp + bytes((0, self.H1))
        h4, h5 = self.H4 & 0xFFF, self.H5 & 0xFFF
        high = struct.pack("<hB", self.H2, self.H3) + bytes(
            (h4 >> 4, (h4 & 0x0F) | ((h5 & 0x0F) << 4), h5 >> 4, self.H6 & 0xFF)
        )
        return low, high

    # The datasheet's double-precision compensation (section 8.1).
    def temperature(self, adc_t: int) -> tuple[float, int]:
        var1 = (adc_t / 16384.0 - self.T1 / 1024.0) * self.T2
        var2 = (adc_t / 131072.0 - self.T1 / 8192.0) ** 2 * self.T3
        return (var1 + var2) / 5120.0, int(var1 + var2)

    def pressure(self, adc_p: int, t_fine: int) -> float:
        var1 = t_fine / 2.0 - 64000.0
        var2 = var1 * var1 * self.P6 / 32768.0 + var1 * self.P5 * 2.0
        var2 = var2 / 4.0 + self.P4 * 65536.0
        var1 = (self.P3 * var1 * var1 / 524288.0 + self.P2 * var1) / 524288.0
        var1 = (1.0 + var1 / 32768.0) * self.P1
        if var1 == 0:
            return 0.0
        p = (1048576.0 - adc_p - var2 / 4096.0) * 6250.0 / var1
        var1 = self.P9 * p * p / 2147483648.0
        var2 = p * self.P8 / 32768.0
        return p + (var1 + var2 + self.P7) / 16.0

    def humidity(self, adc_h: int, t_fine: int) -> float:
        h = t_fine - 76800.0
        h = (adc_h - (self.H4 * 64.0 + self.H5 / 16384.0 * h)) * (
            self.H2 / 65536.0 * (1.0 + self.H6 / 67108864.0 * h * (1.0 + self.H3 / 67108864.0 * h))
        )
        h *= 1.0 - self.H1 * h / 524288.0
        return min(100.0, max(0.0, h))


# T and P: the datasheet's worked example; H: read from a real part.
EXAMPLE_TRIMMING = Trimming(
    T1=27504, T2=26435, T3=-1000,
    P1=36477, P2=-10685, P3=3024, P4=2855, P5=140, P6=-7, P7=15500, P8=-14600, P9=6000,
    H1=75, H2=362, H3=0, H4=313, H5=50, H6=30,
)


def _invert(f: Callable[[int], float], target: float, bits: int, increasing: bool) -> int:
    """The ADC code whose compensated value is nearest ``target`` (f is monotonic)."""
    lo, hi = 0, (1 << bits) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return lo if abs(f(lo) - target) <= abs(f(hi) - target) else hi


class BME280(EmulatedI2C):
    kind = "bme280"
    address = 0x76
    trimming = EXAMPLE_TRIMMING

    def power_on(self, now: float) -> None:
        self.regs = bytearray(256)
        low, high = self.trimming.registers()
        self.regs[0x88 : 0x88 + len(low)] = low
        self.regs[0xE1 : 0xE1 + len(high)] = high
        self.regs[_ID] = _CHIP_ID
        # Data registers after reset: the "skipped" codes.
        self.regs[_DATA : _DATA + 8] = bytes((0x80, 0, 0, 0x80, 0, 0, 0x80, 0))
        self._pointer = 0
        self._osrs_h = 0  # the humidity oversampling latched by the last ctrl_meas write
        self._nvm_until = now + _NVM_COPY_S
        self._conv_start = now
        self._conv_end = now  # end of the forced conversion under way (or last)
        self._pending = False

    def measuring_time(self) -> float:
        """Typical measurement time in s for the current settings (datasheet 9.1)."""
        osrs_t = _OSRS[min(5, self.regs[_CTRL_MEAS] >> 5)]
        osrs_p = _OSRS[min(5, (self.regs[_CTRL_MEAS] >> 2) & 7)]
        osrs_h = _OSRS[min(5, self._osrs_h)]
        ms = 1.0 + 2.0 * osrs_t
        ms += 2.0 * osrs_p + 0.5 if osrs_p else 0.0
        ms += 2.0 * osrs_h + 0.5 if osrs_h else 0.0
        return ms / 1000.0

    def _mode(self) -> int:
        return self.regs[_CTRL_MEAS] & 3

    def _adc(self, t: float) -> bytes:
        """The eight data register bytes of a conversion at ``t``."""
        ctrl = self.regs[_CTRL_MEAS]
        code_t, code_p, code_h = min(5, ctrl >> 5), min(5, (ctrl >> 2) & 7), min(5, self._osrs_h)
        trim = self.trimming
        # RMS noise (datasheet: 0.005 degC, 1.3 Pa at x1), falling with the oversampling.
        temp = self.reading("temperature_c", t, 21.0, 0.005 / _OSRS[max(code_t, 1)] ** 0.5)
        press = self.reading("pressure_pa", t, 101325.0, 1.3 / _OSRS[max(code_p, 1)] ** 0.5)
        hum = self.reading("humidity_rh", t, 50.0, 0.02)
        adc_t = _invert(lambda a: trim.temperature(a)[0], temp, 20, True)
        t_fine = trim.temperature(adc_t)[1]
        adc_p = _invert(lambda a: trim.pressure(a, t_fine), press, 20, False)
        adc_h = _invert(lambda a: trim.humidity(a, t_fine), hum, 16, True)
        # Without the IIR filter T and P have 16 + (osrs - 1) significant bits.
        adc_t = adc_t >> (5 - code_t) << (5 - code_t) if code_t else 0x80000
        adc_p = adc_p >> (5 - code_p) << (5 - code_p) if code_p else 0x80000
        adc_h = adc_h if code_h else 0x8000
        return bytes(
            (adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0xF) << 4,
             adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0xF) << 4,
             adc_h >> 8, adc_h & 0xFF)
        )

    def _update(self, now: float) -> None:
        """Bring the data and status registers to ``now``."""
        if self._pending and now + EPS >= self._conv_end:
            self._pending = False
            end = self._conv_end
            self.regs[_DATA : _DATA + 8] = self.held(end, lambda: self._adc(end))
            if self._mode() in (1, 2):
                self.regs[_CTRL_MEAS] &= ~3  # forced mode falls back to sleep
        if self._mode() == 3 and not self._pending:
            # Normal mode: conversions back to back with the standby time between them.
            standby = _STANDBY_MS[self.regs[_CONFIG] >> 5] / 1000.0
            while self._conv_end + standby <= now + EPS:
                self._conv_start = self._conv_end + standby
                self._conv_end = self._conv_start + self.measuring_time()
                if self._conv_end > now + EPS:
                    self._pending = True
                    break
                end = self._conv_end
                self.regs[_DATA : _DATA + 8] = self.held(end, lambda: self._adc(end))
        measuring = self._pending and self._conv_start <= now < self._conv_end - EPS
        copying = now + EPS < self._nvm_until
        self.regs[_STATUS] = (0x08 if measuring else 0) | (0x01 if copying else 0)

    def i2c_write(self, data: bytes, now: float) -> bool:
        if not self.answers(now):
            return False
        self._update(now)
        if data:
            self._pointer = data[0]
        for i in range(0, len(data) - 1, 2):
            self._write_register(data[i], data[i + 1], now)
        return True

    def _write_register(self, reg: int, value: int, now: float) -> None:
        if reg == _RESET:
            if value == _RESET_WORD:
                self.power_on(now)
        elif reg == _CTRL_HUM:
            self.regs[reg] = value & 7
        elif reg == _CTRL_MEAS:
            self.regs[reg] = value
            self._osrs_h = self.regs[_CTRL_HUM] & 7
            if value & 3:
                self._conv_start = now
                self._conv_end = now + self.measuring_time()
                self._pending = True
        elif reg == _CONFIG:
            self.regs[reg] = value & 0xFD
        # Everything else is read-only.

    def i2c_read(self, n: int, now: float) -> bytes | None:
        if not self.answers(now):
            return None
        self._update(now)
        data = bytes(self.regs[(self._pointer + i) & 0xFF] for i in range(n))
        self._pointer = (self._pointer + n) & 0xFF
        return self.corrupt(data, now)
