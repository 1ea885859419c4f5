# The weighting cascade in fixed point: one @micropython.viper pass over a block of 32-bit I2S
# slots, in place: slot unpacking, [equaliser shelf], 1..4 first-order high-passes, [biquad].
#
# Why this shape (docs/noise.md has the numbers):
# - Samples stay 24-bit integers (the microphone's own resolution), shifted right by `shift`
#   bits of headroom when the design needs it, so every signal stays below 2**28. The bound is
#   proved per design, not hoped for: each section's impulse-response L1 norm (2 for a
#   first-order high-pass) multiplies the worst input, and `shift` is chosen so the product fits.
# - Viper ints are 32-bit machine words on the ESP32 (64-bit on the unix VM: the bounds, not the
#   VM, keep the arithmetic portable). A product coefficient * signal needs up to 45 bits, so the
#   signal is split into 14-bit halves: floor(c*y / 2**14) = c*(y >> 14) + (c*(y & 0x3FFF) >> 14)
#   exactly, each product < 2**29 for |c| < 2**15.
# - A pole near z = 1 (20.6 Hz at 48 kHz is 1 - 0.0027) is held as e = 1 - pole with 15
#   significant bits (Q15..Q30 as needed), not as a Q14 coefficient with 3 significant bits:
#   y = x - x1 + y1 - e*y1. Rounding noise stays near -140 dBFS, 50 dB below 30 dB(A).
# - One pass with the state in locals: separate passes per section cost twice the time.
# - ptr32 loads are zero-extended on a 64-bit VM: (v ^ 2**31) - 2**31 sign-extends on both.
import array

import micropython
from micropython import const

from noise.mic import CLIPPED, DEAD
from noise.weighting import BQ, HP, SHELF

_LIMIT = const(1 << 28)    # every signal and state stays below this in magnitude
_MAX_C = const(32767)      # coefficients are 16-bit signed so c * (14-bit half) < 2**29
_Q_BQ = const(14)
_MAX_HP = const(4)

# The state array: configuration, input statistics, then each stage's coefficients and history.
_CFG = const(0)     # bit 0: shelf; bits 1-3: number of high-passes; bit 4: biquad
_SHIFT = const(1)   # headroom: right shift of the 24-bit sample
_RMAX = const(2)    # largest and smallest 24-bit sample of the last block
_RMIN = const(3)
_XIN = const(4)     # previous input of the first high-pass
_SH = const(5)      # shelf: ez, shift, ep, shift, x1, y1
_HP0 = const(11)    # high-pass k at _HP0 + 3k: e, shift, y1
_BQ0 = const(23)    # biquad: b0, b1, b2, a1, a2 (Q14), x2, y1, y2 (its x1 is the last y1)
_LEN = const(31)


@micropython.viper
def _run(buf, n: int, st) -> int:
    # Filter the n slots of buf in place; returns the largest |output|.
    b = ptr32(buf)
    s = ptr32(st)
    m = int(1) << 31
    cfg = int(s[_CFG])
    shelf = cfg & 1
    nhp = (cfg >> 1) & 7
    bq = cfg & 16
    hs = int(s[_SHIFT])
    cz = int(s[_SH])
    shz = int(s[_SH + 1])
    rz = (int(1) << shz) >> 1
    cp = int(s[_SH + 2])
    shp = int(s[_SH + 3])
    rp = (int(1) << shp) >> 1
    ex1 = (int(s[_SH + 4]) ^ m) - m
    ey1 = (int(s[_SH + 5]) ^ m) - m
    c0 = int(s[_HP0])
    s0 = int(s[_HP0 + 1])
    r0 = (int(1) << s0) >> 1
    y0 = (int(s[_HP0 + 2]) ^ m) - m
    c1 = int(s[_HP0 + 3])
    s1 = int(s[_HP0 + 4])
    r1 = (int(1) << s1) >> 1
    y1 = (int(s[_HP0 + 5]) ^ m) - m
    c2 = int(s[_HP0 + 6])
    s2 = int(s[_HP0 + 7])
    r2 = (int(1) << s2) >> 1
    y2 = (int(s[_HP0 + 8]) ^ m) - m
    c3 = int(s[_HP0 + 9])
    s3 = int(s[_HP0 + 10])
    r3 = (int(1) << s3) >> 1
    y3 = (int(s[_HP0 + 11]) ^ m) - m
    xin = (int(s[_XIN]) ^ m) - m
    b0 = (int(s[_BQ0]) ^ m) - m
    b1 = (int(s[_BQ0 + 1]) ^ m) - m
    b2 = (int(s[_BQ0 + 2]) ^ m) - m
    a1 = (int(s[_BQ0 + 3]) ^ m) - m
    a2 = (int(s[_BQ0 + 4]) ^ m) - m
    u2 = (int(s[_BQ0 + 5]) ^ m) - m
    v1 = (int(s[_BQ0 + 6]) ^ m) - m
    v2 = (int(s[_BQ0 + 7]) ^ m) - m
    rmax = ((int(b[0]) ^ m) - m) >> 8
    rmin = rmax
    pk = 0
    for i in range(n):
        raw = ((int(b[i]) ^ m) - m) >> 8     # 24-bit sample, MSB-justified in the slot
        if raw > rmax:
            rmax = raw
        elif raw < rmin:
            rmin = raw
        x = raw >> hs
        if shelf:
            tz = cz * (ex1 >> 14) + ((cz * (ex1 & 0x3FFF)) >> 14)
            tp = cp * (ey1 >> 14) + ((cp * (ey1 & 0x3FFF)) >> 14)
            ey1 = x - ex1 + ey1 + ((tz + rz) >> shz) - ((tp + rp) >> shp)
            ex1 = x
            x = ey1
        # High-pass k: y = x - x1 + y1 - e*y1; its x1 is the previous stage's old y1 (p).
        t = c0 * (y0 >> 14) + ((c0 * (y0 & 0x3FFF)) >> 14)
        p = y0
        y0 = x - xin + y0 - ((t + r0) >> s0)
        xin = x
        x = y0
        if nhp > 1:
            t = c1 * (y1 >> 14) + ((c1 * (y1 & 0x3FFF)) >> 14)
            q = y1
            y1 = x - p + y1 - ((t + r1) >> s1)
            p = q
            x = y1
        if nhp > 2:
            t = c2 * (y2 >> 14) + ((c2 * (y2 & 0x3FFF)) >> 14)
            q = y2
            y2 = x - p + y2 - ((t + r2) >> s2)
            p = q
            x = y2
        if nhp > 3:
            t = c3 * (y3 >> 14) + ((c3 * (y3 & 0x3FFF)) >> 14)
            q = y3
            y3 = x - p + y3 - ((t + r3) >> s3)
            p = q
            x = y3
        if bq:
            # Direct form I, Q14; its x1 is p. The high halves may wrap while summed (harmless
            # mod 2**32: the result fits); the low halves stay below 2**30.
            hi = b0 * (x >> 14) + b1 * (p >> 14) + b2 * (u2 >> 14) - a1 * (v1 >> 14) - a2 * (v2 >> 14)
            lo = (b0 * (x & 0x3FFF) + b1 * (p & 0x3FFF) + b2 * (u2 & 0x3FFF)
                  - a1 * (v1 & 0x3FFF) - a2 * (v2 & 0x3FFF))
            u2 = p
            v2 = v1
            v1 = hi + ((lo + 8192) >> 14)
            x = v1
        b[i] = x
        if x < 0:
            x = -x
        if x > pk:
            pk = x
    s[_RMAX] = rmax
    s[_RMIN] = rmin
    s[_XIN] = xin
    s[_SH + 4] = ex1
    s[_SH + 5] = ey1
    s[_HP0 + 2] = y0
    s[_HP0 + 5] = y1
    s[_HP0 + 8] = y2
    s[_HP0 + 11] = y3
    s[_BQ0 + 5] = u2
    s[_BQ0 + 6] = v1
    s[_BQ0 + 7] = v2
    return pk


def quantise_e(e):
    # e (0 < e < 1) as (c, sh): c = round(e * 2**(sh + 14)) with 15 significant bits.
    if not 0.0 < e < 1.0:
        raise ValueError("noise: pole offset %r out of (0, 1)" % e)
    q = 15
    while round(e * (1 << (q + 1))) <= _MAX_C:
        q += 1
    return round(e * (1 << q)), q - 14


def _bq_l1(p):
    # L1 norm of the biquad's impulse response (its poles are well inside the unit circle).
    b0, b1, b2, a1, a2 = p
    x1 = x2 = y1 = y2 = 0.0
    total = 0.0
    x = 1.0
    for _ in range(512):
        y = b0 * x + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
        x2, x1, y2, y1 = x1, x, y1, y
        x = 0.0
        total += abs(y)
    return total


class Cascade:
    # weighting.design() sections in the state array of _run(). Raises ValueError for a
    # design it cannot hold: [shelf] + 1..4 high-passes + [biquad], in that order.
    def __init__(self, secs, top):
        # top: the largest 24-bit code of the microphone (its end of scale).
        self.top = top
        st = array.array("i", bytes(4 * _LEN))
        kinds = [k for k, _ in secs]
        shelf = kinds[:1] == [SHELF]
        bq = kinds[-1:] == [BQ]
        nhp = len(kinds) - shelf - bq
        if nhp < 1 or nhp > _MAX_HP or kinds[shelf:len(kinds) - bq] != [HP] * nhp:
            raise ValueError("noise: cascade must be [shelf] + 1..4 high-passes + [biquad]")
        st[_CFG] = shelf | (nhp << 1) | (16 if bq else 0)
        bound = 1.0         # L1 norm of the cascade up to each stage, the worst of them
        self.bound = 1.0
        slowest = 1.0       # largest time constant (samples) of a pole near z = 1: 1 / e
        self._shelf_dc = 1.0
        k = _HP0
        for kind, p in secs:
            if kind == SHELF:
                st[_SH], st[_SH + 1] = quantise_e(p[0])
                st[_SH + 2], st[_SH + 3] = quantise_e(p[1])
                bound *= 1.0 + abs(p[0] - p[1]) / p[1]
                self._shelf_dc = p[0] / p[1]
                slowest = max(slowest, 1.0 / p[1])
            elif kind == HP:
                st[k], st[k + 1] = quantise_e(p[0])
                k += 3
                bound *= 2.0
                slowest = max(slowest, 1.0 / p[0])
            else:
                q = [round(v * (1 << _Q_BQ)) for v in p]
                if max(abs(v) for v in q) > _MAX_C or sum(abs(v) for v in q) >= 1 << 16:
                    raise ValueError("noise: biquad coefficients too large for Q14")
                for i in range(5):
                    st[_BQ0 + i] = q[i]
                bound *= _bq_l1(p)
            self.bound = max(self.bound, bound)
        # Right shift of the 24-bit input so that 2**23 * bound (+1% for rounding) < 2**28.
        shift = 0
        while (1 << (23 - shift)) * self.bound * 1.01 >= _LIMIT:
            shift += 1
        st[_SHIFT] = shift
        self.shift = shift
        self.st = st
        # Samples after prime() until a start-up step has decayed below 1 % (5 time constants).
        self.settle = int(5 * slowest)

    def prime(self, buf, n):
        # Set the history to the steady state for a constant input, the mean of the n slots of
        # buf (the first block after a gap): a DC offset (SPH0645) then sends no step through
        # the cascade, which matters for Z's 1 Hz blocker. Every state after the first
        # high-pass is 0. Runs once per wake, not per block.
        total = 0
        for i in range(n):
            total += buf[i] >> 8
        x = (total // n) >> self.shift
        st = self.st
        st[_SH + 4] = x
        x = int(x * self._shelf_dc)
        st[_SH + 5] = x
        st[_XIN] = x
        for k in range(_MAX_HP):
            st[_HP0 + 3 * k + 2] = 0
        for i in range(_BQ0 + 5, _LEN):
            st[i] = 0

    def run(self, buf, n):
        # Unpack and filter n slots of buf in place; returns the largest |output| (< 2**28).
        return _run(buf, n, self.st)

    def input_flags(self):
        # CLIPPED if the last block reached the converter's end of scale, DEAD if all its
        # samples were equal (nothing drives the data line).
        st = self.st
        hi = st[_RMAX]
        lo = st[_RMIN]
        flags = CLIPPED if hi >= self.top or lo < -self.top else 0
        if hi == lo:
            flags |= DEAD
        return flags
