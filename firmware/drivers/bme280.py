# Bosch BME280 temperature / humidity / pressure sensor (I2C 0x76 or 0x77) in forced mode:
# each poll reads the conversion started by the previous poll and starts the next one.
# Compensation: the datasheet's 32-bit integer formulas (T in 0.01 degC, P in whole Pa, H in
# 1/1024 %RH) with the same integer results, rearranged so that no intermediate reaches 2**30:
# larger ints are heap objects on the ESP32 (31-bit small ints), and poll() allocates nothing.
# Products that could reach 2**30 are split (_mul_shr, _sq_shr), and P and H are computed from a
# t_fine clamped to the sensor's -40..85 degC. tests/firmware/test_alloc_bounds.py checks every
# intermediate for any ADC reading and calibrations around those of real parts. Pressure
# resolution is 1 Pa (the 64-bit formula would give 1/256 Pa; the sensor's own noise is ~1.3 Pa
# RMS at oversampling x1).
import time

from micropython import const

from drivers.i2csensor import MARGIN_MS, I2CSensor
from sensor import NO_DATA, RANGE, STUCK

_REG_CALIB_TP = const(0x88)    # 0x88..0xA1: dig_T1..dig_P9, (0xA0 unused), dig_H1
_REG_ID = const(0xD0)
_REG_RESET = const(0xE0)
_REG_CALIB_H = const(0xE1)     # 0xE1..0xE7: dig_H2..dig_H6
_REG_CTRL_HUM = const(0xF2)
_REG_STATUS = const(0xF3)
_REG_CTRL_MEAS = const(0xF4)
_REG_CONFIG = const(0xF5)
_REG_DATA = const(0xF7)        # 0xF7..0xFE: press msb/lsb/xlsb, temp msb/lsb/xlsb, hum msb/lsb

_CHIP_ID = const(0x60)
_RESET_WORD = const(0xB6)
_STATUS_MEASURING = const(0x08)
_STATUS_IM_UPDATE = const(0x01)
_MODE_FORCED = const(0x01)
_T_STARTUP = const(2)          # ms after power-on or soft reset
_T_RETRY = const(1000)
_SKIPPED = const(0x80000)      # ADC value of a measurement switched off

_OSRS = (0, 1, 2, 4, 8, 16)    # register code -> oversampling factor
_T_FINE_MIN = const(-204800)   # t_fine of -40 and 85 degC: P and H are computed within them
_T_FINE_MAX = const(435200)


def _mul_shr(a, c, n):
    # floor(a * c / 2**n) without forming a * c, for n >= 1: the caller keeps (a >> n) * c
    # and c * 2**n below 2**30.
    return (a >> n) * c + (((a & ((1 << n) - 1)) * c) >> n)


def _sq_shr(d, n):
    # floor(d * d / 2**n) for |d| < 2**17, from 6-bit limbs.
    if d < 0:
        d = -d
    dh = d >> 6
    dl = d & 63
    mid = ((dh * dl) << 7) + dl * dl       # d * d = dh * dh * 2**12 + mid
    if n >= 12:
        return (dh * dh + (mid >> 12)) >> (n - 12)
    return ((dh * dh) << (12 - n)) + (mid >> n)


class BME280(I2CSensor):
    name = "bme"
    channels = (("t", "Cel", -2), ("rh", "%RH", -2), ("p", "Pa", 0))
    warmup_ms = 0

    # osrs_*: the datasheet's oversampling register codes, 0 = skipped, 1..5 = x1, x2, x4, x8, x16.
    # The defaults are its "weather monitoring" settings.
    def __init__(self, i2c, addr=0x76, osrs_t=1, osrs_p=1, osrs_h=1, stuck_ms=300000):
        super().__init__(i2c, addr, 8, stuck_ms)
        for c in (osrs_t, osrs_p, osrs_h):
            if not 0 <= c <= 5:
                raise ValueError("BME280: oversampling code must be 0..5 (skip, x1..x16)")
        self._ctrl_hum = osrs_h
        self._ctrl_meas = (osrs_t << 5) | (osrs_p << 2) | _MODE_FORCED
        # Maximum measurement time, datasheet 9.1, in ms (rounded up).
        t_max = 1250 + 2300 * _OSRS[osrs_t]
        if osrs_p:
            t_max += 2300 * _OSRS[osrs_p] + 575
        if osrs_h:
            t_max += 2300 * _OSRS[osrs_h] + 575
        self._t_meas = (t_max + 999) // 1000
        self._b1 = bytearray(1)
        self._raw = bytearray(8)
        self._cal = bytearray(33)
        self.t_fine = 0
        self._running = False   # a forced conversion is under way
        self._due = 0
        self._up = False
        try:
            self.i2c.readfrom_mem_into(addr, _REG_ID, self._b1)
        except OSError as e:
            raise OSError("BME280 not answering at 0x%02x (%s)" % (addr, e))
        if self._b1[0] != _CHIP_ID:
            raise ValueError("BME280 at 0x%02x: chip id 0x%02x, expected 0x60"
                             % (addr, self._b1[0]))
        self._reset()
        time.sleep_ms(_T_STARTUP + MARGIN_MS)
        self._configure()

    def _reset(self):
        # Soft reset: back to sleep mode with default registers; NVM copy takes 2 ms.
        self._b1[0] = _RESET_WORD
        self.i2c.writeto_mem(self.addr, _REG_RESET, self._b1)

    def _configure(self):
        # After the reset: read the trimming once, then set oversampling (ctrl_hum only takes
        # effect with the next write to ctrl_meas, which poll() does).
        self.i2c.readfrom_mem_into(self.addr, _REG_STATUS, self._b1)
        if self._b1[0] & _STATUS_IM_UPDATE:
            raise OSError(116)   # still copying NVM: try again later, as a timeout
        cal = self._cal
        mv = memoryview(cal)
        self.i2c.readfrom_mem_into(self.addr, _REG_CALIB_TP, mv[:26])
        self.i2c.readfrom_mem_into(self.addr, _REG_CALIB_H, mv[26:])
        self._unpack()
        self._b1[0] = self._ctrl_hum
        self.i2c.writeto_mem(self.addr, _REG_CTRL_HUM, self._b1)
        self._b1[0] = 0   # filter off, as recommended for forced-mode weather monitoring
        self.i2c.writeto_mem(self.addr, _REG_CONFIG, self._b1)
        self._up = True
        self._running = False

    def _unpack(self):
        c = self._cal

        def u16(i):
            return c[i] | (c[i + 1] << 8)

        def s16(i):
            v = u16(i)
            return v - 65536 if v > 32767 else v

        self.T1, self.T2, self.T3 = u16(0), s16(2), s16(4)
        self.P1, self.P2, self.P3 = u16(6), s16(8), s16(10)
        self.P4, self.P5, self.P6 = s16(12), s16(14), s16(16)
        self.P7, self.P8, self.P9 = s16(18), s16(20), s16(22)
        self.H1 = c[25]
        self.H2 = s16(26)
        self.H3 = c[28]
        h4 = (c[29] << 4) | (c[30] & 0x0F)
        h5 = (c[31] << 4) | (c[30] >> 4)
        self.H4 = h4 - 4096 if h4 > 2047 else h4
        self.H5 = h5 - 4096 if h5 > 2047 else h5
        self.H6 = c[32] - 256 if c[32] > 127 else c[32]

    def compensate_t(self, adc_t):
        # 0.01 degC; sets t_fine for P and H, clamped to -40..85 degC.
        var1 = _mul_shr((adc_t >> 3) - (self.T1 << 1), self.T2, 11)
        var2 = _mul_shr(_sq_shr((adc_t >> 4) - self.T1, 12), self.T3, 14)
        t_fine = var1 + var2
        self.t_fine = (_T_FINE_MIN if t_fine < _T_FINE_MIN
                       else _T_FINE_MAX if t_fine > _T_FINE_MAX else t_fine)
        return (t_fine * 5 + 128) >> 8

    def compensate_p(self, adc_p):
        # Whole Pa, the datasheet's 32-bit formula; 0 if the calibration makes it undefined.
        var1 = (self.t_fine >> 1) - 64000
        q = var1 >> 2
        var2 = _sq_shr(q, 11) * self.P6 + ((var1 * self.P5) << 1)
        var2 = (var2 >> 2) + (self.P4 << 16)
        # Datasheet: var1 = ((P3 * (q * q >> 13) >> 3) + (P2 * var1 >> 1)) >> 18, whose sum can
        # reach 2**30: P2 * (var1 >> 1) is taken apart at bit 8 and the low parts added first.
        v = var1 >> 1
        r = ((v & 255) * self.P2 + (((var1 & 1) * self.P2) >> 1)
             + _mul_shr(_sq_shr(q, 13), self.P3, 3))
        var1 = ((v >> 8) * self.P2 + (r >> 8)) >> 10
        # ((32768 + var1) * P1) >> 15, without the 2**30-sized product.
        var1 = self.P1 + ((var1 * self.P1) >> 15)
        if var1 <= 0:
            return 0
        x = (1048576 - adc_p) - (var2 >> 12)
        if x <= 0:
            return 0
        # Datasheet: p = x * 3125 (as uint32); p < 2**31 ? (p << 1) / var1 : (p / var1) * 2.
        # Same integer results through long division, never forming x * 3125.
        qd = x // var1
        r = x - qd * var1
        if x < 687195:       # x * 3125 < 2**31
            p = qd * 6250 + (r * 6250) // var1
        else:
            p = (qd * 3125 + (r * 3125) // var1) * 2
        var1 = _mul_shr(_sq_shr(p >> 3, 13), self.P9, 12)
        var2 = _mul_shr(p >> 2, self.P8, 13)
        return p + ((var1 + var2 + self.P7) >> 4)

    def compensate_h(self, adc_h):
        # 1/1024 %RH.
        v = self.t_fine - 76800
        # Datasheet: a = ((adc_h << 14) - (H4 << 20) - H5 * v + 16384) >> 15, where the first
        # three terms are 2**14 * u: u's low bit joins the H5 term before the shift.
        u = adc_h - (self.H4 << 6) + 1
        a = (u >> 1) + ((((u & 1) << 14) - self.H5 * v) >> 15)
        b = _mul_shr((v * self.H6) >> 10, ((v * self.H3) >> 11) + 32768, 10) + 2097152
        b = (b >> 14) * self.H2 + (((b & 0x3FFF) * self.H2 + 8192) >> 14)
        # v = a * b reaches 2**31: kept as w = v >> 12 and v & 4095 (from a * b = 256 * a * bh
        # + a * bl), which is all the rest of the formula needs.
        x = a * (b >> 8)
        y = a * (b & 255)
        r = ((x & 15) << 8) + y
        w = (x >> 4) + (r >> 12)
        lo = r & 4095
        # v -= (((v >> 15) ** 2 >> 7) * H1) >> 4, then clamp to 0..100 %RH and >> 12.
        c = _mul_shr(_sq_shr(w >> 3, 7), self.H1, 4)
        w -= c >> 12
        if lo < (c & 4095):
            w -= 1
        if w < 0:
            return 0
        if w > 102400:
            return 102400
        return w

    def poll(self, now_ms, out, off):
        try:
            if not self._up:
                self._configure()
            if self._running:
                if time.ticks_diff(now_ms, self._due) < 0:
                    return NO_DATA
                self.i2c.readfrom_mem_into(self.addr, _REG_STATUS, self._b1)
                if self._b1[0] & _STATUS_MEASURING:
                    return NO_DATA
                self.i2c.readfrom_mem_into(self.addr, _REG_DATA, self._raw)
                flags = self._decode(out, off, now_ms)
            else:
                flags = NO_DATA
            # Start the next conversion; its result is read by the next poll.
            self._b1[0] = self._ctrl_meas
            self.i2c.writeto_mem(self.addr, _REG_CTRL_MEAS, self._b1)
            self._running = True
            self._due = time.ticks_add(now_ms, self._t_meas)
            return flags
        except OSError as e:
            if self._up:
                self.restarts += 1
            self._up = False
            self._running = False
            return self._bus_error(e)

    def _decode(self, out, off, now):
        r = self._raw
        adc_p = (r[0] << 12) | (r[1] << 4) | (r[2] >> 4)
        adc_t = (r[3] << 12) | (r[4] << 4) | (r[5] >> 4)
        adc_h = (r[6] << 8) | r[7]
        if adc_t == _SKIPPED:
            return RANGE | NO_DATA
        t = self.compensate_t(adc_t)
        flags = 0
        if t < -4000 or t > 8500:
            flags = RANGE
        out[off] = t
        # A skipped humidity or pressure (oversampling 0) is reported as 0 and RANGE.
        if adc_h == 0x8000:
            out[off + 1] = 0
            flags |= RANGE
        else:
            # 1/1024 %RH to hundredths, rounded.
            out[off + 1] = (self.compensate_h(adc_h) * 100 + 512) >> 10
        if adc_p == _SKIPPED:
            out[off + 2] = 0
            flags |= RANGE
        else:
            p = self.compensate_p(adc_p)
            if p < 30000 or p > 110000:
                flags |= RANGE
            out[off + 2] = p
        if self._stuck(r, 8, now):
            flags |= STUCK
        return flags
