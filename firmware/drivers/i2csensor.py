# Plumbing shared by the I2C sensor drivers (SPS30, SCD4x, SGP40, BME280): health counters,
# NACK/bus error classification and stuck-value detection, all without allocating.
from time import ticks_diff

from micropython import const

from sensor import BUS, MISSING, NO_DATA, Sensor

_ENODEV = const(19)   # machine.I2C: address NACK
_EIO = const(5)       # machine.I2C: data NACK
# Added to every datasheet wait: the wait counts from the end of the command, which reaches
# the part after the tick the driver read (ticks_ms truncates up to 1 ms, the bus takes more).
MARGIN_MS = const(3)


class I2CSensor(Sensor):
    def __init__(self, i2c, addr, raw_len, stuck_ms):
        if stuck_ms <= 0:
            raise ValueError(self.name + ": stuck_ms must be > 0")
        self.i2c = i2c
        self.addr = addr
        # Health events counted since construction; the returned flags say what this poll saw.
        self.nacks = 0
        self.bus_errors = 0
        self.crc_errors = 0
        self.stuck_count = 0
        self.restarts = 0
        self._stuck_ms = stuck_ms
        self._last = bytearray(raw_len)
        self._changed = None      # when the raw frame last changed (None: no frame yet)
        self._was_stuck = False

    def _bus_error(self, e):
        # A NACK means nobody answers at the address (unplugged, powered down): MISSING.
        # Anything else (timeout, arbitration lost) is a bus problem, and no sample either.
        if e.errno == _ENODEV or e.errno == _EIO:
            self.nacks += 1
            return MISSING
        self.bus_errors += 1
        return BUS | NO_DATA

    def _stuck(self, raw, n, now):
        # True while the n raw bytes of fresh samples have not changed for stuck_ms. A real
        # sensor's raw output always carries noise in its last bits.
        last = self._last
        changed = self._changed is None
        for i in range(n):
            if raw[i] != last[i]:
                changed = True
                last[i] = raw[i]
        if changed:
            self._changed = now
            self._was_stuck = False
            return False
        if ticks_diff(now, self._changed) < self._stuck_ms:
            return False
        if not self._was_stuck:
            self._was_stuck = True
            self.stuck_count += 1
        return True

