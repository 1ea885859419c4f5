# HDLC-like framing for the serial link (docs/protocol.md "Serial framing", as PPP, RFC 1662):
# 7E escaped(type body FCS-32 LE) 7E, escaping 7E, 7D and every byte below 0x20 as 7D (b ^ 20).
# No control byte ever appears inside a frame, so frames on a UART shared with the REPL can never
# read as Ctrl-A..Ctrl-E; after line noise the receiver resynchronises at the next 7E.
import binascii
from micropython import const

FLAG = const(0x7E)
_ESC = const(0x7D)

DATA = const(0x44)     # "D" node -> gateway
HELLO = const(0x48)    # "H" node -> gateway
CONTROL = const(0x43)  # "C" gateway -> node


class Encoder:
    def __init__(self, size):
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self._fcs = bytearray(4)
        self.n = 0

    def frame(self, ftype, *parts):
        # Encode one frame from byte-like parts; returns a memoryview of the wire bytes.
        b = self.buf
        b[0] = FLAG
        b[1] = ftype
        self.n = 2
        crc = binascii.crc32(b[1:2])
        for part in parts:
            crc = binascii.crc32(part, crc)
            self._put(part)
        f = self._fcs
        f[0] = crc & 0xFF
        f[1] = (crc >> 8) & 0xFF
        f[2] = (crc >> 16) & 0xFF
        f[3] = (crc >> 24) & 0xFF
        self._put(f)
        b[self.n] = FLAG
        self.n += 1
        return self.mv[:self.n]

    def _put(self, data):
        b = self.buf
        n = self.n
        for c in data:
            if c < 0x20 or c == FLAG or c == _ESC:
                b[n] = _ESC
                b[n + 1] = c ^ 0x20
                n += 2
            else:
                b[n] = c
                n += 1
        self.n = n


class Decoder:
    # Feed received bytes; a complete valid frame is left in .frame (type at [0]) and feed()
    # returns its length. Damaged frames are counted in .errors and dropped.
    def __init__(self, size):
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.n = 0
        self.errors = 0
        self._esc = False
        self._skip = True

    def feed_byte(self, c):
        # Returns the length of a frame completed by c (0 if none).
        if c == FLAG:
            n = self.n
            ok = not self._skip and not self._esc and n >= 5
            self.n = 0
            self._esc = False
            if self._skip:
                self._skip = False
                return 0
            if n == 0:
                return 0
            if ok and self._check(n):
                return n - 4
            self.errors += 1
            return 0
        if self._skip:
            return 0
        if c == _ESC:
            if self._esc:
                return self._drop()
            self._esc = True
            return 0
        if c < 0x20:
            return self._drop()
        if self._esc:
            c ^= 0x20
            self._esc = False
        if self.n >= len(self.buf):
            return self._drop()
        self.buf[self.n] = c
        self.n += 1
        return 0

    def _drop(self):
        self.errors += 1
        self.n = 0
        self._esc = False
        self._skip = True
        return 0

    def _check(self, n):
        b = self.buf
        crc = binascii.crc32(self.mv[:n - 4])
        return (b[n - 4] == crc & 0xFF and b[n - 3] == (crc >> 8) & 0xFF
                and b[n - 2] == (crc >> 16) & 0xFF and b[n - 1] == (crc >> 24) & 0xFF)
