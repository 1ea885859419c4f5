# NoiseMeter: an I2S MEMS microphone as a Sensor reporting A- (or C-, Z-) weighted levels.
#
# The audio is processed continuously, block by block, by feed() (or the run() task): one
# machine.I2S.readinto() of a DMA-sized block into a preallocated array, then in place: slot
# unpacking, the weighting cascade, block energy and the Fast level. poll() reports the levels
# of the audio since the previous poll (or wake) in centi-dB and starts a new interval:
#   l<w>eq   equivalent continuous level L<w>eq                  <w> = a, c or z (weighting)
#   l<w>max  maximum Fast-weighted level L<w>Fmax
#   l<w>min  minimum Fast-weighted level L<w>Fmin
#   l<w>10, l<w>50, l<w>90   levels exceeded 10/50/90 % of the time (Fast level per block)
# all as SenML unit "dB" (re 20 uPa; the weighting is in the name: "laeq" is dB(A)).
# Flags: RANGE if the converter clipped (overload) or the Fast level fell below the lower limit
# of the linear range (under-range: the microphone's self-noise adds more than 1 dB), BUS if
# readinto() failed or the data line went constant during the interval, MISSING if it stayed
# constant the whole interval, NO_DATA if no audio was processed since the last poll,
# WARMING | NO_DATA during the warm-up after wake (warmup_ms of audio).
import array
import math

from micropython import const

from noise import levels as lv
from noise import mic as mics
from noise import weighting as wt
from noise.biquad import Cascade
from sensor import BUS, MISSING, NO_DATA, RANGE, WARMING, Sensor

_SETTLE_MS = const(100)    # discarded after wake: the microphone starts (INMP441: 85 ms) and
                           # the filters settle (Z's 1 Hz DC blocker needs 0.8 s)
_PRIME_MS = const(125)     # then one time constant whose mean square starts the Fast level
_START_MS = const(400)     # audio the constructor waits for a live microphone
_FS_WORD = 8388607         # 2**23 - 1: the datasheets' full-scale peak
_UNDER_DB = 7.0            # lower limit = self-noise + 7 dB: self-noise adds < 1 dB above it


def calibration_offset(measured_cdb, offset_cdb=0, reference_cdb=9400):
    # New calibration offset (centi-dB) from a calibrator reading: the meter, running with
    # offset_cdb, measured measured_cdb (laeq, or lceq/lzeq) while a calibrator played
    # reference_cdb (94.00 dB at 1 kHz, where A and C weightings are 0 dB).
    return offset_cdb + reference_cdb - measured_cdb


class NoiseMeter(Sensor):
    name = "noise"
    per_report = True

    def __init__(self, i2s, rate=48000, mic="inmp441", weighting="A", equalise=False,
                 offset_cdb=0, block=256, floor_cdb=None):
        # i2s: a machine.I2S in RX mode, bits=32, format=MONO, at rate (see open_i2s()).
        # mic: "inmp441", "ics43434" or "sph0645"; weighting: "A", "C" or "Z"; equalise: undo
        # the capsule's low-frequency roll-off; offset_cdb: calibration (calibration_offset());
        # block: samples per DMA read; floor_cdb: lower limit of the linear range (default
        # self-noise + 7 dB). Raises ValueError for a bad setting, OSError if no microphone.
        sens, bits, snr, corner = mics.model(mic)
        if not 32 <= block <= 1024:
            raise ValueError("noise: block of %d samples not in 32..1024" % block)
        secs = wt.design(weighting, rate, corner if equalise else 0.0)
        self._casc = Cascade(secs, mics.top(bits))
        w = weighting.lower()
        self.channels = (
            ("l%seq" % w, "dB", -2), ("l%smax" % w, "dB", -2), ("l%smin" % w, "dB", -2),
            ("l%s10" % w, "dB", -2), ("l%s50" % w, "dB", -2), ("l%s90" % w, "dB", -2),
        )
        self.rate = rate
        self.mic = mic
        self._i2s = i2s
        self._buf = array.array("i", bytes(4 * block))
        # Mean square (internal units) of a 94 dB SPL 1 kHz sine: the calibration of log2 -> dB.
        amp = _FS_WORD * 10 ** (sens / 20) / (1 << self._casc.shift) * wt.gain(secs, rate, 1000.0)
        ms94 = amp * amp / 2
        l2_94 = round(math.log(ms94) / math.log(2) * 65536)
        self._base = 9400 - lv.cdb(l2_94)
        self.offset_cdb = offset_cdb
        if floor_cdb is None:
            floor_cdb = round((94.0 - snr + _UNDER_DB) * 100)
        self.floor_cdb = floor_cdb
        # The histogram's top: a full-scale sine with the weighting's +1.3 dB and 1.7 dB to spare.
        self._levels = lv.Levels(rate, block, l2_94 + round((-sens + 3.0) / 3.0103 * 65536))
        self._settle_n = max(rate * _SETTLE_MS // 1000, self._casc.settle)
        self._prime_n = rate * _PRIME_MS // 1000
        self.warmup_ms = (self._settle_n + self._prime_n) * 1000 // rate
        # Health counters since power-up.
        self.blocks = 0
        self.overloads = 0      # blocks with a clipped sample
        self.dropouts = 0       # blocks with a constant data line
        self.read_errors = 0    # OSError from readinto()
        self.under_ranges = 0   # reports below the lower limit
        self._check()
        self.wake()

    def _check(self):
        # A live microphone sends a varying signal within _START_MS (after its start-up time).
        n_max = self.rate * _START_MS // 1000
        n = 0
        while n < n_max:
            got = self._i2s.readinto(self._buf) >> 2
            if got == 0:
                break
            self._casc.run(self._buf, got)
            if not self._casc.input_flags() & mics.DEAD:
                return
            n += got
        raise OSError("noise: no signal from the %s on I2S (data line constant)" % self.mic)

    def wake(self):
        self._awake = True
        self._fresh = True
        self._settle = self._settle_n
        self._prime = self._prime_n
        self._levels.restart()
        self._clip = self._dead = self._errors = 0

    def sleep(self):
        self._awake = False

    def feed(self):
        # Read one block (blocking until the DMA has it) and process it; returns the samples
        # processed (0: asleep, no audio, or a read error).
        if not self._awake:
            return 0
        try:
            n = self._i2s.readinto(self._buf) >> 2
        except OSError:
            self.read_errors += 1
            self._errors += 1
            return 0
        if n:
            self._process(n)
        return n

    async def run(self):
        # Process the audio as it arrives, without blocking the other tasks (machine.I2S in
        # asyncio mode: the StreamReader waits until the DMA holds a block).
        import asyncio

        reader = asyncio.StreamReader(self._i2s)
        buf = self._buf
        while True:
            try:
                n = await reader.readinto(buf) >> 2
            except OSError:
                self.read_errors += 1
                self._errors += 1
                n = 0
            if n and self._awake:
                self._process(n)
            elif not n:
                await asyncio.sleep_ms(10)

    def _process(self, n):
        buf = self._buf
        casc = self._casc
        if self._fresh:
            casc.prime(buf, n)
            self._fresh = False
        pk = casc.run(buf, n)
        flags = casc.input_flags()
        self.blocks += 1
        if self._settle > 0:
            self._settle -= n
            return
        if flags & mics.DEAD:
            self.dropouts += 1
            self._dead += 1
            return
        if flags & mics.CLIPPED:
            self.overloads += 1
            self._clip += 1
        self._levels.add(buf, n, pk)
        if self._prime > 0:
            self._prime -= n
            if self._prime <= 0:
                self._levels.start()
                self._dead = self._clip = 0

    def measuring(self):
        # True once the warm-up after wake (settling, then priming the Fast level) is over.
        return self._awake and self._prime <= 0

    def poll(self, now_ms, out, off):
        flags = BUS if self._errors else 0
        if not self.measuring():
            self._errors = 0
            return flags | NO_DATA | (WARMING if self._awake else 0)
        lvl = self._levels
        if lvl.blocks() == 0:
            flags |= MISSING if self._dead else NO_DATA
            self._dead = self._clip = self._errors = 0
            return flags
        if self._dead:
            flags |= BUS
        base = self._base + self.offset_cdb
        lmax = lvl.lmax()
        lmin = lvl.lmin()
        out[off] = lv.cdb(lvl.laeq()) + base
        out[off + 1] = lv.cdb(lmax) + base
        out[off + 2] = lv.cdb(lmin) + base
        # The histogram's bins are 0.094 dB wide: keep its estimates inside the true extremes.
        out[off + 3] = lv.cdb(min(max(lvl.ln(10), lmin), lmax)) + base
        out[off + 4] = lv.cdb(min(max(lvl.ln(50), lmin), lmax)) + base
        out[off + 5] = lv.cdb(min(max(lvl.ln(90), lmin), lmax)) + base
        if self._clip:
            flags |= RANGE
        if out[off + 2] < self.floor_cdb:
            flags |= RANGE
            self.under_ranges += 1
        lvl.reset_interval()
        self._dead = self._clip = self._errors = 0
        return flags


def open_i2s(sck, ws, sd, rate=48000, block=256, i2s_id=0):
    # The machine.I2S the meter expects: RX, 32-bit slots, mono, DMA buffer of 4 blocks.
    from machine import I2S, Pin

    return I2S(i2s_id, sck=Pin(sck), ws=Pin(ws), sd=Pin(sd), mode=I2S.RX, bits=32,
               format=I2S.MONO, rate=rate, ibuf=16 * block)
