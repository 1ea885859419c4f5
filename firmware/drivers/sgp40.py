# Sensirion SGP40 VOC sensor (I2C 0x59): measure_raw with humidity/temperature compensation,
# result 30 ms later, once per sampling interval; the raw ticks feed Sensirion's VOC Index.
import time

from micropython import const

from drivers.i2csensor import MARGIN_MS
from drivers.sensirion import SensirionSensor
from sensor import CHECKSUM, NO_DATA, STUCK, WARMING
from voc_index import VocIndex

_CMD_MEASURE_RAW = const(0x260F)
_CMD_SELF_TEST = const(0x280E)
_CMD_HEATER_OFF = const(0x3615)
_CMD_SERIAL = const(0x3682)

_T_MEASURE = const(30)
_T_SELF_TEST = const(320)
_T_CMD = const(1)
_SELF_TEST_OK = const(0xD400)

# Compensation defaults from the datasheet: 50 %RH (0x8000) and 25 degC (0x6666).
_RH_DEFAULT = const(0x8000)
_T_DEFAULT = const(0x6666)


class SGP40(SensirionSensor):
    name = "sgp40"
    # Both are dimensionless: raw signal ticks and the index (1..500, 100 = learned average).
    channels = (("voc_raw", "", 0), ("voc_index", "", 0))
    warmup_ms = 0

    def __init__(self, i2c, addr=0x59, interval_s=1, self_test=True, stuck_ms=300000):
        super().__init__(i2c, addr, 9, 3, stuck_ms)
        self._rx1 = self._rxview(1)
        self._rx3 = self._rxview(3)
        self._early = int(interval_s * 900)   # the sampling interval less 10 %, for jitter
        self.voc = VocIndex(interval_s)
        self._rh = _RH_DEFAULT
        self._t = _T_DEFAULT
        self._pending = False     # a measure_raw is waiting for its 30 ms
        self._started = 0         # when the last measure_raw went out (set below)
        self._due = 0
        self._up = False
        try:
            self._cmd(_CMD_SERIAL)
            time.sleep_ms(_T_CMD + MARGIN_MS)
            if not self._read(self._rx3):
                raise ValueError("SGP40 at 0x%02x: bad serial number frame" % addr)
            self.serial = (self._word(0) << 32) | (self._word(1) << 16) | self._word(2)
            if self_test:
                self._cmd(_CMD_SELF_TEST)
                time.sleep_ms(_T_SELF_TEST + MARGIN_MS)
                if not self._read(self._rx1) or self._word(0) != _SELF_TEST_OK:
                    raise ValueError("SGP40 at 0x%02x: self test failed (0x%04x)"
                                     % (addr, self._word(0)))
        except OSError as e:
            raise OSError("SGP40 not answering at 0x%02x (%s)" % (addr, e))
        self._up = True
        # As if the last measurement were an interval ago: the first poll starts one.
        self._started = time.ticks_add(time.ticks_ms(), -self._early)

    def set_compensation(self, t_centi, rh_centi):
        # Ambient temperature (0.01 degC) and humidity (0.01 %RH) from a climate sensor, as
        # ticks (rounded: 50 %RH is the datasheet's 0x8000, 25 degC its 0x6666), clamped to the
        # -45..130 degC and 0..100 %RH the ticks span. Small ints only: the scheduler calls this
        # every sample, so 65535 = 3 * 17500 + 13035 = 6 * 10000 + 5535 keeps products < 2**30.
        t = t_centi + 4500
        t = 0 if t < 0 else (17500 if t > 17500 else t)
        h = 0 if rh_centi < 0 else (10000 if rh_centi > 10000 else rh_centi)
        self._t = 3 * t + (t * 13035 + 8750) // 17500
        self._rh = 6 * h + (h * 5535 + 5000) // 10000

    def poll(self, now_ms, out, off):
        # Read the measurement started by an earlier poll (30 ms suffice), then start the next
        # one once the sampling interval is up.
        flags = NO_DATA
        try:
            if self._pending:
                if time.ticks_diff(now_ms, self._due) < 0:
                    return NO_DATA
                self._pending = False
                if self._read(self._rx1):
                    flags = self._sample(out, off, now_ms)
                else:
                    flags = CHECKSUM | NO_DATA
            if not self._up or time.ticks_diff(now_ms, self._started) >= self._early:
                self._cmd(_CMD_MEASURE_RAW, 2, self._rh, self._t)
                self._up = True
                self._pending = True
                self._started = now_ms
                self._due = time.ticks_add(now_ms, _T_MEASURE + MARGIN_MS)
        except OSError as e:
            self._pending = False
            if self._up:
                # Powered off means the index has lost its history: learn it again.
                self.restarts += 1
                self.voc.reset()
            self._up = False
            return self._bus_error(e)
        return flags

    def _sample(self, out, off, now):
        raw = self._word(0)
        index = self.voc.process(raw)
        out[off] = raw
        out[off + 1] = index
        flags = 0
        if index == 0:
            # The index's blackout (first 45 samples): not a sample to average yet.
            flags = WARMING
        if self._stuck(self._rx, 3, now):
            flags |= STUCK
        return flags

    def sleep(self):
        # Heater off until the next measure_raw (saves ~3 mA); keeps the index state.
        try:
            self._cmd(_CMD_HEATER_OFF)
        except OSError as e:
            self._bus_error(e)
