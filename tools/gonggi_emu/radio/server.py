"""The virtual radio: one asyncio AF_UNIX server that plays the air between BLE peripherals and centrals.

::

    async with VirtualRadio(tmp / "radio.sock", timing=Timing(time_scale=60)) as radio:
        ...  # boards get $GONGGI_RADIO=radio.path; the gateway uses gonggi_emu.bleak_backend

It enforces what a real radio and stack do: legacy advertising payloads of at most 31 bytes
(longer: the peripheral's stack refuses with EIO, as NimBLE on an ESP32), an ATT MTU of 23 until
the central exchanges it (at most 247 here, one LL packet with data length extension), notifications
truncated to MTU - 3, a limited number of connections per central adapter, the airtime of a 1M PHY
connection (connection interval, packets per connection event, 27-byte LL payloads until the MTU
exchange turns on DLE's 251), RSSI falling with distance, and the faults tests inject: failed
connects, a connection lost mid-transfer, a scan that stalls silently, an adapter reset.
Every duration is divided by ``Timing.time_scale`` so benches can run faster than real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from gonggi_emu.radio.wire import Op, Splitter, pack, pack_json

__all__ = ["RadioError", "Timing", "VirtualRadio", "rssi_at"]

log = logging.getLogger(__name__)

LEGACY_ADV_MAX = 31
ATT_MTU_DEFAULT = 23
ATT_MTU_MAX = 247
LL_OCTETS = 27  # LL data payload without data length extension
LL_OCTETS_DLE = 251
L2CAP_HEADER = 4
NIMBLE_PREFERRED_MTU = 256  # ESP-IDF's CONFIG_BT_NIMBLE_ATT_PREFERRED_MTU
RSSI_FLOOR = -100  # below this a receiver hears nothing
_ERR_LIMITED = "[org.bluez.Error.Failed] le-connection-abort-by-local: Connection Rejected due to Limited Resources (0x0d)"
_ERR_ABORT = "[org.bluez.Error.Failed] le-connection-abort-by-local"
_ERR_NOT_READY = "[org.bluez.Error.NotReady] Resource Not Ready"
_ERR_IN_PROGRESS = "[org.bluez.Error.InProgress] In Progress"
_ERR_NOT_CONNECTED = "[org.bluez.Error.NotConnected] Not Connected"
_FAULTS = ("abort", "timeout", "in_progress")


class RadioError(RuntimeError):
    """Misuse of the radio by a test (not an error of the emulated devices)."""


def rssi_at(meters: float, tx_power_1m: int = -59, exponent: float = 2.5) -> int:
    """Log-distance path loss: what a receiver ``meters`` away reads, in dBm."""
    return round(tx_power_1m - 10 * exponent * math.log10(max(meters, 0.1)))


@dataclass(frozen=True)
class Timing:
    """Link-layer timing of a 1M PHY connection, and the factor all of it is divided by."""

    conn_interval_s: float = 0.030
    packets_per_event: int = 6  # LL PDUs per connection event and direction (ESP32 + BlueZ)
    supervision_timeout_s: float = 4.0
    notify_buffers: int = 12  # NimBLE msys blocks: notifications queued before ENOMEM
    advert_report_s: float = 1.0  # real seconds between repeated scan reports of one advertiser
    time_scale: float = 1.0

    def real(self, seconds: float) -> float:
        return seconds / self.time_scale

    def airtime(self, att_bytes: int, dle: bool) -> float:
        """Radio seconds (unscaled) to carry one ATT PDU over the LL."""
        octets = LL_OCTETS_DLE if dle else LL_OCTETS
        pdus = math.ceil((att_bytes + L2CAP_HEADER) / octets)
        return pdus * self.conn_interval_s / self.packets_per_event


@dataclass
class _Char:
    service: str
    uuid: str
    handle: int
    flags: int


@dataclass(eq=False)
class _Peripheral:
    writer: asyncio.StreamWriter
    address: str
    addr: bytes
    adv: bytes = b""
    resp: bytes = b""
    interval_us: int = 0
    connectable: bool = True
    chars: list[_Char] = field(default_factory=list)
    preferred_mtu: int = NIMBLE_PREFERRED_MTU
    values: dict[int, bytes] = field(default_factory=dict)
    meters: float = 1.0
    conn: _Connection | None = None
    connecting: bool = False
    gone: bool = False

    @property
    def advertising(self) -> bool:
        return self.interval_us > 0 and not self.gone

    def send(self, op: int, payload: bytes) -> None:
        if not self.gone:
            self.writer.write(pack(op, payload))


@dataclass(eq=False)
class _Adapter:
    name: str
    powered: bool = True
    stalled: bool = False
    connections: int = 0


@dataclass(eq=False)
class _Central:
    writer: asyncio.StreamWriter
    adapter: _Adapter
    scanning: bool = False
    conns: set[int] = field(default_factory=set)

    def send(self, op: int, obj: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(pack_json(op, obj))


@dataclass(eq=False)
class _Connection:
    handle: int
    peripheral: _Peripheral
    central: _Central
    mtu: int = ATT_MTU_DEFAULT
    exchanged: bool = False
    up_free_at: float = 0.0  # peripheral -> central direction busy until (loop time)
    down_free_at: float = 0.0
    in_flight: int = 0
    delivered: int = 0
    alive: bool = True
    timers: list[asyncio.TimerHandle] = field(default_factory=list)


@dataclass
class Stats:
    """Counts a test or a bench can assert on."""

    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    lost: int = 0  # connections lost (drop(), drop_after_notifications(), a peripheral gone)
    notifications: int = 0
    notify_enomem: int = 0
    truncated: int = 0
    writes: int = 0
    adverts_rejected: int = 0
    max_concurrent: dict[str, int] = field(default_factory=dict)


class VirtualRadio:
    """The air: peripherals and centrals connect to ``path``; tests steer faults and distances."""

    def __init__(self, path: str | Path, *, timing: Timing | None = None, max_connections: int = 8) -> None:
        self.path = Path(path)
        self.timing = timing or Timing()
        self.max_connections = max_connections
        self.stats = Stats()
        self.peripherals: dict[str, _Peripheral] = {}
        self._adapters: dict[str, _Adapter] = {}
        self._centrals: set[_Central] = set()
        self._conns: dict[int, _Connection] = {}
        self._next_handle = 1
        self._meters: dict[str, float] = {}
        self._fail: dict[str | None, list[str]] = {}
        self._drop_after: dict[str, int] = {}
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}  # one per socket
        self._changed = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        self._spawn(self._report_adverts())

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        # Hang up on every client: their handlers end at end of file. (Cancelling a stream
        # handler instead makes asyncio 3.11 log an error from its completion callback.)
        clients = list(self._clients.items())
        for _, writer in clients:
            writer.close()
        await asyncio.gather(*(task for task, _ in clients), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in list(self._conns.values()):
            for t in conn.timers:
                t.cancel()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _after(self, conn: _Connection | None, delay: float, fn: Callable[[], None]) -> None:
        handle = asyncio.get_running_loop().call_later(delay, fn)
        if conn is not None:
            conn.timers.append(handle)

    def _pulse(self) -> None:
        self._changed.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds, re-checked at every change the radio sees."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    # -- what tests steer -----------------------------------------------------------------------

    def place(self, address: str, meters: float) -> None:
        """Put a peripheral ``meters`` from every central (RSSI and range follow)."""
        self._meters[address.upper()] = meters
        if (p := self.peripherals.get(address.upper())) is not None:
            p.meters = meters

    def fail_connects(self, address: str | None = None, count: int = 1, mode: str = "abort") -> None:
        """The next ``count`` connects (to ``address``, or to anyone) fail: "abort" (the controller
        gave up: ``le-connection-abort-by-local``), "timeout" (nobody answered until the caller's
        timeout) or "in_progress" (BlueZ still has an earlier attempt on the device: ``InProgress``)."""
        if mode not in _FAULTS:
            raise RadioError(f"fail_connects mode must be one of {', '.join(map(repr, _FAULTS))}, not {mode!r}")
        key = address.upper() if address else None
        self._fail.setdefault(key, []).extend([mode] * count)

    def drop(self, address: str) -> None:
        """The live connection to ``address`` is lost now (out of range, interference)."""
        p = self.peripherals.get(address.upper())
        if p is None or p.conn is None:
            raise RadioError(f"{address} is not connected")
        self._lose(p.conn, 0x08)  # HCI: Connection Timeout

    def drop_after_notifications(self, address: str, count: int) -> None:
        """Lose the connection to ``address`` once ``count`` more notifications got through."""
        self._drop_after[address.upper()] = count

    def stall_scan(self, adapter: str = "hci0") -> None:
        """Scanning on ``adapter`` silently stops reporting, as BlueZ sometimes does, until restarted."""
        self._adapter(adapter).stalled = True

    def reset_adapter(self, adapter: str = "hci0", down_s: float = 1.0) -> None:
        """The adapter resets: its connections drop, its scans end, it is unpowered for ``down_s``."""
        a = self._adapter(adapter)
        a.powered = False
        for conn in list(self._conns.values()):
            if conn.central.adapter is a:
                self._end(conn, 0x16, notify_central=True)
        for c in self._centrals:
            if c.adapter is a:
                c.scanning = False
        self._after(None, self.timing.real(down_s), lambda: self._power(a))

    def _power(self, a: _Adapter) -> None:
        a.powered = True
        self._pulse()

    def connected(self, address: str) -> bool:
        p = self.peripherals.get(address.upper())
        return p is not None and p.conn is not None

    def connections(self, adapter: str = "hci0") -> int:
        return self._adapter(adapter).connections

    def _adapter(self, name: str) -> _Adapter:
        a = self._adapters.get(name)
        if a is None:
            a = self._adapters[name] = _Adapter(name)
        return a

    # -- sockets --------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        splitter = Splitter()
        role: _Peripheral | _Central | None = None
        task = asyncio.current_task()
        assert task is not None
        self._clients[task] = writer
        try:
            while data := await reader.read(65536):
                for op, payload in splitter.feed(data):
                    if role is None:
                        role = self._hello(writer, op, payload)
                    elif isinstance(role, _Peripheral):
                        self._from_peripheral(role, op, payload)
                    else:
                        self._from_central(role, op, payload)
        except ConnectionError as exc:
            log.debug("radio client went away: %s", exc)  # a client closing its socket: routine
        except ValueError as exc:
            log.warning("radio client dropped: %s", exc)  # it broke the wire format
        finally:
            del self._clients[task]
            if isinstance(role, _Peripheral):
                self._peripheral_gone(role)
            elif isinstance(role, _Central):
                self._central_gone(role)
            writer.close()

    def _hello(self, writer: asyncio.StreamWriter, op: int, payload: bytes) -> _Peripheral | _Central:
        if op == Op.HELLO_PERIPHERAL:
            address = ":".join(f"{b:02X}" for b in payload[:6])
            old = self.peripherals.get(address)
            if old is not None:
                self._peripheral_gone(old)  # the board rebooted: its old VM is gone
            p = _Peripheral(writer, address, bytes(payload[:6]), meters=self._meters.get(address, 1.0))
            self.peripherals[address] = p
            p.send(Op.STATUS, b"\x00")
            self._pulse()
            return p
        if op == Op.HELLO_CENTRAL:
            c = _Central(writer, self._adapter(json.loads(payload)["adapter"]))
            self._centrals.add(c)
            return c
        raise ValueError(f"radio: first message must be a HELLO, got op 0x{op:02x}")

    # -- peripherals ----------------------------------------------------------------------------

    def _from_peripheral(self, p: _Peripheral, op: int, payload: bytes) -> None:
        status = 0
        if op == Op.ADVERTISE:
            status = self._advertise(p, payload)
        elif op == Op.NOTIFY:
            conn_h, handle = struct.unpack_from("<HH", payload)
            status = self._notify(p, conn_h, handle, payload[4:])
        elif op == Op.DISCONNECT:
            (conn_h,) = struct.unpack_from("<H", payload)
            conn = self._conns.get(conn_h)
            if conn is None or conn.peripheral is not p:
                status = errno.ENOTCONN
            else:
                self._end(conn, 0x16, notify_central=True)  # local host terminated
        elif op == Op.GATT_TABLE:
            p.chars = [
                _Char(_uuid(payload[i:i + 16]), _uuid(payload[i + 16:i + 32]),
                      *struct.unpack_from("<HH", payload, i + 32))
                for i in range(0, len(payload), 36)
            ]
        elif op == Op.PREFERRED_MTU:
            (p.preferred_mtu,) = struct.unpack_from("<H", payload)
        elif op == Op.VALUE:
            (handle,) = struct.unpack_from("<H", payload)
            p.values[handle] = bytes(payload[2:])
        else:
            status = errno.EINVAL
        p.send(Op.STATUS, bytes((status,)))
        self._pulse()

    def _advertise(self, p: _Peripheral, payload: bytes) -> int:
        interval_us, connectable, n = struct.unpack_from("<IBB", payload)
        adv, resp = payload[6:6 + n], payload[6 + n:]
        if len(adv) > LEGACY_ADV_MAX or len(resp) > LEGACY_ADV_MAX:
            # NimBLE: ble_gap_adv_set_data -> BLE_ERR_INV_HCI_CMD_PARMS, which MicroPython maps to EIO.
            self.stats.adverts_rejected += 1
            return errno.EIO
        if interval_us and p.conn is not None and connectable:
            return errno.EBUSY  # NimBLE cannot advertise connectable while its one link is up
        p.interval_us, p.connectable, p.adv, p.resp = interval_us, bool(connectable), bytes(adv), bytes(resp)
        if interval_us:
            for c in self._centrals:
                self._report(c, p)
        return 0

    def _notify(self, p: _Peripheral, conn_h: int, handle: int, data: bytes) -> int:
        conn = self._conns.get(conn_h)
        if conn is None or conn.peripheral is not p or not conn.alive:
            return errno.ENOTCONN
        if conn.in_flight >= self.timing.notify_buffers:
            self.stats.notify_enomem += 1
            return errno.ENOMEM
        room = conn.mtu - 3
        if len(data) > room:  # ATT notifications carry at most MTU - 3 bytes: the rest is lost
            self.stats.truncated += 1
            data = data[:room]
        conn.in_flight += 1
        done = self._schedule(conn, "up", 3 + len(data))
        self._after(conn, done - self._now(), lambda: self._deliver(conn, handle, data))
        return 0

    def _schedule(self, conn: _Connection, direction: str, att_bytes: int, extra_s: float = 0.0) -> float:
        """Loop time at which an ATT PDU sent now in ``direction`` has crossed the air."""
        now = self._now()
        attr = f"{direction}_free_at"
        start = max(now, getattr(conn, attr))
        done = start + self.timing.real(self.timing.airtime(att_bytes, conn.exchanged) + extra_s)
        setattr(conn, attr, done)
        return done

    def _deliver(self, conn: _Connection, handle: int, data: bytes) -> None:
        conn.in_flight -= 1
        if not conn.alive:
            return
        self.stats.notifications += 1
        conn.delivered += 1
        conn.central.send(Op.NOTIFICATION, {"conn": conn.handle, "handle": handle, "data": data.hex()})
        left = self._drop_after.get(conn.peripheral.address)
        if left is not None:
            left -= 1
            if left <= 0:
                del self._drop_after[conn.peripheral.address]
                self._lose(conn, 0x08)
            else:
                self._drop_after[conn.peripheral.address] = left

    def _peripheral_gone(self, p: _Peripheral) -> None:
        p.gone = True
        if self.peripherals.get(p.address) is p:
            del self.peripherals[p.address]
        if p.conn is not None and p.conn.alive:
            self._lose(p.conn, 0x08)  # the central notices when its supervision timeout expires
        self._pulse()

    # -- centrals -------------------------------------------------------------------------------

    def _from_central(self, c: _Central, op: int, payload: bytes) -> None:
        if op != Op.REQUEST:
            raise ValueError(f"radio: unexpected op 0x{op:02x} from a central")
        req = json.loads(payload)
        self._spawn(self._answer(c, req))

    async def _answer(self, c: _Central, req: dict[str, Any]) -> None:
        try:
            reply = await getattr(self, f"_call_{req['call']}")(c, req)
            c.send(Op.REPLY, {"id": req["id"], "ok": True, **reply})
        except _CallFailed as exc:
            c.send(Op.REPLY, {"id": req["id"], "ok": False, "error": str(exc), "kind": exc.kind})
        self._pulse()

    async def _call_scan(self, c: _Central, req: dict[str, Any]) -> dict[str, Any]:
        if not c.adapter.powered:
            raise _CallFailed(_ERR_NOT_READY)
        c.scanning = True
        c.adapter.stalled = False  # a restarted discovery reports again
        for p in list(self.peripherals.values()):
            self._report(c, p)
        return {}

    async def _call_stop_scan(self, c: _Central, req: dict[str, Any]) -> dict[str, Any]:
        c.scanning = False
        return {}

    def _report(self, c: _Central, p: _Peripheral) -> None:
        rssi = rssi_at(p.meters)
        if (not c.scanning or c.adapter.stalled or not c.adapter.powered or not p.advertising
                or rssi < RSSI_FLOOR):
            return
        c.send(Op.ADVERT, {"address": p.address, "adv": p.adv.hex(), "resp": p.resp.hex(), "rssi": rssi,
                           "connectable": p.connectable})

    async def _report_adverts(self) -> None:
        while True:
            await asyncio.sleep(self.timing.advert_report_s)
            for c in list(self._centrals):
                for p in list(self.peripherals.values()):
                    self._report(c, p)

    async def _call_connect(self, c: _Central, req: dict[str, Any]) -> dict[str, Any]:
        address = req["address"].upper()
        timeout = float(req["timeout"])
        if not c.adapter.powered:
            raise _CallFailed(_ERR_NOT_READY)
        p = self.peripherals.get(address)
        if p is not None and (p.connecting or p.conn is not None):
            raise _CallFailed(_ERR_IN_PROGRESS)
        if c.adapter.connections >= self.max_connections:
            self.stats.connect_failures += 1
            raise _CallFailed(_ERR_LIMITED)
        fault = self._take_fault(address)
        if fault == "in_progress":
            self.stats.connect_failures += 1
            raise _CallFailed(_ERR_IN_PROGRESS)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Wait for a connectable advert in range: the controller connects on the next one.
        while True:
            p = self.peripherals.get(address)
            if p is not None and p.advertising and p.connectable and p.conn is None and not p.connecting \
                    and rssi_at(p.meters) >= RSSI_FLOOR and fault != "timeout":
                break
            left = deadline - loop.time()
            if left <= 0:
                self.stats.connect_failures += 1
                raise _CallFailed("timeout", kind="timeout")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._changed.wait()
        p.connecting = True
        try:
            await asyncio.sleep(self.timing.real(p.interval_us / 2e6 + self.timing.conn_interval_s))
        finally:
            p.connecting = False
        if fault == "abort" or p.gone or not c.adapter.powered:
            self.stats.connect_failures += 1
            raise _CallFailed(_ERR_ABORT)
        if c.adapter.connections >= self.max_connections:
            self.stats.connect_failures += 1
            raise _CallFailed(_ERR_LIMITED)
        handle = self._next_handle
        self._next_handle = handle % 0xEFFF + 1
        conn = _Connection(handle, p, c)
        self._conns[handle] = conn
        p.conn = conn
        p.interval_us = 0  # legacy connectable advertising ends with the connection
        c.conns.add(handle)
        c.adapter.connections += 1
        self.stats.connects += 1
        top = self.stats.max_concurrent.get(c.adapter.name, 0)
        self.stats.max_concurrent[c.adapter.name] = max(top, c.adapter.connections)
        p.send(Op.EV_CONNECT, struct.pack("<HB", handle, 0) + _central_addr(c))
        return {"conn": handle, "mtu": conn.mtu, "rssi": rssi_at(p.meters),
                "chars": [[ch.service, ch.uuid, ch.handle, ch.flags] for ch in p.chars]}

    def _take_fault(self, address: str) -> str | None:
        for key in (address, None):
            pending = self._fail.get(key)
            if pending:
                return pending.pop(0)
        return None

    def _conn_of(self, c: _Central, req: dict[str, Any]) -> _Connection:
        conn = self._conns.get(int(req["conn"]))
        if conn is None or conn.central is not c or not conn.alive:
            raise _CallFailed(_ERR_NOT_CONNECTED, kind="disconnected")
        return conn

    async def _call_exchange_mtu(self, c: _Central, req: dict[str, Any]) -> dict[str, Any]:
        conn = self._conn_of(c, req)
        if not conn.exchanged:
            # One request/response round trip (ATT allows one exchange per connection).
            await asyncio.sleep(self.timing.real(2 * self.timing.conn_interval_s))
            if not conn.alive:
                raise _CallFailed(_ERR_NOT_CONNECTED, kind="disconnected")
            conn.mtu = max(ATT_MTU_DEFAULT, min(int(req["mtu"]), conn.peripheral.preferred_mtu, ATT_MTU_MAX))
            conn.exchanged = True
            conn.peripheral.send(Op.EV_MTU, struct.pack("<HH", conn.handle, conn.mtu))
        return {"mtu": conn.mtu}

    async def _call_write(self, c: _Central, req: dict[str, Any]) -> dict[str, Any]:
        conn = self._conn_of(c, req)
        data = bytes.fromhex(req["data"])
        handle = int(req["handle"])
        response = bool(req["response"])
        limit = 512 if response else conn.mtu - 3  # with response BlueZ does a long write
        if len(data) > limit:
            raise _CallFailed(f"[org.bluez.Error.InvalidValueLength] value of {len(data)} bytes is over "
                              f"{limit} (ATT MTU {conn.mtu})", kind="gatt")
        done = self._schedule(conn, "down", 3 + len(data), self.timing.conn_interval_s if response else 0.0)
        self.stats.writes += 1
        await asyncio.sleep(max(0.0, done - self._now()))
        if not conn.alive:
            raise _CallFailed(_ERR_NOT_CONNECTED, kind="disconnected")
        conn.peripheral.send(Op.EV_WRITE, struct.pack("<HH", conn.handle, handle) + data)
        return {}

    async def _call_read(self, c: _Central, req: dict[str, Any]) -> dict[str, Any]:
        conn = self._conn_of(c, req)
        await asyncio.sleep(self.timing.real(2 * self.timing.conn_interval_s))
        return {"data": conn.peripheral.values.get(int(req["handle"]), b"").hex()}

    async def _call_disconnect(self, c: _Central, req: dict[str, Any]) -> dict[str, Any]:
        conn = self._conns.get(int(req["conn"]))
        if conn is not None and conn.central is c:
            await asyncio.sleep(self.timing.real(self.timing.conn_interval_s))
            self._end(conn, 0x16, notify_central=False)
        return {}

    def _lose(self, conn: _Connection, reason: int) -> None:
        # Both ends learn of a lost link when their supervision timeout expires; nothing more gets through.
        conn.alive = False
        self.stats.lost += 1
        self._after(None, self.timing.real(self.timing.supervision_timeout_s),
                    lambda: self._end(conn, reason, notify_central=True))

    def _end(self, conn: _Connection, reason: int, *, notify_central: bool) -> None:
        if self._conns.get(conn.handle) is not conn:
            return
        del self._conns[conn.handle]
        conn.alive = False
        for t in conn.timers:
            t.cancel()
        p, c = conn.peripheral, conn.central
        if p.conn is conn:
            p.conn = None
            p.send(Op.EV_DISCONNECT, struct.pack("<HB", conn.handle, 0) + _central_addr(c))
        c.conns.discard(conn.handle)
        c.adapter.connections -= 1
        self.stats.disconnects += 1
        if notify_central:
            c.send(Op.DISCONNECTED, {"conn": conn.handle, "reason": reason})
        self._pulse()

    def _central_gone(self, c: _Central) -> None:
        self._centrals.discard(c)
        for handle in list(c.conns):
            conn = self._conns.get(handle)
            if conn is not None:
                self._end(conn, 0x13, notify_central=False)


class _CallFailed(Exception):
    def __init__(self, message: str, kind: str = "bleak") -> None:
        super().__init__(message)
        self.kind = kind


def _uuid(raw: bytes) -> str:
    """A 16-byte little-endian UUID as bleak writes it; 16-bit ones on the Bluetooth base UUID."""
    h = raw[::-1].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _central_addr(c: _Central) -> bytes:
    # A stable public-looking address per adapter, as the peripheral's IRQ reports it.
    digest = sum(c.adapter.name.encode()) & 0xFF
    return bytes((0x00, 0x1A, 0x7D, 0xDA, 0x71, digest))
