# Sensirion's VOC Index (Gas Index Algorithm 3.2, VOC mode), written for MicroPython from the
# published algorithm: the SGP40 raw signal is normalised by a slowly learned mean and standard
# deviation (12 h time constants, with a fast initial phase), mapped through a sigmoid onto
# 0..500 with 100 = the learned average, and smoothed by an adaptive low-pass filter.
# Output 0 during the first 45 s (blackout), then 1..500.
#
# Memory: process() allocates nothing. Floats are heap objects on the ESP32, and so is every int
# of 2**30 or more (its small ints have 31 bits), so the algorithm runs in integer fixed point
# with every intermediate below 2**30 in magnitude: comments give each value's binary point
# (Q16 = in units of 2**-16), products go through _mulshift (15-bit limbs), quotients through
# _div (long division), exp() through two tables and a cubic, sqrt() through Newton's method
# started at the previous standard deviation. tests/firmware/test_alloc_bounds.py checks the
# bound on every intermediate over the whole state space; a sample costs ~0.12 ms on the VM.
#
# Accuracy: index Q16, mean whole ticks + Q28, standard deviation Q16, learning rates to ~1e-5
# relative. Over tests/firmware/test_voc_index.py's 4 h signal it agrees with Sensirion's float32
# reference within one index point (17 of 14400 samples differ, a .5 rounding; the float64 port
# it replaced: 19); over 24 h of a noisy signal with events it stays within 0.002 index points of
# that float64 port. Limits beyond Sensirion's: the standard deviation saturates at ~16000 ticks
# and the gating counter at 16383 minutes (11 days gated).
from array import array

from micropython import const

_ONE = const(0x10000000)        # 1.0 in Q28
_HALF16 = const(0x8000)         # 0.5 in Q16
_X_MAX = const(50 << 20)        # sigmoid arguments saturate beyond +-50 (Q20), as Sensirion's
_SRAW_MINIMUM = const(20000)
_SRAW_RANGE = const(32767)
_BLACKOUT = const(45)           # s
_STD_BONUS = const(220 << 16)   # Q16
_STD_MAX = const(0x3FFFFFFF - (220 << 16))
_GATING_MIN_MAX = const(0x3FFFFFFF)   # Q16 minutes
_UPTIME_MAX = const(32767)      # the uptime counters saturate where the fixed-point original did
_TAU_INITIAL_MEAN = const(20)   # s
_TAU_INITIAL_VARIANCE = const(2500)
_INIT_DURATION_MEAN = const(2700)       # s (0.75 h)
_INIT_DURATION_VARIANCE = const(5220)   # s (1.45 h)
_GATING_THRESHOLD = const(340 << 16)    # index, Q16
_GATING_THRESHOLD_SPAN = const(170 << 16)   # initial threshold 510 = 340 + 170
_SIGMOID_X0 = const(213 << 12)          # Q12
_GI_SPAN = const(8000 << 12)            # |gi - x0| beyond this saturates the sigmoid anyway
_LP_TAU_FAST = const(20)        # s
_LP_TAU_SLOW = const(500)
_LP_TAU_SPAN = const(480 << 20)         # (slow - fast), Q20
# Rate constants: 0.0065 (index sigmoid) in Q37, 0.09 (gating) in Q32, 0.01 (initial phases)
# in Q36, the gating ratio 0.3 as 1.3 and 0.3 in Q28.
_K_INDEX = const(893353198)
_K_GATING = const(386547057)
_K_INIT = const(687194767)
_GATING_1_3 = const(348966093)
_GATING_0_3 = const(80530637)

# exp(-m) for m = 0..19 and exp(-j/64) for j = 0..63, Q28 (exact roundings).
_EXP_INT = array("i", (
    268435456, 98751886, 36328788, 13364614, 4916567, 1808704, 665385, 244781, 90050, 33128,
    12187, 4483, 1649, 607, 223, 82, 30, 11, 4, 2))
_EXP_FRAC = array("i", (
    268435456, 264273750, 260176565, 256142901, 252171774, 248262213, 244413264, 240623988,
    236893458, 233220766, 229605013, 226045317, 222540809, 219090634, 215693948, 212349924,
    209057743, 205816603, 202625713, 199484292, 196391575, 193346806, 190349241, 187398150,
    184492811, 181632515, 178816564, 176044270, 173314957, 170627957, 167982616, 165378287,
    162814334, 160290132, 157805064, 155358523, 152949912, 150578644, 148244138, 145945826,
    143683146, 141455545, 139262480, 137103415, 134977824, 132885187, 130824993, 128796739,
    126799931, 124834080, 122898707, 120993339, 119117512, 117270766, 115452651, 113662724,
    111900546, 110165689, 108457728, 106776247, 105120835, 103491087, 101886607, 100307001))

# The last product of _product(): a * b = _P[0] * 2**30 + _P[1].
_P = array("i", (0, 0))


def _product(a, b):
    # The 60-bit product of 0 <= a, b < 2**30, in two 30-bit limbs, from 15-bit partial products.
    a1 = a >> 15
    a0 = a & 0x7FFF
    b1 = b >> 15
    b0 = b & 0x7FFF
    lo = a0 * b0
    m1 = a1 * b0
    m2 = a0 * b1
    u = (m1 & 0x7FFF) + (m2 & 0x7FFF) + (lo >> 15)
    _P[0] = a1 * b1 + (m1 >> 15) + (m2 >> 15) + (u >> 15)
    _P[1] = ((u & 0x7FFF) << 15) | (lo & 0x7FFF)


def _mulshift(a, b, n):
    # round(a * b / 2**n), halves away from zero, for |a|, |b| < 2**30 and n >= 0; the caller
    # keeps the result below 2**30.
    neg = False
    if a < 0:
        a = -a
        neg = True
    if b < 0:
        b = -b
        neg = not neg
    _product(a, b)
    if n == 0:
        r = (_P[0] << 30) + _P[1]
    elif n <= 30:
        r = (_P[0] << (30 - n)) + (((_P[1] >> (n - 1)) + 1) >> 1)
    else:
        r = (_P[0] + (1 << (n - 31))) >> (n - 30)
    return -r if neg else r


def _bits(v):
    # Number of bits of 0 <= v < 2**30.
    n = 0
    if v >= 0x8000:
        v >>= 15
        n = 15
    while v:
        v >>= 1
        n += 1
    return n


def _div(a, b, n):
    # round(a * 2**n / b) for 0 <= a < 2**30 and 0 < b < 2**30, by long division; the caller
    # keeps the result below 2**30. The remainder stays below b, so it takes k bits at a time
    # where b < 2**(30 - k), and one bit at a time by comparison when b is larger still.
    q = a // b
    r = a - q * b
    k = 30 - _bits(b)
    if k > 8:
        k = 8
    while n > 0:
        if k <= 0:
            q += q
            if r >= b - r:
                r -= b - r
                q += 1
            else:
                r += r
            n -= 1
        else:
            s = k if k < n else n
            r <<= s
            d = r // b
            q = (q << s) + d
            r -= d * b
            n -= s
    if r >= b - r:
        q += 1
    return q


def _isqrt(v):
    # floor(sqrt(v)) for 0 <= v < 2**30, digit by digit.
    r = 0
    b = 1 << 28
    while b > v:
        b >>= 2
    while b:
        if v >= r + b:
            v -= r + b
            r = (r >> 1) + b
        else:
            r >>= 1
        b >>= 2
    return r


def _exp_neg(x):
    # exp(-x) in Q28 for x >= 0 in Q20: exp(-m) * exp(-j/64) * exp(-r) with r < 1/64, the last
    # as 1 - r + r**2/2 - r**3/6 (error below 2**-28).
    m = x >> 20
    if m >= 20:
        return 0
    r = x & 0x3FFF                      # Q20, < 2**14
    r2 = (r * r + 0x800) >> 12          # Q28
    p = _ONE - (r << 8) + ((r2 + 1) >> 1) - (((r2 * r) >> 20) + 3) // 6
    return _mulshift(_mulshift(_EXP_INT[m], _EXP_FRAC[(x >> 14) & 63], 28), p, 28)


def _sigmoid(x):
    # 1 / (1 + exp(x)) in Q28 for x in Q20, saturating beyond +-50 as Sensirion's.
    if x > _X_MAX:
        return 0
    if x < -_X_MAX:
        return _ONE
    if x >= 0:
        e = _exp_neg(x)
        return _div(e, _ONE + e, 28)
    e = _exp_neg(-x)
    return _div(_ONE, _ONE + e, 28)


def _rdiv(a, b):
    # round(a / b) for a, b > 0 (construction only: a may be any size).
    return (2 * a + b) // (2 * b)


class VocIndex:
    # Parameters as Sensirion's GasIndexAlgorithm_set_tuning_parameters, in whole units;
    # sampling_interval in seconds (1 for the SGP40's standard mode, up to 10 for low power).
    def __init__(self, sampling_interval=1, index_offset=100, learning_time_offset_hours=12,
                 learning_time_gain_hours=12, gating_max_duration_minutes=180,
                 std_initial=50, gain_factor=230):
        for name, v, lo, hi in (
                ("sampling_interval", sampling_interval, 1, 10),
                ("index_offset", index_offset, 1, 250),
                ("learning_time_offset_hours", learning_time_offset_hours, 1, 1000),
                ("learning_time_gain_hours", learning_time_gain_hours, 1, 1000),
                ("gating_max_duration_minutes", gating_max_duration_minutes, 0, 3000),
                ("std_initial", std_initial, 10, 5000),
                ("gain_factor", gain_factor, 1, 1000)):
            if not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError("VocIndex: %s must be an integer in %d..%d" % (name, lo, hi))
        dt = sampling_interval
        self.dt = dt
        self.gain = gain_factor
        self.std_initial = std_initial << 16
        self.gating_max = gating_max_duration_minutes << 16
        # The scaled sigmoid: above the sigmoid's midpoint (gi >= 0) it ends at the offset
        # with a shift, below it scales the unit sigmoid (Q16 index points).
        self.shift = ((500 - 5 * index_offset) << 16) // 4
        self.upper = (500 << 16) + self.shift
        self.lower = (5 * index_offset) << 16
        # Learning rates: gamma_mean = 8 * 64 * dt / (tau + dt) in Q22, gamma_variance =
        # 64 * dt / (tau + dt) in Q30 (exact roundings of the integer parameters).
        self.g_mean0 = _rdiv((512 * dt) << 22, learning_time_offset_hours * 3600 + dt)
        self.g_var0 = _rdiv((64 * dt) << 30, learning_time_gain_hours * 3600 + dt)
        self.g_mean_init = _rdiv((512 * dt) << 22, _TAU_INITIAL_MEAN + dt)
        self.g_var_init = _rdiv((64 * dt) << 30, _TAU_INITIAL_VARIANCE + dt)
        self.a1 = _rdiv(dt << 28, _LP_TAU_FAST + dt)
        self.a2 = _rdiv(dt << 28, _LP_TAU_SLOW + dt)
        self.reset()

    def reset(self):
        # Forget everything learned (after an interruption of more than ~10 min).
        self.uptime = 0              # s, until the blackout ends
        self.sraw = 0                # ticks above _SRAW_MINIMUM
        self.index = 0               # Q16
        # Mean/variance estimator: mean = m_ticks + m_frac / 2**28, std in Q16.
        self.m_init = False
        self.m_ticks = 0
        self.m_frac = 0
        self.std = self.std_initial
        self.g_mean = 0              # Q22
        self.g_var = 0               # Q30
        self.up_gamma = 0            # s
        self.up_gating = 0           # s
        self.gating_min = 0          # Q16
        # Adaptive low-pass (Q16 index points).
        self.lp_init = False
        self.x1 = self.x2 = self.x3 = 0

    def process(self, sraw):
        # One raw sample (ticks) in, the VOC index (int, 0 during blackout) out.
        if self.uptime <= _BLACKOUT:
            self.uptime += self.dt
            return (self.index + _HALF16) >> 16
        if 0 < sraw < 65000:
            if sraw < _SRAW_MINIMUM + 1:
                sraw = _SRAW_MINIMUM + 1
            elif sraw > _SRAW_MINIMUM + _SRAW_RANGE:
                sraw = _SRAW_MINIMUM + _SRAW_RANGE
            self.sraw = sraw - _SRAW_MINIMUM
        # The deviation from the learned mean (Q14, |e| < 2**15 ticks) drives both the index,
        # with the estimator as it stood before this sample, and the estimator's update.
        e = ((self.sraw - self.m_ticks) << 14) - ((self.m_frac + 0x2000) >> 14)
        k = _div(self.gain << 16, self.std + _STD_BONUS, 26)     # gain / (std + 220), Q26
        gi = -_mulshift(e, k, 28)                                # Q12
        gi = self._lowpass(self._sigmoid_scaled(gi))
        if gi < _HALF16:
            gi = _HALF16
        self.index = gi
        if self.sraw > 0:
            self._estimate(e)
        return (gi + _HALF16) >> 16

    def _sigmoid_scaled(self, gi):
        # Q12 in, Q16 index points out.
        d = gi - _SIGMOID_X0
        if d > _GI_SPAN:
            d = _GI_SPAN
        elif d < -_GI_SPAN:
            d = -_GI_SPAN
        s = _sigmoid(-_mulshift(d, _K_INDEX, 29))    # x = -0.0065 * (gi - 213), Q20
        if gi >= 0:
            return _mulshift(self.upper, s, 28) - self.shift
        return _mulshift(self.lower, s, 28)

    def _lowpass(self, sample):
        # Two first-order low-passes (20 s and 500 s); their distance picks the time constant
        # of the third, which is the output.
        if not self.lp_init:
            self.x1 = self.x2 = self.x3 = sample
            self.lp_init = True
        self.x1 += _mulshift(sample - self.x1, self.a1, 28)
        self.x2 += _mulshift(sample - self.x2, self.a2, 28)
        d = self.x1 - self.x2
        if d < 0:
            d = -d
        f1 = _exp_neg((d * 16 + 2) // 5)             # exp(-0.2 * |x1 - x2|), Q28
        dt = self.dt << 20
        tau = (_LP_TAU_FAST << 20) + _mulshift(_LP_TAU_SPAN, f1, 28)     # Q20 s
        self.x3 += _mulshift(sample - self.x3, _div(dt, dt + tau, 28), 28)
        return self.x3

    def _gamma(self):
        # Learning rates for mean and variance: fast at first, slow later, frozen (gated)
        # while the index is high so that an event is not learned as the new normal.
        dt = self.dt
        if self.up_gamma < _UPTIME_MAX - dt:
            self.up_gamma += dt
        if self.up_gating < _UPTIME_MAX - dt:
            self.up_gating += dt
        same = self.up_gating == self.up_gamma
        s_mean = _sigmoid(_mulshift(self.up_gamma - _INIT_DURATION_MEAN, _K_INIT, 16))
        s = s_mean if same else _sigmoid(
            _mulshift(self.up_gating - _INIT_DURATION_MEAN, _K_INIT, 16))
        threshold = _GATING_THRESHOLD + _mulshift(_GATING_THRESHOLD_SPAN, s, 28)
        s_gating_mean = _sigmoid(_mulshift(self.index - threshold, _K_GATING, 28))
        g = self.g_mean0 + _mulshift(self.g_mean_init - self.g_mean0, s_mean, 28)
        self.g_mean = _mulshift(g, s_gating_mean, 28)
        s_var = _sigmoid(_mulshift(self.up_gamma - _INIT_DURATION_VARIANCE, _K_INIT, 16))
        s = s_var if same else _sigmoid(
            _mulshift(self.up_gating - _INIT_DURATION_VARIANCE, _K_INIT, 16))
        threshold = _GATING_THRESHOLD + _mulshift(_GATING_THRESHOLD_SPAN, s, 28)
        s_gating_var = _sigmoid(_mulshift(self.index - threshold, _K_GATING, 28))
        g = self.g_var0 + _mulshift(self.g_var_init - self.g_var0, s_var - s_mean, 28)
        self.g_var = _mulshift(g, s_gating_var, 28)
        # Minutes spent gated: up by dt while fully gated, down by 0.3 dt when not at all.
        f = _mulshift(_ONE - s_gating_mean, _GATING_1_3, 28) - _GATING_0_3      # Q28
        m = self.gating_min + (((f + 0x800) >> 12) * dt * 2 + 60) // 120       # Q16
        if m < 0:
            m = 0
        elif m > _GATING_MIN_MAX:
            m = _GATING_MIN_MAX
        self.gating_min = m
        if m > self.gating_max:
            self.up_gating = 0

    def _estimate(self, e):
        if not self.m_init:
            self.m_init = True
            self.m_ticks = self.sraw
            self.m_frac = 0
            return
        self._gamma()
        a = -e if e < 0 else e
        self._std(a)
        # mean += gamma_mean * delta / 8, delta = e / 64: the exact product g (Q22) * a (Q14)
        # is the step in units of 2**-45 ticks: whole ticks and a Q28 fraction.
        _product(self.g_mean, a)
        whole = _P[0] >> 15
        frac = ((_P[0] & 0x7FFF) << 13) | (_P[1] >> 17)
        if e < 0:
            whole = -whole
            if frac:
                whole -= 1
                frac = _ONE - frac
        frac += self.m_frac
        if frac >= _ONE:
            frac -= _ONE
            whole += 1
        self.m_frac = frac
        self.m_ticks += whole

    def _std(self, a):
        # std' = sqrt((1 - gv/64) * std**2 + gv * (64 - gv) * delta**2), delta = a / 64 ticks
        # (a in Q14, so delta in Q20), with both terms scaled by 4**-m into 29 bits.
        s = self.std
        gv = self.g_var                                         # Q30
        a4 = a >> 2
        m = _bits(s if s > a4 else a4) - 14
        if m < 0:
            m = 0
        t1 = _mulshift(s, s, 2 * m)                             # std**2 / 4**m, Q32
        t1 -= _mulshift(t1, gv, 36)                             # * (1 - gv / 64)
        g2 = gv - _mulshift(gv, gv, 36)                         # gv * (64 - gv), Q24
        t2 = _mulshift(_mulshift(a, a, 2 * m + 8), g2, 24)      # delta**2 / 4**m * g2, Q32
        v = t1 + t2
        # Newton's method for y = sqrt(v * 4**m) (Q16), as y += (v * 4**m - y**2) / (2 * y) with
        # the residual formed at v's scale (the only rounding is the step's): from the old std
        # when the new term does not dominate (one step is then exact), else from an isqrt.
        y = s if t2 <= t1 else (_isqrt(v) + 1) << m
        for _ in range(8):
            r = v - _mulshift(y, y, 2 * m)
            if r >= 0:
                step = _div(r, y, 2 * m - 1) if m else (r + y) // (2 * y)
            else:
                step = -_div(-r, y, 2 * m - 1) if m else -((y - r) // (2 * y))
            y += step
            if -1 <= step <= 1:
                break
        if y > _STD_MAX:
            y = _STD_MAX
        elif y < 1:
            y = 1
        self.std = y
