# MicroPython's low-level `bluetooth` module (extmod/modbluetooth.c, NimBLE on the ESP32) on the
# emulated board: the peripheral role, backed by the virtual radio (gonggi_emu.radio) over an
# AF_UNIX socket whose path is in $GONGGI_RADIO.
#
# Same names, signatures, IRQ codes and data shapes as the ESP32 port: the firmware's irq handler
# gets (event, data) with _IRQ_CENTRAL_CONNECT=1 / _IRQ_CENTRAL_DISCONNECT=2 as (conn_handle,
# addr_type, addr memoryview), _IRQ_GATTS_WRITE=3 as (conn_handle, attr_handle) and
# _IRQ_MTU_EXCHANGED=21 as (conn_handle, mtu). Characteristic values keep the port's buffers:
# 20 bytes unless gatts_set_buffer() says otherwise, a central's longer write is cut there.
#
# IRQs are delivered as the port's scheduler delivers them, between bytecodes of the main
# program: by an asyncio task that waits for the radio socket (the firmware runs asyncio), and
# at the end of every call into this module (events that arrived while it waited for the radio).
import os
import select
import socket
from micropython import const

FLAG_READ = const(0x0002)
FLAG_WRITE_NO_RESPONSE = const(0x0004)
FLAG_WRITE = const(0x0008)
FLAG_NOTIFY = const(0x0010)
FLAG_INDICATE = const(0x0020)

# Keep equal to gonggi_emu.radio.wire.Op.
_OP_HELLO = const(0x01)
_OP_ADVERTISE = const(0x02)
_OP_NOTIFY = const(0x03)
_OP_DISCONNECT = const(0x04)
_OP_GATT_TABLE = const(0x05)
_OP_PREFERRED_MTU = const(0x06)
_OP_VALUE = const(0x07)
_EV_CONNECT = const(0x81)
_EV_DISCONNECT = const(0x82)
_EV_WRITE = const(0x83)
_EV_MTU = const(0x84)
_STATUS = const(0xC0)

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)

_ENODEV = const(19)  # ERRNO_BLUETOOTH_NOT_ACTIVE
_EINVAL = const(22)
_ENOTCONN = const(107)
_ETIMEDOUT = const(110)
_DEFAULT_ATTR_LEN = const(20)  # MP_BLUETOOTH_DEFAULT_ATTR_LEN
_FIRST_HANDLE = const(10)  # NimBLE's GAP and GATT services come first
_REPLY_MS = const(5000)
_POLL_RESERVE = const(64)

# The Bluetooth base UUID 0000xxxx-0000-1000-8000-00805f9b34fb, little-endian.
_BASE = b"\xfb\x34\x9b\x5f\x80\x00\x00\x80\x00\x10\x00\x00\x00\x00\x00\x00"


class UUID:
    def __init__(self, value):
        if isinstance(value, UUID):
            self._b = value._b
        elif isinstance(value, int):
            if not 0 <= value <= 0xFFFF:
                raise ValueError("invalid UUID")
            self._b = bytes((value & 0xFF, value >> 8))
        elif isinstance(value, str):
            h = value.replace("-", "")
            if len(h) != 32:
                raise ValueError("invalid UUID")
            self._b = bytes(reversed(bytes.fromhex(h)))
        else:
            b = bytes(value)
            if len(b) not in (2, 4, 16):
                raise ValueError("invalid UUID")
            self._b = b

    def _full(self):
        # 16 bytes little-endian (16- and 32-bit UUIDs on the base UUID).
        if len(self._b) == 16:
            return self._b
        return _BASE[:12] + self._b + bytes(4 - len(self._b))

    def __eq__(self, other):
        return isinstance(other, UUID) and self._full() == other._full()

    def __hash__(self):
        return hash(self._full())

    def __repr__(self):
        if len(self._b) == 2:
            return "UUID(0x%04x)" % (self._b[0] | (self._b[1] << 8))
        h = bytes(reversed(self._b)).hex()
        return "UUID('%s-%s-%s-%s-%s')" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


class _BLE:
    # One controller. uid: the chip's base MAC as hex; None reads $GONGGI_UID as the board's.
    # (`gonggi bench ble` runs many nodes per VM, each on a controller of its own.)
    def __init__(self, uid=None):
        self._sock = None
        self._poll = select.poll()
        self._handler = None
        self._name = b"MPY NIMBLE"
        self._mtu = 256
        self._rxbuf = 64
        self._values = {}  # value handle -> bytearray
        self._sizes = {}  # value handle -> [allocated length, append]
        self._conns = set()
        self._pending = []
        self._dispatching = False
        self._rx = bytearray(2048)
        self._rxmv = memoryview(self._rx)
        self._rn = 0
        self._status = -1
        self._hdr = bytearray(3)
        self._nh = bytearray(4)
        self._adv = b""
        self._resp = b""
        self._addr = self._mac(uid)

    @staticmethod
    def _mac(uid):
        # The ESP32's BT MAC is its base MAC (machine.unique_id()) plus 2.
        base = bytearray(bytes.fromhex(uid or os.getenv("GONGGI_UID") or "a4cf12000000"))
        base[5] = (base[5] + 2) & 0xFF
        return bytes(base)

    # -- the socket to the radio ----------------------------------------------------------

    def _connect(self):
        path = os.getenv("GONGGI_RADIO")
        if not path:
            raise OSError(_ENODEV)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(bytes((socket.AF_UNIX, 0)) + path.encode() + b"\x00")
        s.setblocking(False)
        self._sock = s
        self._poll.register(s, select.POLLIN)
        self._rn = 0
        self._call(_OP_HELLO, self._addr)
        import asyncio

        _reserve_poll_slots(asyncio)
        asyncio.create_task(self._pump())

    def _send(self, data):
        mv = memoryview(data)
        while len(mv):
            n = self._sock.write(mv)
            if n:
                mv = mv[n:]

    def _call(self, op, a=None, b=None, c=None):
        if self._sock is None:
            raise OSError(_ENODEV)
        n = 1
        for p in (a, b, c):
            if p is not None:
                n += len(p)
        h = self._hdr
        h[0] = n & 0xFF
        h[1] = n >> 8
        h[2] = op
        self._send(h)
        for p in (a, b, c):
            if p is not None and len(p):
                self._send(p)
        self._status = -1
        while True:
            self._parse()
            if self._status >= 0:
                break
            if not self._poll.poll(_REPLY_MS):
                raise OSError(_ETIMEDOUT)
            self._read()
        self._dispatch()
        if self._status:
            raise OSError(self._status)

    def _read(self):
        n = self._sock.readinto(self._rxmv[self._rn:])
        if n == 0:
            raise OSError(_ENODEV)  # the radio went away
        if n:
            self._rn += n

    async def _pump(self):
        import asyncio

        reader = asyncio.StreamReader(self._sock)
        sock = self._sock
        while self._sock is sock:
            n = await reader.readinto(self._rxmv[self._rn:])
            if n == 0:
                break
            if n:
                self._rn += n
                self._parse()
                self._dispatch()

    def _parse(self):
        rx = self._rx
        i = 0
        while self._rn - i >= 3:
            n = rx[i] | (rx[i + 1] << 8)
            if self._rn - i < 2 + n:
                break
            self._event(rx[i + 2], self._rxmv[i + 3:i + 2 + n])
            i += 2 + n
        if i:
            rest = self._rn - i
            rx[0:rest] = rx[i:self._rn]
            self._rn = rest

    def _event(self, op, p):
        if op == _STATUS:
            self._status = p[0]
            return
        conn = p[0] | (p[1] << 8)
        if op == _EV_CONNECT or op == _EV_DISCONNECT:
            if op == _EV_CONNECT:
                self._conns.add(conn)
                ev = _IRQ_CENTRAL_CONNECT
            else:
                self._conns.discard(conn)
                ev = _IRQ_CENTRAL_DISCONNECT
            self._pending.append((ev, (conn, p[2], memoryview(bytes(p[3:9])))))
        elif op == _EV_WRITE:
            handle = p[2] | (p[3] << 8)
            size = self._sizes.get(handle)
            if size is None:
                return
            data = bytes(p[4:])
            if size[1]:
                v = self._values[handle]
                self._values[handle] = v + data[:max(0, size[0] - len(v))]
            else:
                self._values[handle] = bytearray(data[:size[0]])
            self._pending.append((_IRQ_GATTS_WRITE, (conn, handle)))
        elif op == _EV_MTU:
            self._pending.append((_IRQ_MTU_EXCHANGED, (conn, p[2] | (p[3] << 8))))

    def _dispatch(self):
        if self._dispatching:
            return
        if self._handler is None:
            self._pending.clear()
            return
        self._dispatching = True
        try:
            while self._pending:
                ev, data = self._pending.pop(0)
                self._handler(ev, data)
        finally:
            self._dispatching = False

    # -- the API --------------------------------------------------------------------------

    def active(self, state=None):
        if state is None:
            return self._sock is not None
        if state and self._sock is None:
            self._connect()
            self._call(_OP_PREFERRED_MTU, bytes((self._mtu & 0xFF, self._mtu >> 8)))
        elif not state and self._sock is not None:
            self._poll.unregister(self._sock)
            self._sock.close()
            self._sock = None
            self._conns.clear()
        return self._sock is not None

    def config(self, *args, **kwargs):
        if self._sock is None:
            raise OSError(_ENODEV)
        if args:
            if len(args) != 1 or kwargs:
                raise TypeError("must query one param")
            key = args[0]
            if key == "mac":
                return (0, self._addr)
            if key == "gap_name":
                return self._name
            if key == "mtu":
                return self._mtu
            if key == "rxbuf":
                return self._rxbuf
            raise ValueError("unknown config param")
        for key, value in kwargs.items():
            if key == "gap_name":
                self._name = value.encode() if isinstance(value, str) else bytes(value)
            elif key == "mtu":
                if not 23 <= value <= 517:
                    raise ValueError("invalid mtu")
                self._mtu = value
                self._call(_OP_PREFERRED_MTU, bytes((value & 0xFF, value >> 8)))
            elif key == "rxbuf":
                self._rxbuf = value
            else:
                raise ValueError("unknown config param")

    def irq(self, handler):
        self._handler = handler

    def gap_advertise(self, interval_us, adv_data=None, *, resp_data=None, connectable=True):
        if adv_data is not None:
            self._adv = bytes(adv_data)
        if resp_data is not None:
            self._resp = bytes(resp_data)
        interval = 0 if interval_us is None else max(interval_us, 20000)
        head = bytearray(6)
        for i in range(4):
            head[i] = (interval >> (8 * i)) & 0xFF
        head[4] = 1 if connectable else 0
        head[5] = len(self._adv) & 0xFF
        self._call(_OP_ADVERTISE, head, self._adv, self._resp)

    def gap_disconnect(self, conn_handle):
        try:
            self._call(_OP_DISCONNECT, bytes((conn_handle & 0xFF, conn_handle >> 8)))
        except OSError as e:
            if e.errno == _ENOTCONN:
                return False
            raise
        return True

    def gatts_register_services(self, services):
        if self._sock is None:
            raise OSError(_ENODEV)
        self._values = {}
        self._sizes = {}
        table = bytearray()
        handle = _FIRST_HANDLE
        result = []
        for service in services:
            suuid = UUID(service[0])
            handle += 1  # service declaration
            handles = []
            for ch in service[1]:
                cuuid = UUID(ch[0])
                flags = ch[1]
                value = handle + 1  # after the characteristic declaration
                handle += 2
                if flags & (FLAG_NOTIFY | FLAG_INDICATE):
                    handle += 1  # CCCD
                if len(ch) > 2:
                    handle += len(ch[2])
                self._values[value] = bytearray()
                self._sizes[value] = [_DEFAULT_ATTR_LEN, False]
                handles.append(value)
                table += suuid._full() + cuuid._full()
                table += bytes((value & 0xFF, value >> 8, flags & 0xFF, flags >> 8))
            result.append(tuple(handles))
        self._call(_OP_GATT_TABLE, table)
        return tuple(result)

    def _value(self, handle):
        v = self._values.get(handle)
        if v is None:
            raise OSError(_EINVAL)
        return v

    def gatts_read(self, value_handle):
        v = self._value(value_handle)
        out = bytes(v)
        if self._sizes[value_handle][1]:
            self._values[value_handle] = bytearray()  # an append buffer is emptied by reading it
        return out

    def gatts_write(self, value_handle, data, send_update=False):
        self._value(value_handle)
        self._values[value_handle] = bytearray(data)
        size = self._sizes[value_handle]
        size[0] = max(size[0], len(data))
        self._call(_OP_VALUE, bytes((value_handle & 0xFF, value_handle >> 8)), data)
        if send_update:
            for conn in self._conns:
                self.gatts_notify(conn, value_handle)

    def gatts_notify(self, conn_handle, value_handle, data=None):
        if data is None:
            data = self._value(value_handle)
        h = self._nh
        h[0] = conn_handle & 0xFF
        h[1] = conn_handle >> 8
        h[2] = value_handle & 0xFF
        h[3] = value_handle >> 8
        self._call(_OP_NOTIFY, h, data)

    def gatts_indicate(self, conn_handle, value_handle, data=None):
        raise OSError(95)  # EOPNOTSUPP: gonggi uses notifications only; not emulated

    def gatts_set_buffer(self, value_handle, len, append=False):
        self._value(value_handle)
        self._sizes[value_handle] = [len, bool(append)]


_reserved = False


def _reserve_poll_slots(asyncio):
    # A bug of the unix port's select.poll (extmod/modselect.c, poll_set_add_fd): when its array
    # of pollfds is moved to grow, it rebases the entry pointer of every registered object,
    # including objects without a file descriptor (whose pointer is NULL), such as the
    # ThreadSafeFlag the firmware waits on; the next poll writes through a wild pointer and the VM
    # dies (SIGSEGV). The ESP32 port has no such array. So the array of asyncio's poller is grown
    # once, here, before the first flag is registered: radio sockets then reuse its slots.
    global _reserved
    if _reserved:
        return
    _reserved = True
    poller = asyncio.core._io_queue.poller
    for fd in range(_POLL_RESERVE):
        poller.register(fd, select.POLLIN)
    for fd in range(_POLL_RESERVE):
        poller.unregister(fd)


_ble = None


def BLE():
    # One controller per chip: every call returns the same object, as on the port.
    global _ble
    if _ble is None:
        _ble = _BLE()
    return _ble
