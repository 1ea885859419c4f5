# Sensirion SPS30 particulate matter sensor on I2C (0x69), big-endian IEEE float output.
# One new sample per second while measuring. Each float arrives as two CRC'd words; a viper
# routine turns its bits into a fixed-point int without ever making a float object.
#
# Channels: mass concentrations pm1..pm10 in ug/m3 and number concentrations nc05..nc10 in
# particles per cm3, both in hundredths (exp -2); typical particle size in um, thousandths (-3).
import micropython
import time

from micropython import const

from drivers.i2csensor import MARGIN_MS
from drivers.sensirion import SensirionSensor
from sensor import CHECKSUM, CONFIG, NO_DATA, RANGE, STUCK, WARMING

_CMD_START = const(0x0010)
_CMD_STOP = const(0x0104)
_CMD_DATA_READY = const(0x0202)
_CMD_READ_VALUES = const(0x0300)
_CMD_SLEEP = const(0x1001)
_CMD_WAKE_UP = const(0x1103)
_CMD_FAN_CLEAN = const(0x5607)
_CMD_CLEAN_INTERVAL = const(0x8004)
_CMD_SERIAL = const(0xD033)
_CMD_RESET = const(0xD304)

_FMT_FLOAT = const(0x0300)     # start measurement argument: 0x03 = big-endian float, 0x00 dummy

# Execution times (ms), datasheet command table.
_T_START = const(20)
_T_STOP = const(20)
_T_RESET = const(100)
_T_WAKE = const(5)
_T_INTERVAL = const(20)
_T_RETRY = const(1000)

_S_WAKE = const(0)
_S_RESET = const(1)
_S_SERIAL = const(2)
_S_INTERVAL = const(3)
_S_START = const(4)
_S_RUN = const(5)

_N = const(10)     # floats per sample
_MAX = const(0x3FFFFFFF)   # fixed-point result of an infinite or absurd float: flagged RANGE


@micropython.viper
def f32_fixed(hi: int, lo: int, scale: int) -> int:
    # round(float32(hi:lo) * scale) for 0 < scale < 2**10, as an int; _MAX for a float of
    # 2**19 or more (far beyond the sensor's range: 1000 ug/m3, 3000 #/cm3), inf and NaN.
    e = (hi >> 7) & 0xFF
    if e == 0:
        return 0                         # zero or denormal
    m = ((hi & 0x7F) << 12) | (lo >> 4) | 0x80000  # top 20 of the 24 mantissa bits
    sh = e - 146                         # float = m * 2**sh  (127 + 19 = 146)
    if sh >= 0:
        return 0x3FFFFFFF
    v = 0
    if sh > -31:
        v = (((m * scale) >> (-sh - 1)) + 1) >> 1    # rounded; m * scale < 2**30
    if hi & 0x8000:
        v = -v
    return v


class SPS30(SensirionSensor):
    name = "sps30"
    # SenML has no per-volume count unit: like the PMS driver's counts, these are "count" and
    # the per-cm3 is part of their definition.
    channels = (
        ("pm1", "ug/m3", -2), ("pm25", "ug/m3", -2), ("pm4", "ug/m3", -2), ("pm10", "ug/m3", -2),
        ("nc05", "count", -2), ("nc1", "count", -2), ("nc25", "count", -2), ("nc4", "count", -2),
        ("nc10", "count", -2), ("size", "um", -3),
    )
    # Start-up time until number concentrations are stable (datasheet: 8 s to 30 s; airrohr 15 s).
    warmup_ms = 15000

    def __init__(self, i2c, addr=0x69, clean_interval_s=None, stuck_ms=300000):
        super().__init__(i2c, addr, 3 * 2 * _N, 3 * 2 * _N, stuck_ms)
        self._rx1 = self._rxview(1)
        self._rx2 = self._rxview(2)
        self._rx16 = self._rxview(16)
        self._rxall = self._rxview(2 * _N)
        self._interval = clean_interval_s
        self.serial = ""
        self._asleep = False
        self._state = _S_WAKE
        self._due = 0
        self._started = 0     # when the fan last started: samples are WARMING for warmup_ms
        try:
            now = time.ticks_ms()
            while self._state != _S_RUN:
                flags = self._start_step(now)
                if flags:
                    raise ValueError("SPS30 at 0x%02x: bad serial number" % addr)
                wait = time.ticks_diff(self._due, now)
                if wait > 0:
                    time.sleep_ms(wait)
                    now = time.ticks_add(now, wait)
        except OSError as e:
            raise OSError("SPS30 not answering at 0x%02x (%s)" % (addr, e))

    def _start_step(self, now):
        # One start-up command per call; returns health flags (0 when all is well).
        s = self._state
        wait = 0
        if s == _S_WAKE:
            # From sleep mode the first wake-up only wakes the interface and is NACKed.
            for _ in range(2):
                try:
                    self._cmd(_CMD_WAKE_UP)
                except OSError:
                    pass
            wait = _T_WAKE
        elif s == _S_RESET:
            self._cmd(_CMD_RESET)
            wait = _T_RESET
        elif s == _S_SERIAL:
            self._cmd(_CMD_SERIAL)
            if not self._read(self._rx16):
                return CHECKSUM
            if not self._serial_ok():
                return CONFIG
        elif s == _S_INTERVAL:
            if self._interval is not None:
                iv = self._interval
                self._cmd(_CMD_CLEAN_INTERVAL, 2, iv >> 16, iv & 0xFFFF)
                wait = _T_INTERVAL
        elif s == _S_START:
            self._cmd(_CMD_START, 1, _FMT_FLOAT)
            self._started = now
            wait = _T_START
        self._state = s + 1
        self._due = time.ticks_add(now, wait + MARGIN_MS)
        return 0

    def _serial_ok(self):
        # ASCII, NUL-terminated, at most 32 characters in 16 words; keep it once (start-up only).
        chars = []
        for i in range(16):
            w = self._word(i)
            for c in (w >> 8, w & 0xFF):
                if c == 0:
                    self.serial = "".join(chars)
                    return bool(chars)
                if c < 0x20 or c > 0x7E:
                    return False
                chars.append(chr(c))
        self.serial = "".join(chars)
        return True

    def poll(self, now_ms, out, off):
        if time.ticks_diff(now_ms, self._due) < 0:
            return NO_DATA
        try:
            if self._state != _S_RUN:
                return NO_DATA | self._start_step(now_ms)
            self._cmd(_CMD_DATA_READY)
            if not self._read(self._rx1):
                return CHECKSUM | NO_DATA
            if not self._word(0) & 1:
                return NO_DATA
            self._cmd(_CMD_READ_VALUES)
            if not self._read(self._rxall):
                return CHECKSUM | NO_DATA
        except OSError as e:
            # Unplugged: after power-on it idles, so run the whole start-up again.
            if self._state == _S_RUN:
                self.restarts += 1
            self._state = _S_WAKE
            self._due = time.ticks_add(now_ms, _T_RETRY)
            return self._bus_error(e)
        flags = 0
        for k in range(_N):
            v = f32_fixed(self._word(2 * k), self._word(2 * k + 1), 1000 if k == _N - 1 else 100)
            if v == _MAX or v < 0:
                flags = RANGE
            out[off + k] = v
        if self._stuck(self._rx, 6 * _N, now_ms):
            flags |= STUCK
        if time.ticks_diff(now_ms, self._started) < self.warmup_ms:
            flags |= WARMING
        return flags

    def sleep(self):
        # Stop the fan and laser, then sleep mode (firmware >= 2.0); wake() restarts it all.
        try:
            self._cmd(_CMD_STOP)
            time.sleep_ms(_T_STOP + MARGIN_MS)
            self._cmd(_CMD_SLEEP)
        except OSError as e:
            self._bus_error(e)
        self._asleep = True

    def wake(self):
        if self._asleep:
            self._asleep = False
            self._state = _S_WAKE
            self._due = time.ticks_ms()

    def clean_fan(self):
        # Start the 10 s fan cleaning now (only in measurement mode); values pause meanwhile.
        try:
            self._cmd(_CMD_FAN_CLEAN)
            return True
        except OSError as e:
            self._bus_error(e)
            return False

    def clean_interval(self):
        # Auto-cleaning interval in seconds as the sensor stores it, or None on a bad frame.
        self._cmd(_CMD_CLEAN_INTERVAL)
        if not self._read(self._rx2):
            return None
        return (self._word(0) << 16) | self._word(1)
