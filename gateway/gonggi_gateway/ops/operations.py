"""Everything an operator watches, around a gateway that is up: health checks feeding the systemd
watchdog, ``/metrics``, ``/healthz``, the status page, and the registry reload on SIGHUP.

::

    async with Gateway(config) as gateway, Operations(gateway) as ops:
        await gateway.run()  # READY=1 was sent when Operations was entered
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from gonggi_gateway.errors import GatewayError
from gonggi_gateway.ops.health import HealthMonitor, HealthReport
from gonggi_gateway.ops.history import History
from gonggi_gateway.ops.history_store import HISTORY_FILE, HistoryStore
from gonggi_gateway.ops.http_server import HttpServer
from gonggi_gateway.ops.metrics import SnapshotCollector
from gonggi_gateway.ops.sdnotify import Notifier
from gonggi_gateway.ops.status_page import status_document

if TYPE_CHECKING:
    from gonggi_gateway.service import Gateway

__all__ = ["Operations"]

log = logging.getLogger(__name__)


def status_line(report: HealthReport, nodes: int, spool_depth: int) -> str:
    """The one line ``systemctl status`` shows."""
    if report.healthy:
        return f"healthy: {nodes} nodes, spool {spool_depth} packets"
    return ("degraded: " if report.alive else "stalled: ") + "; ".join(report.problems())


class Operations:
    """Enter it after the gateway (links and spool up): it checks health once, starts serving
    HTTP, and tells systemd READY=1. From then on every check that finds the gateway alive pings
    the watchdog. See docs/operations.md."""

    def __init__(self, gateway: Gateway, *, notifier: Notifier | None = None) -> None:
        self.gateway = gateway
        self.config = gateway.config
        self.notifier = notifier if notifier is not None else Notifier.from_environment()
        self.history = History(store=HistoryStore(self.config.gateway.spool.with_name(HISTORY_FILE)))
        self.monitor = HealthMonitor(gateway, self.config.health, on_report=self._reported)
        self.http: HttpServer | None = None
        self._collector = SnapshotCollector(gateway.snapshot, lambda: self.monitor.report)
        self._tasks: list[asyncio.Task[None]] = []
        self._stack = AsyncExitStack()
        self._status = ""
        self._healthy: bool | None = None

    @property
    def check_interval(self) -> float:
        """Seconds between health checks: the configured interval, and often enough that a healthy
        gateway pings the watchdog at least twice per ``WatchdogSec``."""
        interval = self.config.health.interval
        watchdog = self.notifier.watchdog_interval
        return interval if watchdog is None else min(interval, watchdog / 3)

    async def __aenter__(self) -> Self:
        watchdog = self.notifier.watchdog_interval
        if watchdog is not None and self.check_interval + self.config.health.stall_after >= watchdog:
            log.warning("health stall_after=%g s plus the check interval reaches WatchdogSec=%g s: a slow "
                        "spool probe alone would get the gateway restarted", self.config.health.stall_after, watchdog)
        self.gateway.metrics.registry.register(self._collector)
        async with AsyncExitStack() as stack:
            stack.callback(self.gateway.metrics.registry.unregister, self._collector)
            await stack.enter_async_context(self.history)  # the stored sparklines, before the page is up
            http = self.config.http
            if http.enabled:
                try:
                    self.http = await stack.enter_async_context(HttpServer(self, http.host, http.port))
                except GatewayError as exc:  # collecting data matters more than showing it
                    log.error("%s; carrying on without /metrics, /healthz and the status page", exc)
            await self.monitor.check()
            self._tasks = [
                asyncio.create_task(self.monitor.run(self.check_interval), name="health checks"),
                asyncio.create_task(self.history.follow(self.gateway.wait_until), name="status history"),
            ]
            self._stack = stack.pop_all()
        self.notifier.ready(self._status)  # set by the first check
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stack.aclose()
        self.notifier.close()

    def _reported(self, report: HealthReport) -> None:
        if report.alive:
            self.notifier.watchdog()
        if report.healthy != self._healthy:
            if report.healthy:
                log.info("health ok")
            else:
                log.warning("health problem: %s", "; ".join(report.problems()))
            self._healthy = report.healthy
        snap = self.gateway.snapshot()
        status = status_line(report, len(snap.nodes), snap.spool_depth)
        if status != self._status:
            self._status = status
            self.notifier.status(status)

    def stopping(self) -> None:
        """Tell systemd the gateway is shutting down (before the links and the spool close)."""
        self.notifier.stopping("stopping: closing links, finishing the commit in flight")

    def reload(self) -> None:
        """SIGHUP: read the node registry again now."""
        self.gateway.registry.reload()

    # OpsView, for the HTTP endpoint
    def metrics(self) -> bytes:
        return self.gateway.metrics.render()

    def health(self) -> HealthReport | None:
        return self.monitor.report

    def status(self) -> dict[str, Any]:
        return status_document(self.gateway.snapshot(), self.history, self.monitor.report)
