# The BLE link to the gateway: a GATT peripheral on MicroPython's low-level `bluetooth` module.
# Same members as SerialLink (send(), run(), the `up` flag): node.py moves frames, not radio state.
#
# - Advertises within one 31-byte legacy payload: flags, the gonggi 128-bit service UUID, and
#   manufacturer data (company 0xFFFF, "testing") holding a 4-byte hash of the node id and the
#   backlog (u16, big-endian), so a gateway serves the fullest nodes first; the node id as the
#   complete local name goes in the scan response.
# - One service: TX (notify) carries node -> gateway frames, RX (write) gateway -> node frames.
#   A frame is type byte + body, as on serial (docs/protocol.md section 8) without the HDLC
#   escaping and FCS (the LL has its own CRC and retransmission). Frames travel in fragments of at
#   most ATT MTU - 3 bytes, each led by one header byte: 0x80 first, 0x40 last, low 6 bits a
#   counter that goes up by one per fragment; a gap drops the frame being reassembled.
#   The node notifies only after the gateway's first write on a connection (an empty fragment:
#   "subscribed, MTU settled"), as MicroPython notifies whether or not anyone listens; `up` is
#   true from that write until the disconnect.
# - The IRQ handler only records the event, copies a write into a bounded queue and sets a
#   ThreadSafeFlag; the work runs in asyncio tasks. Frames wait in a preallocated queue (oldest
#   dropped when full) until a connection can take them. A disconnect empties it, there and then
#   (what is queued after it waits for the next connection): the node sends everything
#   unacknowledged again on the next connection (node.link_up).
import asyncio
from collections import deque
from hashlib import sha256
from micropython import const

import bluetooth

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)
_FLAG_READ = const(0x0002)
_FLAG_WRITE_NO_RESPONSE = const(0x0004)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)
_ENOMEM = const(12)

_FIRST = const(0x80)
_LAST = const(0x40)
_COUNT = const(0x3F)
_MTU_DEFAULT = const(23)
_MTU_MAX = const(247)
_ADV_INTERVAL_US = const(200000)
_BUSY_MS = const(10)  # wait after ENOMEM: the stack's notification buffers are full
_RX_WRITES = const(8)
_EV_UP = const(1)
_EV_DOWN = const(2)
_EV_MTU = const(4)

SERVICE = "6b8f0001-5d2c-4c6e-9a1e-676f6e676769"
TX = "6b8f0002-5d2c-4c6e-9a1e-676f6e676769"
RX = "6b8f0003-5d2c-4c6e-9a1e-676f6e676769"
_SERVICE_LE = b"iggnog\x1e\x9anL,]\x01\x00\x8fk"  # SERVICE, little-endian as on the air


class BleLink:
    def __init__(self, node_id, backlog=None, ble=None, max_frame=1100, queue=2048, refresh_ms=1000):
        # backlog: a function returning the packets waiting for an ack (ring.count), advertised
        # and brought up to date every refresh_ms while no gateway is connected.
        self._ble = ble = ble or bluetooth.BLE()
        self._backlog = backlog
        self._refresh_ms = refresh_ms
        ble.active(True)
        ble.config(gap_name=node_id, mtu=_MTU_MAX)
        ((self._tx_h, self._rx_h),) = ble.gatts_register_services((
            (bluetooth.UUID(SERVICE), (
                (bluetooth.UUID(TX), _FLAG_READ | _FLAG_NOTIFY),
                (bluetooth.UUID(RX), _FLAG_WRITE | _FLAG_WRITE_NO_RESPONSE),
            )),
        ))
        ble.gatts_set_buffer(self._rx_h, _MTU_MAX - 3)
        self.up = False
        self.errors = 0  # fragments dropped: out of sequence, frame too long, receive queue full
        self.dropped = 0  # frames dropped: send queue full
        self._conn = -1
        self._gen = 0  # connects + disconnects: a frame cut by either starts afresh
        self._go = False  # the gateway subscribed and said so with a first (empty) write
        self._mtu = _MTU_DEFAULT
        self._events = 0
        self._flag = asyncio.ThreadSafeFlag()
        self._tx_ready = asyncio.Event()
        self._writes = deque((), _RX_WRITES, 1)
        # Send queue: frames as length (u16 BE) + type + body, between _qh and _qt.
        self._q = bytearray(queue)
        self._qmv = memoryview(self._q)
        self._qh = 0
        self._qt = 0
        self._sending = False
        self._count = 0
        self._frag = bytearray(_MTU_MAX - 3)
        self._fragmv = memoryview(self._frag)
        self._full = self._fragmv[:_MTU_DEFAULT - 3]
        self._rx = bytearray(max_frame)
        self._rxmv = memoryview(self._rx)
        self._rxn = -1  # bytes of the frame being reassembled; -1: waiting for a first fragment
        self._rx_next = 0
        self._adv = bytearray(31)
        self._resp = bytearray(2 + min(len(node_id), 29))
        self._advertised = -1
        self._build_adv(node_id)
        ble.irq(self._irq)
        self._advertise()

    def _build_adv(self, node_id):
        a = self._adv
        a[0:3] = b"\x02\x01\x06"  # flags: LE general discoverable, BR/EDR not supported
        a[3] = 17
        a[4] = 0x07  # complete list of 128-bit service UUIDs
        a[5:21] = _SERVICE_LE
        a[21] = 9
        a[22] = 0xFF  # manufacturer specific data
        a[23] = 0xFF
        a[24] = 0xFF
        a[25:29] = sha256(node_id.encode()).digest()[:4]
        r = self._resp
        r[0] = len(r) - 1
        r[1] = 0x09  # complete local name
        r[2:] = node_id.encode()[:len(r) - 2]

    def _advertise(self):
        n = self._backlog() if self._backlog is not None else 0
        n = min(n, 0xFFFF)
        self._adv[29] = n >> 8
        self._adv[30] = n & 0xFF
        try:
            self._ble.gap_advertise(_ADV_INTERVAL_US, self._adv, resp_data=self._resp)
            self._advertised = n
        except OSError:
            self._advertised = -1  # tried again at the next refresh

    def _irq(self, event, data):
        # Runs as a scheduled callback: record, copy, flag; nothing else.
        if event == _IRQ_CENTRAL_CONNECT:
            self._conn = data[0]
            self._gen += 1
            self._go = False
            self._mtu = _MTU_DEFAULT
            self._events |= _EV_UP
        elif event == _IRQ_CENTRAL_DISCONNECT:
            if data[0] == self._conn:
                self._conn = -1
                self._gen += 1
                self._qh = self._qt = 0  # two ints: no allocation, safe in the handler
                self.up = False
                self._events |= _EV_DOWN
        elif event == _IRQ_GATTS_WRITE:
            if data[1] == self._rx_h:
                try:
                    self._writes.append(self._ble.gatts_read(self._rx_h))
                except IndexError:
                    self.errors += 1
                self._go = True
                self.up = self._conn >= 0
        elif event == _IRQ_MTU_EXCHANGED:
            self._mtu = data[1]
            self._events |= _EV_MTU
        self._flag.set()

    # -- sending ----------------------------------------------------------------------------

    def send(self, ftype, *parts):
        # Queue one frame; it goes out now if a gateway is connected, else when one connects.
        n = 1
        for p in parts:
            n += len(p)
        need = n + 2
        cap = len(self._q)
        if need > cap:
            self.dropped += 1
            return
        while cap - (self._qt - self._qh) < need and not self._sending:
            self._pop()
            self.dropped += 1
        if cap - (self._qt - self._qh) < need:
            self.dropped += 1
            return
        if self._qt + need > cap:
            # Compact: move the queued frames to the front (memoryview copies overlap forwards).
            used = self._qt - self._qh
            self._qmv[0:used] = self._qmv[self._qh:self._qt]
            self._qh = 0
            self._qt = used
        q = self._q
        t = self._qt
        q[t] = n >> 8
        q[t + 1] = n & 0xFF
        q[t + 2] = ftype
        t += 3
        for p in parts:
            k = len(p)
            self._qmv[t:t + k] = p
            t += k
        self._qt = t
        self._tx_ready.set()

    def _pop(self):
        h = self._qh
        self._qh = h + 2 + ((self._q[h] << 8) | self._q[h + 1])
        if self._qh == self._qt:
            self._qh = self._qt = 0

    async def _sender(self):
        ble = self._ble
        while True:
            if self._qh == self._qt or self._conn < 0 or not self._go:
                self._tx_ready.clear()
                await self._tx_ready.wait()
                continue
            self._sending = True
            n = (self._q[self._qh] << 8) | self._q[self._qh + 1]
            gen = self._gen
            off = 0
            while off < n:
                conn = self._conn
                if conn < 0 or gen != self._gen:
                    break  # lost mid-frame
                room = len(self._full) - 1
                k = n - off if n - off < room else room
                s = self._qh + 2 + off
                self._frag[0] = ((self._count & _COUNT) | (_FIRST if off == 0 else 0)
                                 | (_LAST if off + k == n else 0))
                self._fragmv[1:1 + k] = self._qmv[s:s + k]
                try:
                    ble.gatts_notify(conn, self._tx_h, self._full if k == room else self._fragmv[:1 + k])
                except OSError as e:
                    if e.errno == _ENOMEM:
                        await asyncio.sleep_ms(_BUSY_MS)
                        continue
                    break  # not connected any more
                self._count += 1
                off += k
            self._sending = False
            if gen != self._gen:
                pass  # the disconnect emptied the queue meanwhile
            elif off == n:
                self._pop()
            else:
                self._qh = self._qt = 0  # the connection went: the node sends it all again

    # -- receiving --------------------------------------------------------------------------

    def _feed(self, data, on_frame):
        h = data[0]
        k = len(data) - 1
        if h & _FIRST:
            if self._rxn > 0:
                self.errors += 1  # the previous frame never got its last fragment
            self._rxn = 0
        elif self._rxn < 0 or (h & _COUNT) != self._rx_next:
            self.errors += 1
            self._rxn = -1
            return
        self._rx_next = (h + 1) & _COUNT
        if self._rxn + k > len(self._rx):
            self.errors += 1
            self._rxn = -1
            return
        self._rxmv[self._rxn:self._rxn + k] = memoryview(data)[1:]
        self._rxn += k
        if h & _LAST:
            n = self._rxn
            self._rxn = -1
            if n:
                on_frame(self._rxmv[:n])

    async def _receiver(self, on_frame):
        while True:
            try:
                await asyncio.wait_for_ms(self._flag.wait(), self._refresh_ms)
            except asyncio.TimeoutError:
                pass
            ev = self._events
            self._events = 0
            if ev & (_EV_UP | _EV_MTU):
                self._rxn = -1
                self._full = self._fragmv[:self._mtu - 3]
                self._tx_ready.set()
            if ev & _EV_DOWN:
                self._advertised = -1
            if self._writes:
                self._tx_ready.set()
            while self._writes:
                self._feed(self._writes.popleft(), on_frame)
            if self._conn < 0:
                n = self._backlog() if self._backlog is not None else 0
                if n != self._advertised:
                    self._advertise()

    async def run(self, on_frame):
        # Deliver every received frame to on_frame(memoryview: type byte + body).
        await asyncio.gather(self._sender(), self._receiver(on_frame))
