# Battery voltage through a resistor divider on an ADC pin (a LiPo cell on most field nodes).
from micropython import const

from sensor import Sensor, MISSING, RANGE

_MIN_MV = const(2500)   # below this a LiPo is flat or the divider is not connected
_MAX_MV = const(4500)


class Battery(Sensor):
    name = "bat"
    channels = (("v", "V", -3),)

    def __init__(self, adc, ratio_milli=2000):
        # ratio_milli: divider ratio x1000 (2000 for two equal resistors).
        self._adc = adc
        self._ratio = ratio_milli
        self.errors = 0

    def poll(self, now_ms, out, off):
        try:
            uv = self._adc.read_uv()
        except OSError:
            self.errors += 1
            return MISSING
        # uv * ratio // 10**6 exactly, without forming uv * ratio, which passes 2**30 (a heap int
        # on the ESP32): with uv = 1000 q + r it is (q * ratio + r * ratio // 1000) // 1000.
        mv = (uv // 1000 * self._ratio + uv % 1000 * self._ratio // 1000) // 1000
        out[off] = mv
        if mv < _MIN_MV or mv > _MAX_MV:
            return RANGE
        return 0
