# The wire from the emulated board's MicroPython side to its supervisor (gonggi_emu.rpc).
#
# One blocking request/response at a time over an AF_UNIX stream socket whose path is in
# $GONGGI_PERIPH. Frames: op (u8), unit (u8), payload length (u32 LE), payload. Replies: status
# (u8, 0 = OK, else an errno), 0, length (u32 LE), payload. The header, the small arguments and
# small results live in buffers allocated once here: a call allocates nothing itself.
import os
import socket
from micropython import const

# Operation codes: keep equal to gonggi_emu.rpc.Op (tests/emu/test_rpc.py checks it).
OP_I2C_XFER = const(1)
OP_I2C_SCAN = const(2)
OP_ADC_READ = const(3)
OP_I2S_INIT = const(4)
OP_I2S_READ = const(5)
OP_I2S_DEINIT = const(6)
OP_UART_OPEN = const(7)
OP_UART_CLOSE = const(8)
OP_UART_ANY = const(9)
OP_PIN_WRITE = const(10)
OP_PIN_READ = const(11)
OP_WDT_START = const(12)
OP_WDT_FEED = const(13)
OP_RESET = const(14)
OP_DEEPSLEEP = const(15)
OP_RTC_GET = const(16)
OP_RTC_SET = const(17)
OP_RTC_MEM_GET = const(18)
OP_RTC_MEM_SET = const(19)

_EIO = const(5)

ARGS = bytearray(24)    # small op arguments, filled in place by the caller
RESULT = bytearray(16)  # small results
_hdr = bytearray(6)
_sock = None


def _connect():
    global _sock
    path = os.getenv("GONGGI_PERIPH")
    if not path:
        raise OSError(_EIO)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # struct sockaddr_un: sun_family (AF_UNIX, host order) then the NUL-terminated path.
    s.connect(bytes((socket.AF_UNIX, 0)) + path.encode() + b"\x00")
    _sock = s
    return s


def _put_len(buf, off, n):
    buf[off] = n & 0xFF
    buf[off + 1] = (n >> 8) & 0xFF
    buf[off + 2] = (n >> 16) & 0xFF
    buf[off + 3] = (n >> 24) & 0xFF


def put_u32(off, n):
    # Write n into ARGS[off:off + 4], little-endian.
    _put_len(ARGS, off, n)


def get_u32(buf, off):
    return buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)


# Built once: a (tuple, list) literal in call() would allocate on every I2C write, which the
# firmware's own allocation figures (gonggi bench memory) would then wrongly show.
_SEQ = (tuple, list)


def call(op, unit, nargs=0, data=None, out=None):
    # Send ARGS[:nargs] then data (a buffer, or a tuple/list of buffers); the reply payload goes
    # into out (RESULT when None). Returns the payload length; raises OSError(errno) on error.
    global _sock
    s = _sock or _connect()
    n = nargs
    if data is not None:
        if isinstance(data, _SEQ):
            for d in data:
                n += len(d)
        else:
            n += len(data)
    h = _hdr
    h[0] = op
    h[1] = unit
    _put_len(h, 2, n)
    try:
        s.write(h)
        if nargs:
            s.write(ARGS, nargs)
        if data is not None:
            if isinstance(data, _SEQ):
                for d in data:
                    s.write(d)
            else:
                s.write(data)
        if s.readinto(h) != 6:
            raise OSError(_EIO)
        n = get_u32(h, 2)
        if n:
            if out is None:
                out = RESULT
            if n > len(out) or s.readinto(out, n) != n:
                raise OSError(_EIO)
    except BaseException:
        # Interrupted mid-frame (Ctrl-C, supervisor gone): the stream is out of step, start over.
        _sock = None
        s.close()
        raise
    if h[0]:
        raise OSError(h[0])
    return n
