"""The operations endpoint (aiohttp): ``/metrics``, ``/healthz``, ``/api/status`` and the status page ``/``.

Read-only, no authentication: it listens on 127.0.0.1 by default; expose it through a reverse
proxy or a firewall rule, not by listening on 0.0.0.0 on an open network.
"""

from __future__ import annotations

import json
import logging
from types import TracebackType
from typing import Any, Protocol, Self

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gonggi_gateway.errors import GatewayError
from gonggi_gateway.ops.health import HealthReport
from gonggi_gateway.ops.status_page import page

__all__ = ["HttpServer", "OpsView", "health_document", "make_app"]

log = logging.getLogger(__name__)


class OpsView(Protocol):
    """What the endpoint shows (``Operations`` implements it)."""

    def metrics(self) -> bytes: ...

    def health(self) -> HealthReport | None: ...

    def status(self) -> dict[str, Any]: ...


def health_document(report: HealthReport | None) -> tuple[int, dict[str, Any]]:
    """``/healthz``: 200 when every check passes, 503 otherwise (or before the first check)."""
    if report is None:
        return 503, {"status": "starting", "checks": {}}
    checks = {name: {"ok": c.ok, "detail": c.detail} for name, c in report.checks.items()}
    return (200 if report.healthy else 503), {
        "status": "ok" if report.healthy else "unhealthy", "checked_at": report.checked_at, "checks": checks}


def make_app(view: OpsView) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=view.metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        status, body = health_document(view.health())
        return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})

    async def api_status(_: web.Request) -> web.Response:
        return web.json_response(view.status(), dumps=lambda d: json.dumps(d, allow_nan=False),
                                 headers={"Cache-Control": "no-store"})

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=page(), content_type="text/html", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/status", api_status)
    app.router.add_get("/", index)
    return app


class HttpServer:
    """``async with HttpServer(view, host, port) as server:`` serves until the block ends; ``port``
    is the bound one (useful with port 0)."""

    def __init__(self, view: OpsView, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._runner = web.AppRunner(make_app(view), access_log=None)

    async def __aenter__(self) -> Self:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise GatewayError(f"http: cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from exc
        self.port = int(self._runner.addresses[0][1])  # the bound port, when asked for port 0
        log.info("http listening host=%s port=%d: /metrics /healthz /api/status /", self.host, self.port)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._runner.cleanup()
