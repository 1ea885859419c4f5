# CBOR (RFC 8949) writer into a caller-owned buffer: no allocation except the one float object
# per value that the float32 conversion needs (once per report, never per sample).
import struct
from micropython import const

_MT_UINT = const(0)
_MT_NINT = const(1)
_MT_BSTR = const(2)
_MT_TSTR = const(3)
_MT_ARRAY = const(4)
_MT_MAP = const(5)
_MT_TAG = const(6)
_FLOAT16 = const(0xF9)
_FLOAT32 = const(0xFA)
_TRUE = const(0xF5)
_FALSE = const(0xF4)

# 10**-e for the fixed-point exponents drivers use (sensor.py); index = -exponent.
_POW10 = (1, 10, 100, 1000, 10000, 100000, 1000000)


class Writer:
    def __init__(self, buf):
        self.buf = buf
        self.mv = memoryview(buf)
        self.pos = 0

    def reset(self, pos=0):
        self.pos = pos

    def head(self, major, n):
        b = self.buf
        p = self.pos
        major <<= 5
        if n < 24:
            b[p] = major | n
            self.pos = p + 1
        elif n < 0x100:
            b[p] = major | 24
            b[p + 1] = n
            self.pos = p + 2
        elif n < 0x10000:
            b[p] = major | 25
            b[p + 1] = n >> 8
            b[p + 2] = n & 0xFF
            self.pos = p + 3
        else:
            b[p] = major | 26
            b[p + 1] = (n >> 24) & 0xFF
            b[p + 2] = (n >> 16) & 0xFF
            b[p + 3] = (n >> 8) & 0xFF
            b[p + 4] = n & 0xFF
            self.pos = p + 5

    def int(self, n):
        if n >= 0:
            self.head(_MT_UINT, n)
        else:
            self.head(_MT_NINT, -1 - n)

    def raw(self, data):
        p = self.pos
        n = len(data)
        self.mv[p:p + n] = data
        self.pos = p + n

    def bstr(self, data):
        self.head(_MT_BSTR, len(data))
        self.raw(data)

    def tstr(self, data):
        # data: bytes holding UTF-8 (names are bytes constants so nothing is encoded at run time)
        self.head(_MT_TSTR, len(data))
        self.raw(data)

    def array(self, n):
        self.head(_MT_ARRAY, n)

    def map(self, n):
        self.head(_MT_MAP, n)

    def tag(self, n):
        self.head(_MT_TAG, n)

    def bool(self, v):
        self.buf[self.pos] = _TRUE if v else _FALSE
        self.pos += 1

    def fixed(self, m, exp):
        # The value m * 10**exp in preferred serialization (RFC 8949 4.2.1): an integer when it
        # is one, else the shortest of float16/float32 that holds the float32 nearest to it.
        if exp >= 0:
            self.int(m * _POW10[exp])
            return
        if m % _POW10[-exp] == 0:
            self.int(m // _POW10[-exp])
            return
        b = self.buf
        p = self.pos
        struct.pack_into(">f", b, p + 1, m / _POW10[-exp])
        e = b[p + 1] & 0x7F
        e = (e << 1) | (b[p + 2] >> 7)
        if 113 <= e <= 142 and b[p + 4] == 0 and b[p + 3] & 0x1F == 0:
            # Exactly representable as a normal float16: sign, exponent - 112, top 10 mantissa bits.
            sign = b[p + 1] & 0x80
            mant = ((b[p + 2] & 0x7F) << 3) | (b[p + 3] >> 5)
            b[p] = _FLOAT16
            b[p + 1] = sign | ((e - 112) << 2) | (mant >> 8)
            b[p + 2] = mant & 0xFF
            self.pos = p + 3
        else:
            b[p] = _FLOAT32
            self.pos = p + 5

class Reader:
    # Just enough CBOR reading for gateway messages: heads, ints, byte/text strings, arrays, maps.
    # Raises ValueError on anything malformed or past the end.
    def __init__(self, mv):
        self.mv = mv
        self.pos = 0

    def head(self):
        mv = self.mv
        p = self.pos
        if p >= len(mv):
            raise ValueError
        ib = mv[p]
        ai = ib & 31
        if ai < 24:
            v = ai
            p += 1
        elif ai == 24:
            v = mv[p + 1]
            p += 2
        elif ai == 25:
            v = (mv[p + 1] << 8) | mv[p + 2]
            p += 3
        elif ai == 26 or ai == 27:
            n = 4 if ai == 26 else 8
            v = 0
            for i in range(1, n + 1):
                v = (v << 8) | mv[p + i]
            p += n + 1
        else:
            raise ValueError
        if p > len(mv):
            raise ValueError
        self.pos = p
        return ib >> 5, v

    def int(self):
        major, v = self.head()
        if major == _MT_UINT:
            return v
        if major == _MT_NINT:
            return -1 - v
        raise ValueError

    def bytes(self):
        # A byte or text string, as a memoryview.
        major, n = self.head()
        if major != _MT_BSTR and major != _MT_TSTR:
            raise ValueError
        p = self.pos
        if p + n > len(self.mv):
            raise ValueError
        self.pos = p + n
        return self.mv[p:p + n]

    def skip(self):
        major, v = self.head()
        if major == _MT_BSTR or major == _MT_TSTR:
            self.pos += v
        elif major == _MT_ARRAY:
            for _ in range(v):
                self.skip()
        elif major == _MT_MAP:
            for _ in range(2 * v):
                self.skip()
        elif major == _MT_TAG:
            self.skip()
        if self.pos > len(self.mv):
            raise ValueError
