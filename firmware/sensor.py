# The contract every sensor driver implements, and the health flags they report.
#
# The scheduler owns time: it calls wake() warmup_ms + window_ms before a report is due, poll()
# once per sample period, and sleep() after the report. poll() never blocks and never allocates.
#
# Values are INTEGERS in fixed point: on the ESP32 every float is a heap object, so float
# arithmetic in a sampling loop allocates on every sample. poll() writes one int per channel into
# the caller's array('i') and each channel declares its decimal exponent: the value in the
# channel's unit is out[i] * 10**exp (e.g. ("t", "Cel", -2) and 2153 means 21.53 Cel). Only the
# report encoder, once per report, turns them into CBOR numbers.
from micropython import const

# Health flags: one bit per condition, OR-ed per sensor and per packet (docs/protocol.md).
WARMING = const(0x01)     # woken less than warmup_ms ago: values not yet representative
CHECKSUM = const(0x02)    # a frame or CRC check failed since the last report
STUCK = const(0x04)       # the same raw value for too long
MISSING = const(0x08)     # the device does not answer (NACK, silent UART, unplugged)
NO_DATA = const(0x10)     # nothing new this period: the scheduler does not count a sample
RANGE = const(0x20)       # a value outside the device's measuring range (or clipped)
BUS = const(0x40)         # bus error other than a NACK (timeout, OSError)
CONFIG = const(0x80)      # the sensor's configuration was rejected

# Flags that mean "out has no valid sample": the scheduler skips the sample for aggregation.
NO_SAMPLE = const(MISSING | NO_DATA)


class Sensor:
    # SenML name prefix ("pms", "bme") and ((name, SenML unit, decimal exponent), ...) of what
    # poll() writes.
    name = ""
    channels = ()
    warmup_ms = 0        # from wake() until values are representative (datasheet)
    window_ms = 15000    # sampling after warm-up, before the report (duty-cycled sensors only)
    # True: poll() once per report, over the whole interval, never aggregated: an interval's
    # Leq or L90 is not the mean of shorter intervals' (the noise meter). Never duty-cycled.
    per_report = False

    def wake(self):
        pass

    def sleep(self):
        pass

    def poll(self, now_ms, out, off):
        # Write len(self.channels) ints to out[off:] (array('i')); return health flags.
        # now_ms is time.ticks_ms() at the poll: compare it with ticks_diff only.
        raise NotImplementedError
