# Plantower PMS5003 / PMS7003 particulate sensor on a UART (9600 8N1). Also fits PMSA003/PMS1003:
# the same 32-byte frame and commands.
#
# Data frame (datasheet appendix I): 42 4D, frame length 00 1C (= 2*13 + 2), 13 big-endian words
#   0-2  PM1.0, PM2.5, PM10 for CF=1 "standard particle" (ug/m3)
#   3-5  PM1.0, PM2.5, PM10 under atmospheric environment (ug/m3)
#   6-11 particles > 0.3, 0.5, 1.0, 2.5, 5.0, 10 um in 0.1 L of air
#   12   reserved (PMS7003: version and error code)
# then a 16-bit check code = sum of all preceding 30 bytes.
# Commands (datasheet appendix II): 42 4D CMD DATAH DATAL LRCH LRCL, LRC = 16-bit sum of the
# first five bytes: E1 00 00/01 passive/active mode, E2 00 00 read in passive mode,
# E4 00 00/01 sleep/wake up. Not in the datasheet but seen on every unit: the sensor acknowledges
# the mode and sleep commands with an 8-byte frame 42 4D 00 04 CMD DATA sum(2 bytes). Wake has
# no acknowledgement; frames resume once the fan runs.
#
# Channels (ints, exponent 0): pm1, pm25, pm10 atmospheric and pm1_cf1, pm25_cf1, pm10_cf1 in
# ug/m3; n0_3 ... n10 are the particles larger than 0.3 ... 10 um counted in 0.1 L of air. SenML
# registers no number-per-volume unit, so, as docs/protocol.md does for counts, they carry no
# unit: the 0.1 L is part of the channel's definition (the Plantower, PurpleAir and
# sensor.community convention).
#
# Construction does not wait for a frame (the first one can take seconds after power-up): the
# driver reports MISSING until frames arrive. Passive mode asks for one frame per poll, read at
# the next poll; active mode takes what the sensor streams (every 2.3 s, or 0.2-0.8 s while the
# concentration changes fast) and reports NO_DATA for polls that saw no new frame.
from micropython import const

from drivers.framed_uart import FRAME_BAD, FRAME_DATA, FRAME_REPLY, FramedUARTSensor
from sensor import CONFIG, RANGE

_H1 = const(0x42)
_H2 = const(0x4D)
_DATA_LEN = const(28)    # frame length field of a data frame: 32 bytes in all
_ACK_LEN = const(4)      # ... of a command acknowledgement: 8 bytes in all
_CMD_MODE = const(0xE1)
_CMD_READ = const(0xE2)
_CMD_SLEEP = const(0xE4)
_MAX_UGM3 = const(1000)  # datasheet "maximum range": above it a value is flagged RANGE
_NONE = const(-1)


class PMS5003(FramedUARTSensor):
    name = "pms"
    channels = (
        ("pm1", "ug/m3", 0), ("pm25", "ug/m3", 0), ("pm10", "ug/m3", 0),
        ("pm1_cf1", "ug/m3", 0), ("pm25_cf1", "ug/m3", 0), ("pm10_cf1", "ug/m3", 0),
        ("n0_3", "", 0), ("n0_5", "", 0), ("n1_0", "", 0),
        ("n2_5", "", 0), ("n5_0", "", 0), ("n10", "", 0),
    )
    _PAYLOAD = 4   # words 0-11 start after header and length; the reserved word is not data

    def __init__(self, uart, passive=False, missing_ms=10000, stuck_ms=300000):
        super().__init__(uart, 24, missing_ms, stuck_ms)
        self._passive = passive
        self._cmd = bytearray(7)
        self._cmd[0] = _H1
        self._cmd[1] = _H2
        self._want_mode = _NONE   # the mode an E1 acknowledgement must confirm
        self._want_sleep = _NONE
        self.wake()

    def _command(self, cmd, data):
        c = self._cmd
        c[2] = cmd
        c[3] = 0
        c[4] = data
        s = _H1 + _H2 + cmd + data
        c[5] = s >> 8
        c[6] = s & 0xFF
        self._send(c)

    def _configure(self):
        mode = 0 if self._passive else 1
        self._want_mode = mode
        self._command(_CMD_MODE, mode)

    def _request(self):
        if self._passive:
            self._command(_CMD_READ, 0)
        return self._passive

    def _wake_sensor(self):
        self._command(_CMD_SLEEP, 1)

    def _sleep_sensor(self):
        self._want_sleep = 0
        self._command(_CMD_SLEEP, 0)

    def _frame_len(self, rx, i, avail):
        if rx[i] != _H1:
            return 0
        if avail < 2:
            return -1
        if rx[i + 1] != _H2:
            return 0
        if avail < 4:
            return -1
        if rx[i + 2]:
            return 0
        n = rx[i + 3]
        if n == _DATA_LEN:
            size = 32
        elif n == _ACK_LEN:
            size = 8
        else:
            return 0
        return size if avail >= size else -1

    def _accept(self, rx, i, size):
        end = i + size - 2
        s = 0
        for k in range(i, end):
            s += rx[k]
        if s != (rx[end] << 8) | rx[end + 1]:
            return FRAME_BAD
        if size == 32:
            return FRAME_DATA
        cmd = rx[i + 4]
        data = rx[i + 5]
        if cmd == _CMD_MODE:
            if self._want_mode != _NONE and data != self._want_mode:
                self._err |= CONFIG
            self._want_mode = _NONE
        elif cmd == _CMD_SLEEP:
            if self._want_sleep != _NONE and data != self._want_sleep:
                self._err |= CONFIG
            self._want_sleep = _NONE
        return FRAME_REPLY

    def _write(self, out, off):
        r = self._raw
        flags = 0
        for k in range(3):
            atm = (r[6 + 2 * k] << 8) | r[7 + 2 * k]
            if atm > _MAX_UGM3:
                flags = RANGE
            out[off + k] = atm
            out[off + 3 + k] = (r[2 * k] << 8) | r[2 * k + 1]
        for k in range(6):
            out[off + 6 + k] = (r[12 + 2 * k] << 8) | r[13 + 2 * k]
        return flags
