# Per-sensor aggregation of samples over one report interval, allocation-free.
#
#   agg = Aggregator(n_channels)     # buffers sized once
#   agg.add(values, off)             # one sample: values[off:off + n_channels], ints
#   agg.count                        # samples added since reset()
#   agg.mean(out, off)               # out[off + c] = mean of channel c, rounded
#   agg.result(out, off)             # out[off + 3c : off + 3c + 3] = mean, min, max; returns count
#   agg.reset()                      # start the next interval
#
# The mean drops one minimum and one maximum before averaging when there are at least 3 samples,
# as the sensor.community airrohr firmware does with its PM samples, so one spike (a passing bus,
# a bad frame that slipped through) does not move the report. Values are fixed-point ints (see
# sensor.py); the caller keeps the samples it should not count (flags NO_SAMPLE, WARMING) out,
# and ORs the health flags itself.
#
# No sum is kept: a sum of many large samples would outgrow a small int (31 bits on the ESP32)
# and allocate. Instead each channel keeps sum = q * count + r with 0 <= r < count, updated
# exactly with small numbers: adding v gives t = r + v - q, q += t // (count + 1),
# r = t % (count + 1). The trimmed mean then is q + (2q + r - min - max) / (count - 2).
from array import array


class Aggregator:
    def __init__(self, n_channels):
        self.n = n_channels
        z = bytes(4 * max(n_channels, 1))
        self._q = array("i", z)
        self._r = array("i", z)
        self._lo = array("i", z)
        self._hi = array("i", z)
        self.count = 0

    def reset(self):
        self.count = 0

    def add(self, values, off):
        n1 = self.count + 1
        q = self._q
        r = self._r
        lo = self._lo
        hi = self._hi
        for c in range(self.n):
            v = values[off + c]
            if n1 == 1:
                q[c] = v
                r[c] = 0
                lo[c] = v
                hi[c] = v
                continue
            t = r[c] + v - q[c]
            q[c] += t // n1
            r[c] = t % n1
            if v < lo[c]:
                lo[c] = v
            elif v > hi[c]:
                hi[c] = v
        self.count = n1

    def _mean(self, c):
        # Rounded to nearest, halves up; 0 for an empty interval.
        n = self.count
        if n == 0:
            return 0
        q = self._q[c]
        if n < 3:
            return q + (2 * self._r[c] + n) // (2 * n)
        t = 2 * q + self._r[c] - self._lo[c] - self._hi[c]
        d = n - 2
        return q + (2 * t + d) // (2 * d)

    def mean(self, out, off):
        for c in range(self.n):
            out[off + c] = self._mean(c)

    def result(self, out, off):
        # Mean, min and max of every channel (3 ints per channel, 0 if empty); returns the count.
        empty = self.count == 0
        for c in range(self.n):
            k = off + 3 * c
            out[k] = self._mean(c)
            out[k + 1] = 0 if empty else self._lo[c]
            out[k + 2] = 0 if empty else self._hi[c]
        return self.count
