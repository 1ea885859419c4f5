"""Emulated Sensirion SCD40 / SCD41 CO2 sensors (I2C 0x62), from the datasheet's command set.

Periodic measurement gives a sample every 5 s (low power periodic: 30 s), read_measurement
NACKs when no sample waits, and most commands are refused while measuring. Values come from the
scenario's ``co2_ppm``, ``temperature_c``, ``humidity_rh`` and ``pressure_pa``, through what the
part does to them: CO2 is pressure-compensated with the pressure the MCU set (or the one its
altitude implies), so a missing compensation shows as the real part's error; the temperature
offset setting corrects the part's self-heating (4 degC, the default offset).
Quantisation: 1 ppm, 175/2**16 degC, 100/2**16 %RH.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from gonggi_emu.devices.i2c_common import EPS
from gonggi_emu.devices.sensirion import SensirionTarget, serial_words

__all__ = ["SCD40", "SCD41"]

_PERIOD = 5.0
_LOW_POWER_PERIOD = 30.0
_SELF_HEATING = 4.0  # degC above ambient inside the part (what the default offset corrects)
_DEFAULT_OFFSET_WORD = round(4.0 * 65536 / 175)

# (command, execution time s, allowed while measuring periodically)
_START_PERIODIC = 0x21B1
_READ_MEASUREMENT = 0xEC05
_STOP_PERIODIC = 0x3F86
_SET_T_OFFSET = 0x241D
_GET_T_OFFSET = 0x2318
_SET_ALTITUDE = 0x2427
_GET_ALTITUDE = 0x2322
_AMBIENT_PRESSURE = 0xE000
_FORCED_RECAL = 0x362F
_SET_ASC = 0x2416
_GET_ASC = 0x2313
_START_LOW_POWER = 0x21AC
_DATA_READY = 0xE4B8
_PERSIST = 0x3615
_SERIAL = 0x3682
_SELF_TEST = 0x3639
_FACTORY_RESET = 0x3632
_REINIT = 0x3646
_SINGLE_SHOT = 0x219D
_SINGLE_SHOT_RHT = 0x2196
_POWER_DOWN = 0x36E0
_WAKE_UP = 0x36F6

_WHILE_MEASURING = {_READ_MEASUREMENT, _STOP_PERIODIC, _DATA_READY, _AMBIENT_PRESSURE}


def _saturation_hpa(t: float) -> float:
    """Magnus formula: water vapour saturation pressure over water."""
    return 6.112 * math.exp(17.62 * t / (243.12 + t))


class SCD40(SensirionTarget):
    kind = "scd40"
    address = 0x62
    single_shot = False

    def power_on(self, now: float) -> None:
        super().power_on(now)
        self.mode = "idle"  # idle | periodic | low_power | power_down
        self._started = now
        self._read_index = 0
        self._single_at: float | None = None  # when a single shot's sample is taken
        self._single_read = True
        self._single_words: list[int] = []
        self.offset_word = _DEFAULT_OFFSET_WORD
        self.altitude = 0
        self.pressure_hpa: int | None = None
        self.asc = True
        self.frc_ppm = 0.0
        self._last_co2 = 400.0

    # -- what the part measures -------------------------------------------------------------

    def _sample(self, t: float) -> list[int]:
        """The three output words of a sample taken at scenario time ``t``."""
        return list(self.held(t, lambda: self._measure(t)))

    def _measure(self, t: float) -> list[int]:
        ambient = self.reading("temperature_c", t, 21.0, 0.05)
        rh = self.reading("humidity_rh", t, 50.0, 0.2)
        true_co2 = self.reading("co2_ppm", t, 420.0, 5.0)
        p_actual = self.scenario.value("pressure_pa", t, 101325.0)
        if self.pressure_hpa is not None:
            p_comp = self.pressure_hpa * 100.0
        else:
            p_comp = 101325.0 * (1 - 2.25577e-5 * self.altitude) ** 5.25588
        co2 = true_co2 * p_actual / p_comp + self.frc_ppm
        self._last_co2 = co2
        reported_t = ambient + _SELF_HEATING - self.offset_word * 175 / 65536
        # The same water vapour at the reported temperature.
        reported_rh = rh * _saturation_hpa(ambient) / _saturation_hpa(reported_t)
        return [
            max(0, min(0xFFFF, round(co2))),
            max(0, min(0xFFFF, round((reported_t + 45) * 65536 / 175))),
            max(0, min(0xFFFF, round(reported_rh * 65536 / 100))),
        ]

    def _latest(self, now: float) -> int:
        """Index of the newest periodic sample at ``now`` (0: none yet)."""
        period = _LOW_POWER_PERIOD if self.mode == "low_power" else _PERIOD
        return int((now - self._started + EPS) // period)

    def _ready(self, now: float) -> bool:
        if self.mode in ("periodic", "low_power"):
            return self._latest(now) > self._read_index
        shot = self._single_at
        return shot is not None and now + EPS >= shot and not self._single_read

    # -- commands ---------------------------------------------------------------------------

    def command(self, cmd: int, args: Sequence[int], now: float) -> bool:
        if self.mode == "power_down":
            if cmd == _WAKE_UP and self.single_shot:
                self.mode = "idle"
                self.run(0.030, now)
            return False  # wake_up is never acknowledged; nothing else is heard
        measuring = self.mode in ("periodic", "low_power")
        if measuring and cmd not in _WHILE_MEASURING:
            return False
        one_arg = len(args) == 1
        if cmd in (_START_PERIODIC, _START_LOW_POWER) and not args:
            self.mode = "periodic" if cmd == _START_PERIODIC else "low_power"
            self._started = now
            self._read_index = 0
            self.run(0.0, now)
        elif cmd == _STOP_PERIODIC and not args:
            self.mode = "idle"
            self.run(0.5, now)
        elif cmd == _READ_MEASUREMENT and not args:
            if not self._ready(now):
                self.run(0.001, now)
                return True  # accepted; the read that follows NACKs: nothing in the buffer
            if measuring:
                self._read_index = self._latest(now)
                period = _LOW_POWER_PERIOD if self.mode == "low_power" else _PERIOD
                words = self._sample(self._started + self._read_index * period)
            else:
                self._single_read = True
                words = self._single_words
            self.run(0.001, now, words)
        elif cmd == _DATA_READY and not args:
            self.run(0.001, now, [0x8006 if self._ready(now) else 0x8000])
        elif cmd == _SET_T_OFFSET and one_arg:
            self.offset_word = args[0]
            self.run(0.001, now)
        elif cmd == _GET_T_OFFSET and not args:
            self.run(0.001, now, [self.offset_word])
        elif cmd == _SET_ALTITUDE and one_arg:
            self.altitude = args[0]
            self.run(0.001, now)
        elif cmd == _GET_ALTITUDE and not args:
            self.run(0.001, now, [self.altitude])
        elif cmd == _AMBIENT_PRESSURE and one_arg:
            self.pressure_hpa = args[0]
            self.run(0.001, now)
        elif cmd == _AMBIENT_PRESSURE and not args:
            self.run(0.001, now, [self.pressure_hpa or 1013])
        elif cmd == _SET_ASC and one_arg:
            self.asc = bool(args[0])
            self.run(0.001, now)
        elif cmd == _GET_ASC and not args:
            self.run(0.001, now, [int(self.asc)])
        elif cmd == _FORCED_RECAL and one_arg:
            correction = args[0] - self._last_co2
            self.frc_ppm += correction
            self.run(0.4, now, [0x8000 + round(correction) & 0xFFFF])
        elif cmd == _SERIAL and not args:
            self.run(0.001, now, serial_words(self.name))
        elif cmd in (_PERSIST, _FACTORY_RESET, _REINIT) and not args:
            if cmd == _FACTORY_RESET:
                self.power_on(now)
            self.run({_PERSIST: 0.8, _FACTORY_RESET: 1.2, _REINIT: 0.02}[cmd], now)
        elif cmd == _SELF_TEST and not args:
            self.run(10.0, now, [0x0000])
        elif cmd in (_SINGLE_SHOT, _SINGLE_SHOT_RHT) and not args and self.single_shot:
            duration = 5.0 if cmd == _SINGLE_SHOT else 0.05
            self._single_at = now + duration
            self._single_read = False
            self._single_words = self._sample(now + duration)
            if cmd == _SINGLE_SHOT_RHT:
                self._single_words[0] = 0
            self.run(duration, now)
        elif cmd == _POWER_DOWN and not args and self.single_shot:
            self.mode = "power_down"
            self.run(0.001, now)
        else:
            return False
        return True



class SCD41(SCD40):
    """The SCD41 adds single shot measurements and power down / wake up."""

    kind = "scd41"
    single_shot = True
