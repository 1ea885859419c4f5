"""The BLE central: serves many gonggi nodes through a few connection slots of one adapter.

::

    central = BleCentral(BleConfig(slots=4), gateway.serve_link, accept=known_id_hash)
    await central.run()  # until cancelled; or ``async with central:`` runs it in a task

It scans for nodes advertising the gonggi service (their advert carries a hash of their id, which
``accept`` checks against the registry, and their backlog), connects to the fullest and
longest-unserved first within ``slots`` simultaneous connections, exchanges the ATT MTU (BlueZ
does it on connect), and hands each connection to ``on_link`` as a :class:`Link`;
``on_link(link)`` runs for as long as the connection lasts and is cancelled when it ends. A
connection ends when the node has been quiet for ``idle_s`` (its backlog is drained), after
``max_session_s`` (others wait), or when it is lost; the slot then goes to the next node.

What BlueZ really does is handled here, so the service never needs a restart: a scan that stalls
silently (a watchdog restarts it), connects that time out or abort (retried per node with
exponential backoff), ``InProgress`` (another connect to the node is under way: retried after
``retry_initial_s`` without growing the backoff), an adapter that resets (its connections drop,
its scan ends silently, scans and connects fail with ``NotReady`` until it is back: the watchdog
and the backoff bring both back).

The bleak backend classes are injectable: ``None`` is bleak's platform default (BlueZ on Linux);
the emulator passes ``gonggi_emu.bleak_backend.radio_backends(path)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError

from gonggi_gateway.config import BleConfig
from gonggi_gateway.errors import LinkError
from gonggi_gateway.links.base import Link
from gonggi_gateway.links.ble_fragments import (
    GO,
    RX_UUID,
    SERVICE_UUID,
    TX_UUID,
    Reassembler,
    fragments,
    id_hash,
    parse_advert,
)
from gonggi_gateway.protocol import Frame
from gonggi_gateway.registry import Registry
from gonggi_gateway.retry import Backoff

__all__ = ["BleCentral", "BleNodeLink", "CentralStats", "RegistryFilter"]

log = logging.getLogger(__name__)

_DISCONNECT_TIMEOUT_S = 5.0
_REGISTRY_CHECK_S = 5.0


class RegistryFilter:
    """``accept`` for the central: serve only nodes of the registry, as it is now.

    Adverts come many times a second; the registry's ids are hashed again at most every
    few seconds, so a node added to the file is served without a restart.
    """

    def __init__(self, registry: Registry, clock: Callable[[], float] = time.monotonic) -> None:
        self._registry = registry
        self._clock = clock
        self._hashes: frozenset[bytes] = frozenset()
        self._checked: float | None = None

    def __call__(self, advert_hash: bytes) -> bool:
        now = self._clock()
        if self._checked is None or now - self._checked >= _REGISTRY_CHECK_S:
            self._hashes = frozenset(id_hash(node_id) for node_id in self._registry.nodes)
            self._checked = now
        return advert_hash in self._hashes


class BleNodeLink(Link):
    """One connection to one node, as the gateway's ingest sees any link."""

    def __init__(self, client: BleakClient, address: str, clock: Callable[[], float]) -> None:
        self.name = f"ble:{address}"
        self.node_id = None
        self._client = client
        self._clock = clock
        self._reassembler = Reassembler()
        self._frames: list[Frame] = []
        self._arrived = asyncio.Event()
        self._activity = asyncio.Event()
        self._lost = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._counter = 0
        self._open = False
        self.received = 0

    @property
    def is_open(self) -> bool:
        return self._open and self._client.is_connected

    @property
    def frame_errors(self) -> dict[str, int]:
        return self._reassembler.errors

    async def start(self) -> None:
        """Subscribe to the node's frames, then tell it to go (its first write on this connection)."""
        await self._client.start_notify(TX_UUID, self._on_notify)
        self._open = True
        self._changed()
        await self._write(GO)

    def _on_notify(self, _char: Any, data: bytearray) -> None:
        frame = self._reassembler.feed(bytes(data))
        self._activity.set()
        if frame is not None:
            self._frames.append(frame)
            self.received += 1
            self._arrived.set()

    def lost(self) -> None:
        self._open = False
        self._lost.set()
        self._arrived.set()
        self._changed()

    async def receive(self) -> list[Frame]:
        while not self._frames:
            self._arrived.clear()
            await self._arrived.wait()
            if self._lost.is_set() and not self._frames:
                raise LinkError(f"{self.name}: connection lost")
        frames, self._frames = self._frames, []
        return frames

    async def send(self, ftype: int, body: bytes) -> None:
        if not self.is_open:
            raise LinkError(f"{self.name}: not connected")
        async with self._send_lock:
            for frag in fragments(bytes((ftype,)) + body, self._client.mtu_size - 3, self._counter):
                await self._write(frag)

    async def _write(self, fragment: bytes) -> None:
        try:
            await self._client.write_gatt_char(RX_UUID, fragment, response=True)
        except (BleakError, TimeoutError, OSError) as exc:
            raise LinkError(f"{self.name}: write failed: {exc}") from exc
        self._counter = (self._counter + 1) & 0x3F
        self._activity.set()

    async def until_done(self, idle_s: float, max_s: float) -> str:
        """Wait until the node goes quiet ("idle"), the session is long enough ("max") or it is "lost"."""
        async def quiet() -> None:
            while True:
                self._activity.clear()
                try:
                    async with asyncio.timeout(idle_s):
                        await self._activity.wait()
                except TimeoutError:
                    return

        waits = {asyncio.ensure_future(quiet()): "idle", asyncio.ensure_future(self._lost.wait()): "lost"}
        try:
            done, _ = await asyncio.wait(waits, timeout=max_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if not done:
            return "max"
        return "lost" if self._lost.is_set() else "idle"

    def close(self) -> None:
        if self._open:
            self._open = False
            self._changed()


@dataclass
class _Node:
    """What the central knows of one node in range (by BLE address)."""

    address: str
    device: BLEDevice
    backlog: int = 0
    rssi: int = -127
    seen_at: float = 0.0
    served_at: float | None = None
    next_try: float = 0.0
    retry_in: float = 0.0  # the delay chosen after the last failed connect
    busy: bool = False
    backoff: Backoff = field(default_factory=Backoff)


@dataclass
class CentralStats:
    """What the central did since it started (logs, tests, ``gonggi bench ble``)."""

    sessions: int = 0
    connect_failures: int = 0
    lost: int = 0
    scan_restarts: int = 0
    frames: int = 0


class BleCentral:
    """Scan, schedule and serve nodes over ``settings.slots`` connections; see the module docstring."""

    def __init__(self, settings: BleConfig, on_link: Callable[[Link], Awaitable[None]], *,
                 accept: Callable[[bytes], bool] | None = None,
                 scanner_backend: type[BaseBleakScanner] | None = None,
                 client_backend: type[BaseBleakClient] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``accept(id_hash)``: whether to serve a node whose advert carries ``id_hash`` (the first
        4 bytes of SHA-256 of its id); None serves every gonggi node."""
        self.settings = settings
        self._on_link = on_link
        self._accept = accept
        self._scanner_backend = scanner_backend
        self._client_backend = client_backend
        self._clock = clock
        self.nodes: dict[str, _Node] = {}
        self.links: dict[str, BleNodeLink] = {}
        self.stats = CentralStats()
        self._last_advert = 0.0
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._main: asyncio.Task[None] | None = None

    def _bluez(self) -> dict[str, Any]:
        return {"bluez": {"adapter": self.settings.adapter}} if self.settings.adapter else {}

    async def __aenter__(self) -> Self:
        self._main = asyncio.create_task(self.run(), name="ble central")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._main is not None:
            self._main.cancel()
            await asyncio.gather(self._main, return_exceptions=True)

    async def run(self) -> None:
        """Scan, connect and serve until cancelled; the open connections are closed then."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._scan_forever(), name="ble scan")
                group.create_task(self._schedule_forever(), name="ble schedule")
        finally:
            sessions = list(self._tasks)
            for t in sessions:
                t.cancel()
            await asyncio.gather(*sessions, return_exceptions=True)

    # -- scanning ---------------------------------------------------------------------------

    async def _scan_forever(self) -> None:
        s = self.settings
        backoff = Backoff(initial=s.retry_initial_s, maximum=s.retry_max_s)
        while True:
            scanner = BleakScanner(self._on_advert, [SERVICE_UUID], backend=self._scanner_backend, **self._bluez())
            try:
                await scanner.start()
            except (BleakError, OSError) as exc:
                log.warning("ble scan cannot start adapter=%s: %s; retrying", s.adapter or "default", exc)
                await backoff.wait()
                continue
            backoff.reset()
            self._last_advert = self._clock()
            try:
                while True:
                    await asyncio.sleep(s.scan_watchdog_s / 4)
                    if self.nodes and self._clock() - self._last_advert > s.scan_watchdog_s:
                        log.warning("ble scan stalled: no advert for %.0f s; restarting it", s.scan_watchdog_s)
                        self.stats.scan_restarts += 1
                        break
            finally:
                with contextlib.suppress(BleakError, OSError, TimeoutError):
                    await asyncio.wait_for(scanner.stop(), _DISCONNECT_TIMEOUT_S)

    def _on_advert(self, device: BLEDevice, adv: AdvertisementData) -> None:
        info = parse_advert(adv.manufacturer_data)
        if info is None or (self._accept is not None and not self._accept(info.id_hash)):
            return
        now = self._clock()
        self._last_advert = now
        node = self.nodes.get(device.address)
        if node is None:
            node = self.nodes[device.address] = _Node(
                device.address, device, backoff=Backoff(self.settings.retry_initial_s, self.settings.retry_max_s))
        node.device, node.backlog, node.rssi, node.seen_at = device, info.backlog, adv.rssi, now
        if not node.busy and self._eligible(node, now):
            self._wake.set()

    # -- scheduling -------------------------------------------------------------------------

    def _eligible(self, node: _Node, now: float) -> bool:
        if node.busy or node.next_try > now:
            return False
        return node.backlog > 0 or node.served_at is None or now - node.served_at >= self.settings.revisit_s

    def _pick(self, now: float) -> list[_Node]:
        free = self.settings.slots - sum(1 for n in self.nodes.values() if n.busy)
        ready = [n for n in self.nodes.values() if self._eligible(n, now)]
        ready.sort(key=lambda n: (-n.backlog, n.served_at if n.served_at is not None else float("-inf")))
        return ready[:max(0, free)]

    async def _schedule_forever(self) -> None:
        while True:
            now = self._clock()
            for node in self._pick(now):
                node.busy = True
                task = asyncio.create_task(self._serve(node), name=f"ble {node.address}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            self._wake.clear()
            waits = [n.next_try - now for n in self.nodes.values() if not n.busy and n.next_try > now]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(waits, default=self.settings.idle_s)):
                    await self._wake.wait()

    def _retry_later(self, node: _Node, exc: BaseException) -> None:
        self.stats.connect_failures += 1
        if isinstance(exc, BleakError) and "InProgress" in str(exc):
            delay = self.settings.retry_initial_s
        else:
            delay = node.backoff.next_delay()
        node.retry_in = delay
        node.next_try = self._clock() + delay
        log.info("ble connect failed node=%s: %s; retry in %.1f s", node.address, exc or type(exc).__name__, delay)

    async def _serve(self, node: _Node) -> None:
        s = self.settings
        link: BleNodeLink | None = None
        client = BleakClient(node.device, lambda _c: link.lost() if link is not None else None,
                             timeout=s.connect_timeout_s, backend=self._client_backend, **self._bluez())
        served: asyncio.Task[None] | None = None
        try:
            try:
                await asyncio.wait_for(client.connect(), s.connect_timeout_s + 1.0)
                link = BleNodeLink(client, node.address, self._clock)
                await link.start()
            except (BleakError, TimeoutError, OSError, LinkError) as exc:
                self._retry_later(node, exc)
                return
            self.stats.sessions += 1
            self.links[node.address] = link
            served = asyncio.create_task(self._on_link(link), name=f"ingest {link.name}")
            why = await link.until_done(s.idle_s, s.max_session_s)
            node.backoff.reset()
            node.served_at = self._clock()
            if why == "lost":
                self.stats.lost += 1
                node.next_try = self._clock() + node.backoff.next_delay()
            elif why == "idle":
                node.backlog = 0  # drained; its next advert says what it has since
            log.debug("ble session node=%s ended (%s) frames=%d", node.address, why, link.received)
        finally:
            if served is not None:
                served.cancel()
                await asyncio.gather(served, return_exceptions=True)
            if link is not None:
                self.stats.frames += link.received
                link.close()
                self.links.pop(node.address, None)
            with contextlib.suppress(BleakError, OSError, TimeoutError):
                await asyncio.wait_for(client.disconnect(), _DISCONNECT_TIMEOUT_S)
            node.busy = False
            self._wake.set()
