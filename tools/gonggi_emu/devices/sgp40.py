"""Emulated Sensirion SGP40 VOC sensor (I2C 0x59), from the datasheet's command set.

measure_raw takes the humidity and temperature compensation words (each with its CRC) and
answers one raw signal word 30 ms later; the hot plate stays on until heater off. The raw signal
is the scenario's ``voc_raw`` in ticks (default 30000, clean indoor air), with a few ticks of noise.
The hot plate needs a while to settle after it was off: the raw signal starts 2000 ticks low
and approaches the settled value with a 10 s time constant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from gonggi_emu.devices.sensirion import SensirionTarget, serial_words

__all__ = ["SGP40"]

_MEASURE_RAW = 0x260F
_SELF_TEST = 0x280E
_HEATER_OFF = 0x3615
_SERIAL = 0x3682
_SELF_TEST_PASSED = 0xD400

_SETTLE_TICKS = 2000.0
_SETTLE_TAU = 10.0


class SGP40(SensirionTarget):
    kind = "sgp40"
    address = 0x59

    def power_on(self, now: float) -> None:
        super().power_on(now)
        self._heater_on_since: float | None = None

    def _raw(self, t: float, heater_on: float) -> int:
        settle = _SETTLE_TICKS * math.exp(-(t - heater_on) / _SETTLE_TAU)
        value = self.reading("voc_raw", t, 30000.0, 3.0) - settle
        return max(0, min(0xFFFF, round(value)))

    def command(self, cmd: int, args: Sequence[int], now: float) -> bool:
        if cmd == _MEASURE_RAW and len(args) == 2:
            if self._heater_on_since is None:
                self._heater_on_since = now
            t, since = now + 0.030, self._heater_on_since
            self.run(0.030, now, self.held(t, lambda: [self._raw(t, since)]))
        elif cmd == _SELF_TEST and not args:
            self.run(0.320, now, [_SELF_TEST_PASSED])
        elif cmd == _HEATER_OFF and not args:
            self._heater_on_since = None
            self.run(0.001, now)
        elif cmd == _SERIAL and not args:
            self.run(0.001, now, serial_words(self.name))
        else:
            return False
        return True
