"""A bleak backend on the virtual radio: the gateway's BLE code runs unchanged, only ``backend=`` differs.

::

    scanner_cls, client_cls = radio_backends("/tmp/radio.sock")
    BleakScanner(callback, [SERVICE], backend=scanner_cls)
    BleakClient(device, backend=client_cls)

Errors come out as BlueZ makes bleak raise them: ``BleakError`` with the D-Bus error text
(``[org.bluez.Error.InProgress] In Progress``, ``le-connection-abort-by-local``, ``NotReady``), and
``TimeoutError`` from a connect that found nobody to connect to. As with BlueZ, the ATT MTU is
exchanged right after connecting (bluetoothd asks for 517; the radio settles on at most 247).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
from collections.abc import Callable
from typing import Any

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError

from gonggi_emu.radio.wire import Op, Splitter, pack_json

__all__ = ["VirtualScanner", "VirtualClient", "radio_backends", "parse_advertisement"]

BLUEZ_MTU_REQUEST = 517
_PROPERTIES = ((0x0002, "read"), (0x0004, "write-without-response"), (0x0008, "write"), (0x0010, "notify"),
               (0x0020, "indicate"))


class _RadioSocket:
    """One central's connection to the radio: numbered requests, their replies, and events."""

    def __init__(self, path: str, adapter: str, on_event: Callable[[int, dict[str, Any]], None]) -> None:
        self._path = path
        self._adapter = adapter
        self._on_event = on_event
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        try:
            reader, self._writer = await asyncio.open_unix_connection(self._path)
        except OSError as exc:
            raise BleakError(f"[org.bluez.Error.NotReady] virtual radio {self._path}: {exc}") from exc
        self._writer.write(pack_json(Op.HELLO_CENTRAL, {"adapter": self._adapter}))
        self._task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        splitter = Splitter()
        try:
            while data := await reader.read(65536):
                for op, payload in splitter.feed(data):
                    obj = json.loads(payload)
                    if op == Op.REPLY:
                        fut = self._waiting.pop(obj["id"], None)
                        if fut is not None and not fut.done():
                            fut.set_result(obj)
                    else:
                        self._on_event(op, obj)
        except ConnectionError:
            pass
        if self._writer is not None:
            self._writer.close()  # later calls fail at once, as BlueZ's do once the adapter is gone
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(BleakError("[org.bluez.Error.Failed] virtual radio went away"))
        self._waiting.clear()
        self._on_event(Op.DISCONNECTED, {"conn": None, "reason": 0x08})

    async def call(self, call: str, **args: Any) -> dict[str, Any]:
        if self._writer is None or self._writer.is_closing():
            raise BleakError(f"[org.bluez.Error.NotConnected] {call}: not connected to the virtual radio")
        rid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        self._writer.write(pack_json(Op.REQUEST, {"id": rid, "call": call, **args}))
        try:
            reply = await fut
        finally:
            self._waiting.pop(rid, None)
        if not reply["ok"]:
            if reply.get("kind") == "timeout":
                raise TimeoutError(f"{call}: {reply['error']}")
            raise BleakError(reply["error"])
        return reply

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _radio_path(cls: type) -> str:
    path = getattr(cls, "radio_path", None) or os.environ.get("GONGGI_RADIO")
    if not path:
        raise BleakError("[org.bluez.Error.NotReady] no virtual radio: set GONGGI_RADIO or use radio_backends()")
    return str(path)


def _uuid_le(raw: bytes) -> str:
    if len(raw) == 2:
        return f"0000{raw[1]:02x}{raw[0]:02x}-0000-1000-8000-00805f9b34fb"
    h = raw[::-1].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_advertisement(adv: bytes, resp: bytes, rssi: int) -> AdvertisementData:
    """AD structures (Core Spec Supplement part A) as bleak's AdvertisementData."""
    name: str | None = None
    manufacturer: dict[int, bytes] = {}
    service_data: dict[str, bytes] = {}
    uuids: list[str] = []
    tx_power: int | None = None
    for blob in (adv, resp):
        i = 0
        while i + 1 < len(blob):
            n = blob[i]
            if n == 0 or i + 1 + n > len(blob):
                break
            kind, data = blob[i + 1], blob[i + 2:i + 1 + n]
            if kind in (0x02, 0x03):
                uuids += [_uuid_le(data[j:j + 2]) for j in range(0, len(data) - 1, 2)]
            elif kind in (0x06, 0x07):
                uuids += [_uuid_le(data[j:j + 16]) for j in range(0, len(data) - 15, 16)]
            elif kind in (0x08, 0x09):
                name = data.decode(errors="replace")
            elif kind == 0x0A and data:
                tx_power = int.from_bytes(data[:1], "little", signed=True)
            elif kind == 0x16 and len(data) >= 2:
                service_data[_uuid_le(data[:2])] = bytes(data[2:])
            elif kind == 0xFF and len(data) >= 2:
                manufacturer[int.from_bytes(data[:2], "little")] = bytes(data[2:])
            i += 1 + n
    return AdvertisementData(name, manufacturer, service_data, uuids, tx_power, rssi, ())


class VirtualScanner(BaseBleakScanner):
    """``BaseBleakScanner`` on the virtual radio; ``bluez={"adapter": "hci1"}`` picks the adapter."""

    radio_path: str | None = None
    adapter: str = "hci0"

    def __init__(self, detection_callback: AdvertisementDataCallback | None, service_uuids: list[str] | None,
                 scanning_mode: str = "active", *, bluez: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(detection_callback, service_uuids)
        self._active = scanning_mode == "active"
        self._adapter = (bluez or {}).get("adapter") or self.adapter
        self._sock: _RadioSocket | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        sock = _RadioSocket(_radio_path(type(self)), self._adapter, self._on_event)
        await sock.open()
        try:
            await sock.call("scan")
        except BaseException:
            await sock.close()
            raise
        self._sock = sock

    async def stop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(BleakError):
                await sock.call("stop_scan")
            await sock.close()

    def _on_event(self, op: int, obj: dict[str, Any]) -> None:
        if op != Op.ADVERT:
            return
        resp = bytes.fromhex(obj["resp"]) if self._active else b""
        adv = parse_advertisement(bytes.fromhex(obj["adv"]), resp, obj["rssi"])
        if not self.is_allowed_uuid(adv.service_uuids):
            return
        device = self.create_or_update_device(obj["address"], obj["address"], adv.local_name, None, adv)
        self.call_detection_callbacks(device, adv)


class VirtualClient(BaseBleakClient):
    """``BaseBleakClient`` on the virtual radio."""

    radio_path: str | None = None
    adapter: str = "hci0"

    def __init__(self, address_or_ble_device: BLEDevice | str, *,
                 disconnected_callback: Callable[[], None] | None = None, timeout: float = 10.0,
                 bluez: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self._adapter = (bluez or {}).get("adapter") or self.adapter
        self._sock: _RadioSocket | None = None
        self._conn: int | None = None
        self._mtu = 23
        self._callbacks: dict[int, NotifyCallback] = {}

    @property
    def name(self) -> str:
        return self.address

    @property
    def mtu_size(self) -> int:
        return self._mtu

    @property
    def is_connected(self) -> bool:
        return self._conn is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        sock = _RadioSocket(_radio_path(type(self)), self._adapter, self._on_event)
        await sock.open()
        try:
            async with asyncio.timeout(self._timeout + 1.0):
                reply = await sock.call("connect", address=self.address, timeout=self._timeout)
                self._sock, self._conn, self._mtu = sock, reply["conn"], reply["mtu"]
                self.services = _services(reply["chars"], lambda: self._mtu - 3)
                self._mtu = (await sock.call("exchange_mtu", conn=self._conn, mtu=BLUEZ_MTU_REQUEST))["mtu"]
        except BaseException:
            self._conn = None
            self._sock = None
            await sock.close()
            raise

    async def disconnect(self) -> None:
        sock, conn = self._sock, self._conn
        self._conn = None
        self._sock = None
        if sock is None:
            return
        if conn is not None:
            with contextlib.suppress(BleakError):
                await sock.call("disconnect", conn=conn)
        await sock.close()

    def _on_event(self, op: int, obj: dict[str, Any]) -> None:
        if op == Op.NOTIFICATION and obj["conn"] == self._conn:
            callback = self._callbacks.get(obj["handle"])
            if callback is not None:
                callback(bytearray.fromhex(obj["data"]))
        elif op == Op.DISCONNECTED and self._conn is not None and obj["conn"] in (None, self._conn):
            self._conn = None
            if self._disconnected_callback is not None:
                self._disconnected_callback()

    def _require(self) -> tuple[_RadioSocket, int]:
        if self._sock is None or self._conn is None:
            raise BleakError("Not connected")
        return self._sock, self._conn

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise BleakError("pairing is not emulated: gonggi authenticates every message with COSE_Mac0")

    async def unpair(self) -> None:
        raise BleakError("pairing is not emulated")

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False,
                             **kwargs: Any) -> bytearray:
        sock, conn = self._require()
        reply = await sock.call("read", conn=conn, handle=characteristic.handle)
        return bytearray.fromhex(reply["data"])

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False,
                                   **kwargs: Any) -> bytearray:
        raise BleakError("descriptors are not emulated")

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: SizedBuffer,
                              response: bool) -> None:
        sock, conn = self._require()
        await sock.call("write", conn=conn, handle=characteristic.handle, data=bytes(data).hex(), response=response)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        raise BleakError("descriptors are not emulated")

    async def start_notify(self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback,
                           **kwargs: Any) -> None:
        self._require()
        self._callbacks[characteristic.handle] = callback

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._callbacks.pop(characteristic.handle, None)


def _services(chars: list[list[Any]], max_write: Callable[[], int]) -> BleakGATTServiceCollection:
    collection = BleakGATTServiceCollection()
    by_uuid: dict[str, BleakGATTService] = {}
    for service_uuid, char_uuid, handle, flags in chars:
        service = by_uuid.get(service_uuid)
        if service is None:
            service = by_uuid[service_uuid] = BleakGATTService(None, handle - 2, service_uuid)
            collection.add_service(service)
        props = [name for bit, name in _PROPERTIES if flags & bit]
        collection.add_characteristic(BleakGATTCharacteristic(None, handle, char_uuid, props,  # type: ignore[arg-type]
                                                              max_write, service))
    return collection


def radio_backends(path: str | os.PathLike[str], adapter: str = "hci0"
                   ) -> tuple[type[VirtualScanner], type[VirtualClient]]:
    """Backend classes bound to the radio at ``path``, as an adapter named ``adapter``."""
    attrs = {"radio_path": os.fspath(path), "adapter": adapter}
    return (type("VirtualScanner", (VirtualScanner,), attrs),  # type: ignore[return-value]
            type("VirtualClient", (VirtualClient,), attrs))
