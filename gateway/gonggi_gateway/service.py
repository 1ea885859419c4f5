"""The gateway service: links -> ingest -> spool -> drainers -> uplinks, as one async context manager.

    async with Gateway(load_config("gateway.toml")) as gateway:
        await gateway.run()  # until cancelled

``serve(config)`` does the same until SIGTERM/SIGINT, then shuts down cleanly: links closed, no
commit cut in half, MQTT disconnected with its ``offline`` status.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Self

from gonggi_gateway.config import BleConfig, Config
from gonggi_gateway.errors import ConfigError
from gonggi_gateway.ingest import Ingest
from gonggi_gateway.links import Link, open_link
from gonggi_gateway.ops.metrics import GatewayMetrics
from gonggi_gateway.registry import Registry
from gonggi_gateway.spool import Spool
from gonggi_gateway.state import NodeState, Pulse, Snapshot
from gonggi_gateway.uplinks import Drainer, Uplink, open_uplinks
from gonggi_gateway.uplinks.archive import ArchiveUplink
from gonggi_gateway.uplinks.ha_discovery import DeviceInfo

if TYPE_CHECKING:
    from bleak.backends.client import BaseBleakClient
    from bleak.backends.scanner import BaseBleakScanner

    from gonggi_gateway.links.ble import BleCentral

__all__ = ["Gateway", "serve"]

log = logging.getLogger(__name__)


class Gateway:
    """One gateway as configured. Enter it to open spool, uplinks and links; ``run()`` to work."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time,
                 ble_backends: tuple[type[BaseBleakScanner], type[BaseBleakClient]] | None = None) -> None:
        """``ble_backends``: bleak backend classes for ``[ble]`` (scanner, client); None is those of
        ``[ble] radio`` if set, else bleak's own (BlueZ on Linux). Tests pass
        ``gonggi_emu.bleak_backend.radio_backends()``."""
        self.config = config
        self._clock = clock
        self._ble_backends = ble_backends or _radio_backends(config)
        self.central: BleCentral | None = None  # with [ble]: serves nodes in range over BLE
        self._pulse = Pulse()
        self.metrics = GatewayMetrics()  # this gateway's own Prometheus registry (/metrics)
        self._stack = AsyncExitStack()
        self.registry: Registry
        self.spool: Spool
        self.uplinks: list[Uplink] = []
        self.links: list[Link] = []  # from the configuration, for the whole run
        self._transient: list[Link] = []  # served for a while (BLE connections), see serve_link
        self.ingest: Ingest
        self.drainers: list[Drainer] = []

    async def __aenter__(self) -> Self:
        cfg = self.config
        async with AsyncExitStack() as stack:
            self.registry = Registry(cfg.gateway.registry, clock=self._clock)
            self.spool = await stack.enter_async_context(
                Spool(cfg.gateway.spool, cfg.uplink_names, synchronous=cfg.gateway.synchronous,
                      commit_window=cfg.gateway.commit_window_ms / 1000, max_bytes=cfg.gateway.spool_max_mb << 20))
            self.uplinks = [await stack.enter_async_context(u) for u in open_uplinks(cfg, describe=self.describe_node)]
            self.links = [await stack.enter_async_context(open_link(spec)) for spec in cfg.links]
            self._stack = stack.pop_all()
        self.ingest = Ingest(self.spool, self.registry, self._pulse, time_interval=cfg.gateway.time_interval,
                             clock=self._clock)
        self.drainers = [Drainer(self.spool, self.metrics.timed(u), batching=u.batching, on_change=self._pulse.fire)
                         for u in self.uplinks]
        for link in self.links:
            link.on_change = self._pulse.fire
        if cfg.ble is not None:
            from gonggi_gateway.links.ble import BleCentral, RegistryFilter  # bleak only when configured

            scanner, client = self._ble_backends or (None, None)
            self.central = BleCentral(cfg.ble, self.serve_link, accept=RegistryFilter(self.registry),
                                      scanner_backend=scanner, client_backend=client)
            if cfg.ble.radio is not None and not cfg.ble.radio.exists():
                log.warning("ble virtual radio %s is not there (yet): the central treats it as an adapter that is "
                            "not ready and retries until it listens", cfg.ble.radio)
        log.info("gateway %s ready: links=%s ble=%s uplinks=%s nodes=%d", cfg.gateway.id,
                 [link.name for link in self.links], _ble_name(cfg.ble),
                 [u.name for u in self.uplinks], len(self.registry.nodes))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._stack.aclose()

    async def run(self) -> None:
        """Serve every link and drain every uplink until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            for link in self.links:
                tasks.create_task(self.ingest.run_link(link), name=f"ingest {link.name}")
            for drainer in self.drainers:
                tasks.create_task(drainer.run(), name=f"drain {drainer.uplink.name}")
            if self.central is not None:
                tasks.create_task(self.central.run(), name="ble central")

    async def serve_link(self, link: Link) -> None:
        """Serve a link that came up at run time (a BLE connection) until it ends or this is
        cancelled: its frames go through ingest like any other's, and it shows in snapshots."""
        link.on_change = self._pulse.fire
        self._transient.append(link)
        self._pulse.fire()
        try:
            await self.ingest.run_link(link)
        finally:
            self._transient.remove(link)
            self._pulse.fire()

    def describe_node(self, node_id: str) -> DeviceInfo | None:
        """A node as Home Assistant discovery shows it: registry name and location, firmware from
        its last HELLO; None once it left the registry (the registry re-reads its file if changed)."""
        info = self.registry.get(node_id)
        if info is None:
            return None
        state = self.ingest.nodes.get(node_id)
        return DeviceInfo(info.name, info.location, state.firmware if state is not None else "")

    @property
    def archive(self) -> ArchiveUplink | None:
        """The local archive, if configured (the live view's history)."""
        return next((u for u in self.uplinks if isinstance(u, ArchiveUplink)), None)

    def snapshot(self) -> Snapshot:
        """What the gateway knows right now: nodes, links, uplinks, rejections, spool depth."""
        known = self.registry.nodes
        nodes = {}
        for node_id in sorted(set(known) | set(self.ingest.nodes)):
            info = known.get(node_id)
            state = self.ingest.nodes.get(node_id) or NodeState(node_id)
            nodes[node_id] = state.status(info.name if info else "", info.location if info else "")
        rejected = dict(self.ingest.rejected)
        links = [*self.links, *self._transient]
        frame_errors = sum(sum(link.frame_errors.values()) for link in links)
        if frame_errors:
            rejected["frame"] = rejected.get("frame", 0) + frame_errors
        return Snapshot(
            gateway_id=self.config.gateway.id,
            taken_at=self._clock(),
            nodes=nodes,
            links=tuple(link.status() for link in links),
            uplinks=tuple(d.status() for d in self.drainers),
            rejected=rejected,
            spool_depth=self.spool.depth(),
            spool=self.spool.stats(),
        )

    async def wait_until(self, predicate: Callable[[Snapshot], bool]) -> Snapshot:
        """Wait until ``predicate(snapshot)`` holds; re-checked whenever something changed."""
        while True:
            changed = asyncio.ensure_future(self._pulse.wait())
            try:
                snap = self.snapshot()
                if predicate(snap):
                    return snap
                await changed
            finally:
                changed.cancel()


def _radio_backends(config: Config) -> tuple[type[BaseBleakScanner], type[BaseBleakClient]] | None:
    """The bleak backends of ``[ble] radio`` (a gonggi virtual radio); None without one."""
    if config.ble is None or config.ble.radio is None:
        return None
    try:
        from gonggi_emu.bleak_backend import radio_backends  # the emulator's code only when configured
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("gonggi_emu"):
            raise
        raise ConfigError(f"{config.source}: [ble] radio: the virtual radio needs gonggi's emulator: install "
                          f"gonggi with the `emu` extra (pip install 'gonggi[emu]')") from exc
    return radio_backends(config.ble.radio)


def _ble_name(ble: BleConfig | None) -> str:
    """How the ready line names the BLE side: off, the adapter, or the virtual radio."""
    if ble is None:
        return "off"
    return f"radio:{ble.radio}" if ble.radio is not None else ble.adapter or "default"


async def serve(config: Config) -> None:
    """Run the gateway until SIGTERM or SIGINT, then shut down cleanly; SIGHUP re-reads the node
    registry. Serves /metrics, /healthz and the status page, and under systemd (Type=notify)
    reports READY, STATUS, WATCHDOG and STOPPING (docs/operations.md)."""
    from gonggi_gateway.ops.operations import Operations  # aiohttp is loaded for the service only

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Gateway(config) as gateway, Operations(gateway) as ops:
            loop.add_signal_handler(signal.SIGHUP, ops.reload)
            runner = asyncio.create_task(gateway.run(), name="gateway")
            stopper = asyncio.create_task(stop.wait(), name="signals")
            await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if runner.done():
                stopper.cancel()
                runner.result()  # a crash of the service itself: let it propagate
                return
            log.info("gateway %s stopping on signal", config.gateway.id)
            ops.stopping()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
    finally:
        for sig in (*signals, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    log.info("gateway %s stopped", config.gateway.id)
