# Sound levels from the weighted signal, in integers: Fast time weighting, LAeq, LAFmax/LAFmin
# and the statistical levels L10/L50/L90 from a fixed histogram.
#
# On the ESP32 every float is a heap object, so nothing here uses floats after __init__.
# Energies span > 120 dB, more than an int32 holds, so they are kept as (mantissa, exponent)
# pairs: value = m * 2**e with m normalised to [2**29, 2**30). Levels are log2 of a mean square
# in Q16 (1/65536 octave of power = 0.00005 dB) from a 65-entry table with linear interpolation
# (error < 0.0003 dB); the meter turns them into centi-dB with its calibration.
#
# Per DMA block of n samples: energy() sums squares in block floating point (samples scaled so
# the block peak has 11 bits: the sum of 256 squares fits 31 bits; the rounding is > 60 dB below
# the block's peak); update() then advances the Fast mean square
# F <- (1 - a) F + (a / N) E with a = 1 - exp(-N / (rate * 0.125 s)) (exact exponential decay
# between blocks: 34.7 dB/s), adds E to the interval's energy, and counts log2(F) in the
# histogram (1/32 octave bins = 0.094 dB, NBINS of them = 120 dB).
import array
import math

import micropython
from micropython import const

NBINS = const(1280)
_BIN_SHIFT = const(11)        # Q16 log2 >> 11 = 1/32 octave of power
_FAST_S = 0.125               # IEC 61672-1 time constant F

# Fields of the state array.
_FM = const(0)      # Fast mean square (m, e)
_FE = const(1)
_AM = const(2)      # energy of the interval (m, e); m == 0: nothing yet
_AE = const(3)
_NS = const(4)      # samples in the interval
_NB = const(5)      # blocks in the interval
_MAX = const(6)     # log2 of the Fast level's extremes in the interval
_MIN = const(7)
_EX = const(8)      # exponent of the last energy() result (its mantissa: _SQ)
_ALPHA = const(9)   # a (Q15 mantissa, shift): a = m / 2**shift
_ASH = const(10)
_BETA = const(11)   # a / N
_BSH = const(12)
_PRIME = const(13)  # 1 while priming: blocks only accumulate the energy that starts F
_N = const(14)      # nominal block length
_LO = const(15)     # log2 at the bottom of the histogram
_MBITS = const(16)  # mantissa bits of scaled samples in energy()
_SQ = const(17)     # mantissa of the last energy() result
_FIELDS = const(18)

# log2(1 + i/64) in Q16, i = 0..64.
_LOG2T = array.array("i", [round(math.log(1 + i / 64) / math.log(2) * 65536) for i in range(65)])


def _q15(x):
    # Positive x as (m, shift) with 2**14 <= m < 2**15 and x ~= m / 2**shift.
    sh = 0
    while x * (1 << (sh + 1)) < 32768:
        sh += 1
    while x * (1 << sh) >= 32768:
        sh -= 1
    return round(x * (1 << sh)), sh


@micropython.viper
def log2q(m: int, e: int) -> int:
    # log2(m * 2**e) in Q16 for m > 0.
    hi = int(1) << 30   # (literals >= 2**30 are not small ints on the ESP32: viper refuses them)
    while m >= hi:
        m >>= 1
        e += 1
    while m < (hi >> 1):
        m <<= 1
        e -= 1
    t = ptr32(_LOG2T)
    r = (m >> 13) - 65536
    i = r >> 10
    f = r & 1023
    lo = int(t[i])
    return ((e + 29) << 16) + lo + (((int(t[i + 1]) - lo) * f) >> 10)


@micropython.viper
def cdb(l2: int) -> int:
    # Q16 log2 of a power ratio in centi-dB (10 log10(2) = 3.0103 dB per octave), rounded.
    v = (l2 >> 16) * 30103 + ((((l2 & 0xFFFF) >> 1) * 30103) >> 15)
    return (v + 50) // 100


@micropython.viper
def energy(buf, n: int, st, pk: int):
    # Sum of squares of the n int32 samples of buf (pk: their largest magnitude) as
    # st[_SQ] * 2**st[_EX] (in st, not returned: a result of 2**30 would be a heap object on the
    # ESP32). Samples are scaled down so the peak has st[_MBITS] bits.
    b = ptr32(buf)
    s = ptr32(st)
    m = int(1) << 31
    sh = 0
    lim = int(1) << int(s[_MBITS])
    while (pk >> sh) >= lim:
        sh += 1
    acc = 0
    for i in range(n):
        x = ((int(b[i]) ^ m) - m) >> sh
        acc += x * x
    s[_SQ] = acc
    s[_EX] = sh + sh


@micropython.viper
def update(st, hist, n: int) -> int:
    # Account one block of n samples whose sum of squares energy() left in st. Returns log2 Q16
    # of the Fast mean square after the block (0 while priming).
    s = ptr32(st)
    h = ptr16(hist)
    m = int(1) << 31    # signed fields: ptr32 loads zero-extend on a 64-bit VM
    hi = int(1) << 30   # mantissas are normalised to [2**29, 2**30)
    lo = hi >> 1
    sq = int(s[_SQ])
    e = int(s[_EX])
    if sq > 0:
        while sq >= hi:
            sq >>= 1
            e += 1
        while sq < lo:
            sq <<= 1
            e -= 1
        # Interval energy += block energy.
        am = int(s[_AM])
        ae = (int(s[_AE]) ^ m) - m
        if am == 0:
            am = sq
            ae = e
        elif ae >= e:
            if ae - e < 31:
                am += sq >> (ae - e)
        else:
            t = sq
            if e - ae < 31:
                t += am >> (e - ae)
            am = t
            ae = e
        if am >= hi:
            am >>= 1
            ae += 1
        s[_AM] = am
        s[_AE] = ae
    if int(s[_PRIME]):
        s[_NS] = int(s[_NS]) + n
        return 0
    # F -= a F (a scaled to the block length n), then F += (a/N) E.
    fm = int(s[_FM])
    fe = (int(s[_FE]) ^ m) - m
    c = int(s[_ALPHA])
    if n != int(s[_N]):
        c = c * n // int(s[_N])
    d = (fm >> 15) * c + (((fm & 0x7FFF) * c) >> 15)
    fm -= d >> (int(s[_ASH]) - 15)
    if sq > 0:
        c = int(s[_BETA])
        bm = (sq >> 15) * c + (((sq & 0x7FFF) * c) >> 15)
        be = e + 15 - int(s[_BSH])
        if fe >= be:
            if fe - be < 31:
                fm += bm >> (fe - be)
        else:
            if be - fe < 31:
                bm += fm >> (be - fe)
            fm = bm
            fe = be
    while fm >= hi:
        fm >>= 1
        fe += 1
    while fm < lo:
        fm <<= 1
        fe -= 1
    s[_FM] = fm
    s[_FE] = fe
    l2 = int(log2q(fm, fe))
    if int(s[_NB]) == 0:
        s[_MAX] = l2
        s[_MIN] = l2
    elif l2 > (int(s[_MAX]) ^ m) - m:
        s[_MAX] = l2
    elif l2 < (int(s[_MIN]) ^ m) - m:
        s[_MIN] = l2
    s[_NB] = int(s[_NB]) + 1
    s[_NS] = int(s[_NS]) + n
    k = (l2 - ((int(s[_LO]) ^ m) - m)) >> _BIN_SHIFT
    if k < 0:
        k = 0
    elif k >= NBINS:
        k = NBINS - 1
    if int(h[k]) == 0xFFFF:
        # A bin is full: halve them all (the percentiles keep their place).
        for j in range(NBINS):
            h[j] = int(h[j]) >> 1
    h[k] = int(h[k]) + 1
    return l2


@micropython.viper
def percentile(hist, lo: int, p: int) -> int:
    # log2 Q16 of the level exceeded p percent of the time (linear within the 1/32-octave bin).
    h = ptr16(hist)
    total = 0
    for j in range(NBINS):
        total += int(h[j])
    target = (total // 100) * p + ((total % 100) * p) // 100
    c = 0
    j = NBINS - 1
    while j > 0:
        k = int(h[j])
        if c + k >= target and k > 0:
            return lo + ((j + 1) << _BIN_SHIFT) - (((target - c) << _BIN_SHIFT) // k)
        c += k
        j -= 1
    k = int(h[0])
    if k == 0:
        k = 1
    return lo + (1 << _BIN_SHIFT) - (((target - c) << _BIN_SHIFT) // k)


class Levels:
    # Fast-weighted levels of a stream of blocks; interval statistics until reset_interval().
    def __init__(self, rate, block, top_l2):
        # top_l2: log2 Q16 of the largest mean square the histogram must hold.
        self.st = array.array("i", bytes(4 * _FIELDS))
        self.hist = array.array("H", bytes(2 * NBINS))
        a = 1.0 - math.exp(-block / (rate * _FAST_S))
        st = self.st
        st[_ALPHA], st[_ASH] = _q15(a)
        st[_BETA], st[_BSH] = _q15(a / block)
        st[_N] = block
        st[_LO] = top_l2 - (NBINS << _BIN_SHIFT)
        bits = 0
        while (1 << bits) < block:
            bits += 1
        st[_MBITS] = (30 - bits) // 2   # n * (2**mbits)**2 <= 2**30: the sum fits an int32

    def add(self, buf, n, pk):
        # Account n filtered samples of buf (pk: largest magnitude); returns log2 Q16 of the
        # Fast level (0 while priming).
        energy(buf, n, self.st, pk)
        return update(self.st, self.hist, n)

    def restart(self):
        # Forget the Fast level: the next blocks prime it (their mean square starts it, which
        # is what a Fast detector would read after running that long) until start().
        self.st[_PRIME] = 1
        self.reset_interval()

    def start(self):
        # End priming: F = mean square of the primed blocks (30-bit / sample count keeps 17
        # significant bits); new interval.
        st = self.st
        m = st[_AM] // st[_NS] if st[_NS] else 0
        e = st[_AE]
        if m == 0:
            m, e = 1, -60
        while m < 1 << 29:
            m <<= 1
            e -= 1
        st[_FM] = m
        st[_FE] = e
        st[_PRIME] = 0
        self.reset_interval()

    def reset_interval(self):
        st = self.st
        st[_AM] = st[_AE] = st[_NS] = st[_NB] = 0
        _clear(self.hist)

    def blocks(self):
        return self.st[_NB]

    def laeq(self):
        # log2 Q16 of the interval's mean square.
        st = self.st
        return log2q(st[_AM], st[_AE]) - log2q(st[_NS], 0)

    def lmax(self):
        return self.st[_MAX]

    def lmin(self):
        return self.st[_MIN]

    def ln(self, p):
        # Level exceeded p percent of the time.
        return percentile(self.hist, self.st[_LO], p)


@micropython.viper
def _clear(hist):
    h = ptr16(hist)
    for j in range(NBINS):
        h[j] = 0
