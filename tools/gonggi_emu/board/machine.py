# The ESP32 port's `machine` module on the emulated gonggi board.
#
# Same classes, signatures, constants and errors as MicroPython's ESP32 port (docs.micropython.org
# esp32 quickref and machine.*); the peripherals behind them are served by the board's supervisor
# over _emu (I2C targets, ADC sources, I2S microphones, the watchdog, resets, RTC) or are real
# file descriptors (UARTs: a raw pty per UART, so select.poll and asyncio streams work on them).
# Allocation-conscious like the C original: arguments and small results go through _emu's
# preallocated buffers, and data is read straight into the caller's buffer.
import io
import os
import select
import sys
import time
from micropython import const, schedule

import _emu
from _emu import ARGS, RESULT, call, get_u32, put_u32

# The unix port's built-ins that behave the same on a board: PinBase lets Signal drive our Pin.
_p = sys.path
sys.path = ()
from machine import PinBase, Signal, idle  # noqa: E402, F401  (the built-in module: re-exported)

sys.path = _p
del _p

# Reset causes and wake reasons (ports/esp32/modmachine.c).
PWRON_RESET = const(1)
HARD_RESET = const(2)
WDT_RESET = const(3)
DEEPSLEEP_RESET = const(4)
SOFT_RESET = const(5)
SLEEP = const(2)
DEEPSLEEP = const(4)
PIN_WAKE = const(2)
EXT0_WAKE = const(2)
EXT1_WAKE = const(3)
TIMER_WAKE = const(4)
TOUCHPAD_WAKE = const(5)
ULP_WAKE = const(6)

# ESP32 GPIOs 0-19, 21-23, 25-27, 32-39; 34-39 are input only.
_GPIO_MASK = const(0xFF0EEFFFFF)
_INPUT_ONLY = const(34)
# ADC1 on GPIO 32-39, ADC2 on 0, 2, 4, 12-15, 25-27.
_ADC_MASK = const(0xFF0E00F015)
_STREAM_FLUSH = const(1)
_STREAM_POLL = const(3)
_STREAM_CLOSE = const(4)
_STREAM_GET_FILENO = const(10)
_POLL_RD = const(1)

_cause = int(os.getenv("GONGGI_RESET_CAUSE") or PWRON_RESET)
_wake = int(os.getenv("GONGGI_WAKE") or 0)
_freq = 160000000


def _check_gpio(n):
    if not 0 <= n <= 39 or not (_GPIO_MASK >> n) & 1:
        raise ValueError("invalid pin")


def _pin_id(pin):
    return pin if isinstance(pin, int) else pin.id


# --- reset, sleep, clocks -------------------------------------------------------------------


def reset_cause():
    return _cause


def wake_reason():
    return _wake


def unique_id():
    return bytes.fromhex(os.getenv("GONGGI_UID") or "a4cf12000000")


def reset():
    # esp_restart(): the supervisor restarts the VM and never answers.
    call(_emu.OP_RESET, 0)
    while True:
        time.sleep_ms(1000)


def soft_reset():
    # As on the ESP32: unwind to the REPL loop, which soft-resets (the VM exits, the board restarts).
    raise SystemExit


def deepsleep(time_ms=0):
    put_u32(0, time_ms)
    call(_emu.OP_DEEPSLEEP, 0, 4)
    while True:
        time.sleep_ms(1000)


def lightsleep(time_ms=None):
    # No wake source other than the timer is emulated: without one the chip sleeps for good.
    global _wake
    if time_ms is None:
        while True:
            time.sleep_ms(1000)
    time.sleep_ms(time_ms)
    _wake = TIMER_WAKE


sleep = lightsleep


def freq(hz=None):
    global _freq
    if hz is None:
        return _freq
    if hz // 1000000 not in (20, 40, 80, 160, 240):
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
    _freq = hz


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


# --- Pin ------------------------------------------------------------------------------------


class Pin(PinBase):
    IN = const(1)
    OUT = const(3)
    OPEN_DRAIN = const(7)
    PULL_DOWN = const(1)
    PULL_UP = const(2)
    PULL_HOLD = const(4)
    IRQ_RISING = const(1)
    IRQ_FALLING = const(2)
    WAKE_LOW = const(4)
    WAKE_HIGH = const(5)
    DRIVE_0 = const(0)
    DRIVE_1 = const(1)
    DRIVE_2 = const(2)
    DRIVE_3 = const(3)

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        _check_gpio(id)
        self.id = id
        self._mode = Pin.IN
        self._pull = 0
        self._out = 0
        self._handler = None
        self.init(mode, pull, value=value, drive=drive, hold=hold)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        if mode != -1:
            if mode != Pin.IN and self.id >= _INPUT_ONLY:
                raise ValueError("pin can only be input")
            self._mode = mode
        if pull != -1:
            self._pull = pull or 0
        if value is not None:
            self._out = 1 if value else 0
        if mode != -1 or (value is not None and self._mode != Pin.IN):
            self._drive()

    def _drive(self):
        ARGS[0] = self._out
        ARGS[1] = self._mode
        call(_emu.OP_PIN_WRITE, self.id, 2)

    def value(self, x=None):
        if x is None:
            if self._mode == Pin.OUT:
                return self._out
            ARGS[0] = self._pull
            call(_emu.OP_PIN_READ, self.id, 1)
            return RESULT[0]
        self._out = 1 if x else 0
        if self._mode != Pin.IN:
            self._drive()

    def __call__(self, x=None):
        return self.value(x)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, *, wake=None):
        # Stored like the port does; no emulated device raises pin edges yet.
        self._handler = handler
        return self


# --- ADC --------------------------------------------------------------------------------------


class ADC:
    ATTN_0DB = const(0)
    ATTN_2_5DB = const(1)
    ATTN_6DB = const(2)
    ATTN_11DB = const(3)
    WIDTH_9BIT = const(9)
    WIDTH_10BIT = const(10)
    WIDTH_11BIT = const(11)
    WIDTH_12BIT = const(12)

    def __init__(self, pin, *, atten=None):
        n = _pin_id(pin)
        if not 0 <= n <= 39 or not (_ADC_MASK >> n) & 1:
            raise ValueError("invalid pin")
        self._pin = n
        self._atten = ADC.ATTN_0DB
        self._bits = 12
        self.init(atten=atten)

    def init(self, *, atten=None):
        if atten is not None:
            self.atten(atten)

    def atten(self, atten):
        if not 0 <= atten <= 3:
            raise ValueError("invalid attenuation")
        self._atten = atten

    def width(self, bits):
        if not 9 <= bits <= 12:
            raise ValueError("invalid bit-width")
        self._bits = bits

    def _sample(self):
        # Fills RESULT: the 12-bit raw code (u16) then the calibrated reading in microvolts (u32).
        ARGS[0] = self._atten
        call(_emu.OP_ADC_READ, self._pin, 1)
        return RESULT[0] | (RESULT[1] << 8)

    def read(self):
        return self._sample() >> (12 - self._bits)

    def read_u16(self):
        raw = self._sample() >> (12 - self._bits)
        bits = self._bits
        return (raw << (16 - bits)) | (raw >> (2 * bits - 16))

    def read_uv(self):
        self._sample()
        return get_u32(RESULT, 2)


# --- I2C --------------------------------------------------------------------------------------

_FLAG_WRITE = const(1)
_FLAG_READ = const(2)
# Default pins of the ESP32 port's hardware I2C buses: (scl, sda).
_I2C_PINS = ((18, 19), (25, 26))


class I2C:
    # Hardware I2C. A NACK (or a missing device) raises OSError(ENODEV) as on the ESP32 port.
    def __init__(self, id=0, *, scl=None, sda=None, freq=400000, timeout=50000):
        if id not in (0, 1):
            raise ValueError("I2C(%d) doesn't exist" % id)
        self._bus = id
        self.init(scl=scl, sda=sda, freq=freq, timeout=timeout)

    def init(self, *, scl=None, sda=None, freq=400000, timeout=50000):
        self._freq = freq
        self._timeout = timeout

    def _xfer(self, addr, flags, nread, memaddr, addrsize, data, out):
        ARGS[0] = addr
        ARGS[1] = flags
        ARGS[2] = nread & 0xFF
        ARGS[3] = nread >> 8
        nmem = 0
        if addrsize:
            nmem = addrsize // 8
            if nmem == 2:
                ARGS[5] = (memaddr >> 8) & 0xFF
                ARGS[6] = memaddr & 0xFF
            else:
                ARGS[5] = memaddr & 0xFF
        ARGS[4] = nmem
        return call(_emu.OP_I2C_XFER, self._bus, 5 + nmem, data, out)

    def scan(self):
        buf = bytearray(112)
        n = call(_emu.OP_I2C_SCAN, self._bus, 0, None, buf)
        return [buf[i] for i in range(n)]

    def writeto(self, addr, buf, stop=True):
        self._xfer(addr, _FLAG_WRITE, 0, 0, 0, buf, None)
        return len(buf)

    def writevto(self, addr, vector, stop=True):
        self._xfer(addr, _FLAG_WRITE, 0, 0, 0, vector, None)
        return sum(len(b) for b in vector)

    def readfrom_into(self, addr, buf, stop=True):
        self._xfer(addr, _FLAG_READ, len(buf), 0, 0, None, buf)

    def readfrom(self, addr, nbytes, stop=True):
        buf = bytearray(nbytes)
        self.readfrom_into(addr, buf, stop)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._xfer(addr, _FLAG_WRITE, 0, memaddr, addrsize, buf, None)

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        self._xfer(addr, _FLAG_WRITE | _FLAG_READ, len(buf), memaddr, addrsize, None, buf)

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        buf = bytearray(nbytes)
        self.readfrom_mem_into(addr, memaddr, buf, addrsize=addrsize)
        return bytes(buf)


class SoftI2C(I2C):
    # Bit-banged I2C on any pins: it reaches the devices of the bench bus wired to those pins
    # (the hardware bus whose default pins they are; bus 0 otherwise).
    def __init__(self, scl, sda, *, freq=400000, timeout=50000):
        pins = (_pin_id(scl), _pin_id(sda))
        self._bus = 1 if pins == _I2C_PINS[1] else 0
        self.init(scl=scl, sda=sda, freq=freq, timeout=timeout)


# --- UART -------------------------------------------------------------------------------------

_KEEP = object()
# The UARTs' ptys are host devices, outside the flash mounted at "/": opened through their own VFS.
_dev = os.VfsPosix("/dev")


class UART(io.IOBase):
    # The VM side of each UART is a raw pty (VMIN=0: reads never block) that the supervisor
    # bridges to the bench device or to the pty the gateway opens; reads wait with poll().
    INV_TX = const(1)
    INV_RX = const(2)
    INV_RTS = const(4)
    INV_CTS = const(8)
    RTS = const(1)
    CTS = const(2)

    def __init__(self, id, *args, **kwargs):
        if not 0 <= id <= 2:
            raise ValueError("UART(%d) does not exist" % id)
        self._id = id
        self._f = None
        self._baud = 115200
        self._bits = 8
        self._parity = None
        self._stop = 1
        self._timeout = 0
        self._timeout_char = 0
        self._rxbuf = 256
        self._tx_end = time.ticks_us()
        self._one = bytearray(1)
        self._poll = select.poll()
        self.init(*args, **kwargs)

    def init(self, baudrate=0, bits=0, parity=_KEEP, stop=0, *, tx=-1, rx=-1, rts=-1, cts=-1,
             txbuf=-1, rxbuf=-1, timeout=-1, timeout_char=-1, invert=-1, flow=-1):
        if baudrate:
            self._baud = baudrate
        if bits:
            if not 5 <= bits <= 8:
                raise ValueError("invalid data bits")
            self._bits = bits
        if parity is not _KEEP:
            if parity not in (None, 0, 1):
                raise ValueError("invalid parity")
            self._parity = parity
        if stop:
            if stop not in (1, 2):
                raise ValueError("invalid stop bits")
            self._stop = stop
        if rxbuf >= 0:
            self._rxbuf = rxbuf
        if timeout >= 0:
            self._timeout = timeout
        if timeout_char >= 0:
            self._timeout_char = timeout_char
        put_u32(0, self._baud)
        ARGS[4] = self._bits
        ARGS[5] = 0 if self._parity is None else self._parity + 1
        ARGS[6] = self._stop
        put_u32(7, self._rxbuf)
        path = bytearray(96)
        n = call(_emu.OP_UART_OPEN, self._id, 11, None, path)
        if self._f is None:
            self._f = _dev.open(path[4:n].decode(), "r+b")  # "/pts/N" of "/dev/pts/N"
            self._poll.register(self._f, select.POLLIN)

    def deinit(self):
        if self._f is not None:
            self._poll.unregister(self._f)
            self._f.close()
            self._f = None
            call(_emu.OP_UART_CLOSE, self._id)

    def _char_us(self):
        return (1 + self._bits + (self._parity is not None) + self._stop) * 1000000 // self._baud

    def _wait(self, ms):
        for _ in self._poll.ipoll(ms):
            return True
        return False

    def any(self):
        call(_emu.OP_UART_ANY, self._id)
        return get_u32(RESULT, 0)

    def readinto(self, buf, nbytes=-1):
        # Like uart_read_bytes(): what is there now, else wait up to `timeout` ms for more;
        # None when nothing came.
        n = len(buf) if nbytes < 0 else min(nbytes, len(buf))
        got = self._f.readinto(buf, n)
        if got < n and self._timeout:
            mv = memoryview(buf)
            while got < n and self._wait(self._timeout if not got else self._timeout_char or self._timeout):
                got += self._f.readinto(mv[got:n])
        return got or None

    def read(self, nbytes=-1):
        if nbytes is None or nbytes < 0:
            out = None
            while True:
                chunk = self.read(256)
                if chunk is None:
                    return out
                out = chunk if out is None else out + chunk
        buf = bytearray(nbytes)
        got = self.readinto(buf)
        if got is None:
            return None
        return bytes(buf) if got == nbytes else bytes(memoryview(buf)[:got])

    def readline(self):
        line = None
        while True:
            if self.readinto(self._one) is None:
                return line
            line = bytes(self._one) if line is None else line + self._one
            if self._one[0] == 10:
                return line

    def write(self, buf):
        n = self._f.write(buf)
        now = time.ticks_us()
        if time.ticks_diff(self._tx_end, now) < 0:
            self._tx_end = now
        self._tx_end = time.ticks_add(self._tx_end, n * self._char_us())
        return n

    def txdone(self):
        return time.ticks_diff(self._tx_end, time.ticks_us()) <= 0

    def flush(self):
        left = time.ticks_diff(self._tx_end, time.ticks_us())
        if left > 0:
            time.sleep_us(left)

    def ioctl(self, req, arg):
        if req == _STREAM_GET_FILENO:
            return self._f.fileno()
        if req == _STREAM_FLUSH:
            self.flush()
            return 0
        if req == _STREAM_CLOSE:
            self.deinit()
            return 0
        return -1


# --- I2S --------------------------------------------------------------------------------------

# The ESP32 I2S driver moves audio in DMA buffers of this many frames.
_DMA_FRAMES = const(256)


class I2S(io.IOBase):
    # RX only (a microphone). A stream (io.IOBase) so asyncio.StreamReader can poll it, as on the
    # ESP32. Audio is paced by the wall clock like DMA: readinto() blocks until
    # the samples exist, and a reader that falls more than `ibuf` bytes behind loses the oldest.
    RX = const(1)
    TX = const(2)
    MONO = const(0)
    STEREO = const(1)

    def __init__(self, id, *, sck, ws, sd, mck=None, mode, bits, format, rate, ibuf):
        if id not in (0, 1):
            raise ValueError("invalid id")
        self._id = id
        self.init(sck=sck, ws=ws, sd=sd, mck=mck, mode=mode, bits=bits, format=format,
                  rate=rate, ibuf=ibuf)

    def init(self, *, sck, ws, sd, mck=None, mode, bits, format, rate, ibuf):
        if mode != I2S.RX:
            raise ValueError("invalid mode")
        if bits not in (16, 32):
            raise ValueError("invalid bits")
        if format not in (I2S.MONO, I2S.STEREO):
            raise ValueError("invalid format")
        if ibuf <= 0:
            raise ValueError("invalid ibuf")
        self._frame = (bits // 8) * (2 if format == I2S.STEREO else 1)
        self._bps = rate * self._frame          # bytes per second
        self._ibuf = ibuf - ibuf % self._frame
        self._block = _DMA_FRAMES * self._frame
        self._async = False
        self._handler = None
        ARGS[0] = bits
        ARGS[1] = format
        put_u32(2, rate)
        call(_emu.OP_I2S_INIT, self._id, 6)
        self._t = time.ticks_us()
        self._frac = 0   # byte-microseconds not yet worth a whole byte
        self._avail = 0  # bytes captured and not yet read

    def _capture(self):
        # Account for the audio the DMA captured since the last call; returns bytes dropped.
        now = time.ticks_us()
        self._frac += time.ticks_diff(now, self._t) * self._bps
        self._t = now
        self._avail += self._frac // 1000000
        self._frac %= 1000000
        over = self._avail - self._ibuf
        if over > 0:
            over -= over % self._frame
            self._avail -= over
            return over
        return 0

    def readinto(self, buf):
        n = len(buf) - len(buf) % self._frame
        skip = self._capture()
        if self._async:
            ready = self._avail - self._avail % self._block
            n = min(n, ready) if ready else 0
        else:
            while self._avail < n:
                time.sleep_us((n - self._avail) * 1000000 // self._bps + 1)
                skip += self._capture()
        if not n:
            return 0
        put_u32(0, skip)
        put_u32(4, n)
        call(_emu.OP_I2S_READ, self._id, 8, None, memoryview(buf)[:n] if n < len(buf) else buf)
        self._avail -= n
        if self._handler is not None:
            schedule(self._handler, self)
        return n

    def irq(self, handler):
        # Non-blocking mode is emulated by completing each readinto() at once, then calling back.
        self._handler = handler

    def ioctl(self, req, arg):
        if req == _STREAM_POLL:
            self._async = True
            self._capture()
            return _POLL_RD if self._avail >= self._block and arg & _POLL_RD else 0
        return -1

    def deinit(self):
        call(_emu.OP_I2S_DEINIT, self._id)

    @staticmethod
    def shift(*, buf, bits, shift):
        step = bits // 8
        for i in range(0, len(buf) - step + 1, step):
            v = int.from_bytes(buf[i:i + step], "little")
            if v >> (bits - 1):
                v -= 1 << bits
            v = v << shift if shift > 0 else v >> -shift
            v &= (1 << bits) - 1
            buf[i:i + step] = v.to_bytes(step, "little")


# --- WDT, RTC ---------------------------------------------------------------------------------


class WDT:
    # The ESP32's watchdog cannot be stopped; not fed within `timeout` ms, it resets the chip.
    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError("WDT(%d) doesn't exist" % id)
        if timeout <= 0:
            raise ValueError("WDT timeout too short")
        put_u32(0, timeout)
        call(_emu.OP_WDT_START, 0, 4)

    def feed(self):
        call(_emu.OP_WDT_FEED, 0)


class RTC:
    # Kept by the supervisor: survives resets and deep sleep, starts at 2000-01-01 at power-on.
    def __init__(self, id=0):
        pass

    def init(self, datetime):
        self.datetime(datetime)

    def datetime(self, datetime=None):
        if datetime is None:
            call(_emu.OP_RTC_GET, 0)
            r = RESULT
            return (r[0] | (r[1] << 8), r[2], r[3], r[4], r[5], r[6], r[7], get_u32(r, 8))
        year, month, day, weekday, hour, minute, second = datetime[:7]
        us = datetime[7] if len(datetime) > 7 else 0
        ARGS[0] = year & 0xFF
        ARGS[1] = year >> 8
        ARGS[2] = month
        ARGS[3] = day
        ARGS[4] = weekday
        ARGS[5] = hour
        ARGS[6] = minute
        ARGS[7] = second
        put_u32(8, us)
        call(_emu.OP_RTC_SET, 0, 12)

    def memory(self, data=None):
        # RTC slow memory (2 KB on the ESP32): keeps its content through deep sleep and resets.
        if data is None:
            buf = bytearray(2048)
            n = call(_emu.OP_RTC_MEM_GET, 0, 0, None, buf)
            return bytes(memoryview(buf)[:n])
        if len(data) > 2048:
            raise ValueError("buffer too long")
        call(_emu.OP_RTC_MEM_SET, 0, 0, data)
