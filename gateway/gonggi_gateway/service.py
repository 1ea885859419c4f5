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
from typing import Self

from gonggi_gateway.config import Config
from gonggi_gateway.ingest import Ingest
from gonggi_gateway.links import Link, open_link
from gonggi_gateway.registry import Registry
from gonggi_gateway.spool import Spool
from gonggi_gateway.state import NodeState, Pulse, Snapshot
from gonggi_gateway.uplinks import Drainer, Uplink, open_uplinks
from gonggi_gateway.uplinks.archive import ArchiveUplink

__all__ = ["Gateway", "serve"]

log = logging.getLogger(__name__)


class Gateway:
    """One gateway as configured. Enter it to open spool, uplinks and links; ``run()`` to work."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._pulse = Pulse()
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
            self.registry = Registry(cfg.gateway.registry)
            self.spool = await stack.enter_async_context(
                Spool(cfg.gateway.spool, cfg.uplink_names, synchronous=cfg.gateway.synchronous))
            self.uplinks = [await stack.enter_async_context(u) for u in open_uplinks(cfg)]
            self.links = [await stack.enter_async_context(open_link(spec)) for spec in cfg.links]
            self._stack = stack.pop_all()
        self.ingest = Ingest(self.spool, self.registry, self._pulse, time_interval=cfg.gateway.time_interval,
                             clock=self._clock)
        self.drainers = [Drainer(self.spool, u, on_change=self._pulse.fire) for u in self.uplinks]
        for link in self.links:
            link.on_change = self._pulse.fire
        log.info("gateway %s ready: links=%s uplinks=%s nodes=%d", cfg.gateway.id,
                 [link.name for link in self.links], [u.name for u in self.uplinks], len(self.registry.nodes))
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


async def serve(config: Config) -> None:
    """Run the gateway until SIGTERM or SIGINT, then shut down cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Gateway(config) as gateway:
            runner = asyncio.create_task(gateway.run(), name="gateway")
            stopper = asyncio.create_task(stop.wait(), name="signals")
            await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if runner.done():
                stopper.cancel()
                runner.result()  # a crash of the service itself: let it propagate
                return
            log.info("gateway %s stopping on signal", config.gateway.id)
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    log.info("gateway %s stopped", config.gateway.id)
