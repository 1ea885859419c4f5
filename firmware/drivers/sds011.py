# Nova Fitness SDS011 particulate sensor on a UART (9600 8N1), after "Laser Dust Sensor Control
# Protocol V1.3" (2015-07-20).
#
# Data frame, 10 bytes: AA C0 PM25lo PM25hi PM10lo PM10hi ID1 ID2 CHK AB, values in 0.1 ug/m3,
# CHK = low byte of the sum of the six bytes after C0.
# Commands, 19 bytes: AA B4 DATA1..DATA15 CHK AB, CHK = low byte of the sum of DATA1..DATA15,
# DATA14/15 = device ID (FF FF: any sensor). DATA1 selects: 2 reporting mode (DATA2 1 = set,
# DATA3 0 active / 1 query), 4 query data, 6 sleep/work (DATA3 0 sleep / 1 work), 8 working
# period (DATA3 0 continuous, n = work 30 s every n minutes). Replies: AA C5 DATA1 DATA2 DATA3
# 00 ID1 ID2 CHK AB; a query is answered with a data frame. Mode and period survive power-off,
# so construction sets both (continuous, active or query) rather than trusting the last owner.
#
# Channels (ints, exponent -1, i.e. 0.1 ug/m3 as the sensor sends them): pm25, pm10.
from micropython import const

from drivers.framed_uart import FRAME_BAD, FRAME_DATA, FRAME_REPLY, FramedUARTSensor
from sensor import CONFIG, RANGE

_HEAD = const(0xAA)
_TAIL = const(0xAB)
_CMD = const(0xB4)
_DATA = const(0xC0)
_REPLY = const(0xC5)
_SET_MODE = const(2)
_QUERY = const(4)
_SET_SLEEP = const(6)
_SET_PERIOD = const(8)
_MAX_TENTHS = const(9999)   # range 0.0-999.9 ug/m3: a value at the top is clipped
_NONE = const(0xFF)         # no reply expected for this command


class SDS011(FramedUARTSensor):
    name = "sds"
    channels = (("pm25", "ug/m3", -1), ("pm10", "ug/m3", -1))
    _PAYLOAD = 2

    def __init__(self, uart, query=False, missing_ms=10000, stuck_ms=300000):
        super().__init__(uart, 4, missing_ms, stuck_ms)
        self._query = query
        self.device_id = 0          # from the latest frame; 0 until one arrives
        c = bytearray(19)
        c[0] = _HEAD
        c[1] = _CMD
        c[15] = 0xFF                # device ID FF FF: whichever sensor is on the line
        c[16] = 0xFF
        c[18] = _TAIL
        self._cmd = c
        self._want = bytearray(9)   # per DATA1 command: the DATA3 value its reply must echo
        for i in range(9):
            self._want[i] = _NONE
        self.wake()

    def _command(self, what, value):
        # DATA1 = what, DATA2 = 1 (set) except for a query, DATA3 = value.
        c = self._cmd
        c[2] = what
        c[3] = 0 if what == _QUERY else 1
        c[4] = value
        s = 0
        for i in range(2, 17):
            s += c[i]
        c[17] = s & 0xFF
        if what != _QUERY:
            self._want[what] = value
        self._send(c)

    def _configure(self):
        self._command(_SET_PERIOD, 0)
        self._command(_SET_MODE, 1 if self._query else 0)

    def _request(self):
        if self._query:
            self._command(_QUERY, 0)
        return self._query

    def _wake_sensor(self):
        # Asleep, the sensor ignores everything but this command.
        self._command(_SET_SLEEP, 1)

    def _sleep_sensor(self):
        self._command(_SET_SLEEP, 0)

    def _frame_len(self, rx, i, avail):
        if rx[i] != _HEAD:
            return 0
        if avail < 2:
            return -1
        if rx[i + 1] != _DATA and rx[i + 1] != _REPLY:
            return 0
        return 10 if avail >= 10 else -1

    def _accept(self, rx, i, size):
        s = 0
        for k in range(i + 2, i + 8):
            s += rx[k]
        if rx[i + 9] != _TAIL or (s & 0xFF) != rx[i + 8]:
            return FRAME_BAD
        self.device_id = (rx[i + 6] << 8) | rx[i + 7]
        if rx[i + 1] == _DATA:
            return FRAME_DATA
        what = rx[i + 2]
        if what < 9 and rx[i + 3] == 1:
            want = self._want[what]
            if want != _NONE and rx[i + 4] != want:
                self._err |= CONFIG
            self._want[what] = _NONE
        return FRAME_REPLY

    def _write(self, out, off):
        r = self._raw
        pm25 = r[0] | (r[1] << 8)
        pm10 = r[2] | (r[3] << 8)
        out[off] = pm25
        out[off + 1] = pm10
        return RANGE if pm25 >= _MAX_TENTHS or pm10 >= _MAX_TENTHS else 0
