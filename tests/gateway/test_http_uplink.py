"""The HTTP uplink against a real aiohttp server the test runs: batched SenML JSON, retries on
5xx/429/connection errors, dead letters on a 4xx, and a server that is down then up."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from gonggi_gateway.config import Batching, HttpUplinkConfig
from gonggi_gateway.errors import UplinkError, UplinkRejected
from gonggi_gateway.retry import Backoff
from gonggi_gateway.spool import NewPacket, Spool, SpooledPacket
from gonggi_gateway.state import Pulse
from gonggi_gateway.uplinks import Drainer
from gonggi_gateway.uplinks.http import CONTENT_TYPE, HttpUplink, _retry_after


def packet(node: str, seq: int) -> NewPacket:
    records = [{"bn": f"urn:dev:gonggi:{node}:", "n": "bat.v", "u": "V", "v": 3.9, "t": 1764000000 + seq},
               {"n": "bat.n", "v": 12, "t": 1764000000 + seq}]
    return NewPacket(node, 1, seq, 1764000000.0 + seq, b"cose", json.dumps(records, separators=(",", ":")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Endpoint:
    """An HTTP server on 127.0.0.1: answers each POST with the next scripted status, then 200."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.script: list[tuple[int, str, dict[str, str]]] = []
        self.requests: list[tuple[int, str, str, bytes]] = []  # status given, content type, authorization, body
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ingest"

    async def _post(self, request: web.Request) -> web.Response:
        status, text, headers = self.script.pop(0) if self.script else (200, "ok", {})
        self.requests.append((status, request.content_type, request.headers.get("Authorization", ""),
                              await request.read()))
        self.arrived.set()
        return web.Response(status=status, text=text, headers=headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/ingest", self._post)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_requests(self, count: int) -> None:
        while len(self.requests) < count:
            self.arrived.clear()
            await self.arrived.wait()


Body = Callable[[Endpoint, Spool, Drainer, Pulse], Awaitable[None]]


def run(tmp_path: Path, body: Body, *, start: bool = True, **config: object) -> None:
    async def main() -> None:
        endpoint = Endpoint(free_port())
        if start:
            await endpoint.start()
        cfg = HttpUplinkConfig(url=endpoint.url, batch=Batching(size=4), **config)  # type: ignore[arg-type]
        try:
            async with Spool(tmp_path / "spool.sqlite", ["http"]) as spool, HttpUplink(cfg, "gw-test") as uplink:
                progress = Pulse()
                drainer = Drainer(spool, uplink, batching=uplink.batching, backoff=Backoff(0.01, 0.05),
                                  on_change=progress.fire)
                task = asyncio.create_task(drainer.run())
                try:
                    await asyncio.wait_for(body(endpoint, spool, drainer, progress), 20)
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
        finally:
            await endpoint.stop()

    asyncio.run(main())


async def drained(spool: Spool, progress: Pulse) -> None:
    while spool.depth():
        await progress.wait()


def test_batches_arrive_as_one_senml_pack_each(tmp_path: Path) -> None:
    async def body(endpoint: Endpoint, spool: Spool, drainer: Drainer, progress: Pulse) -> None:
        await spool.commit([packet(node, seq) for seq in range(3) for node in ("n1", "n2")])
        await drained(spool, progress)
        assert [len(json.loads(b)) for _, _, _, b in endpoint.requests] == [8, 4]  # 4 packets, then 2
        status, content_type, auth, first = endpoint.requests[0]
        assert (status, content_type, auth) == (200, CONTENT_TYPE, "Bearer s3cret")
        pack = json.loads(first)
        # Each packet's first record names its node: the pack resolves as the packets do.
        assert pack[:4] == [
            {"bn": "urn:dev:gonggi:n1:", "n": "bat.v", "u": "V", "v": 3.9, "t": 1764000000},
            {"n": "bat.n", "v": 12, "t": 1764000000},
            {"bn": "urn:dev:gonggi:n2:", "n": "bat.v", "u": "V", "v": 3.9, "t": 1764000000},
            {"n": "bat.n", "v": 12, "t": 1764000000},
        ]
        assert drainer.status().delivered == 6

    run(tmp_path, body, bearer_token="s3cret")


def test_a_server_error_is_retried_with_the_same_batch(tmp_path: Path) -> None:
    async def body(endpoint: Endpoint, spool: Spool, drainer: Drainer, progress: Pulse) -> None:
        endpoint.script = [(500, "db down", {}), (503, "busy", {"Retry-After": "0"}), (429, "slow down", {})]
        await spool.commit([packet("n1", seq) for seq in range(3)])
        await drained(spool, progress)
        assert [s for s, _, _, _ in endpoint.requests] == [500, 503, 429, 200]
        assert len({b for _, _, _, b in endpoint.requests}) == 1  # byte for byte the same batch
        assert drainer.status().failures == 3 and not await spool.dead_letters()
        assert {auth for _, _, auth, _ in endpoint.requests} == {"Basic Z3c6cHc="}  # gw:pw

    run(tmp_path, body, username="gw", password="pw")


def test_a_client_error_moves_the_batch_to_the_dead_letters_with_the_answer(tmp_path: Path) -> None:
    async def body(endpoint: Endpoint, spool: Spool, drainer: Drainer, progress: Pulse) -> None:
        endpoint.script = [(400, "unknown unit 'V'", {})]
        await spool.commit([packet("n1", seq) for seq in range(6)])
        await drained(spool, progress)
        assert [s for s, _, _, _ in endpoint.requests] == [400, 200]  # not sent again; the rest goes on
        letters = await spool.dead_letters("http")
        assert [d.seq for d in letters] == [0, 1, 2, 3]
        assert letters[0].reason == f"POST {endpoint.url}: HTTP 400: \"unknown unit 'V'\""
        assert drainer.status().rejected == 4 and drainer.status().delivered == 2

    run(tmp_path, body)


def test_a_wrong_endpoint_or_credentials_keep_the_rows_and_retry(tmp_path: Path) -> None:
    async def body(endpoint: Endpoint, spool: Spool, drainer: Drainer, progress: Pulse) -> None:
        endpoint.script = [(401, "who are you", {}), (404, "no such path", {})]
        await spool.commit([packet("n1", 0)])
        await drained(spool, progress)
        assert [s for s, _, _, _ in endpoint.requests] == [401, 404, 200]
        assert not await spool.dead_letters()

    run(tmp_path, body)


def test_a_server_that_is_down_gets_everything_once_it_is_up(tmp_path: Path) -> None:
    async def body(endpoint: Endpoint, spool: Spool, drainer: Drainer, progress: Pulse) -> None:
        await spool.commit([packet("n1", seq) for seq in range(5)])
        while drainer.status().failures < 2:  # connection refused, retried with backoff
            await progress.wait()
        assert spool.depth() == 5 and "ClientConnectorError" in (drainer.status().last_error or "")
        await endpoint.start()
        await drained(spool, progress)
        seqs = [r["t"] - 1764000000 for _, _, _, b in endpoint.requests for r in json.loads(b) if "bn" in r]
        assert seqs == [0, 1, 2, 3, 4] and drainer.status().last_error is None

    run(tmp_path, body, start=False)


def test_what_each_answer_means() -> None:
    batch = [SpooledPacket(1, *packet("n1", 0)[:6])]

    async def main() -> None:
        endpoint = Endpoint(free_port())
        await endpoint.start()
        try:
            async with HttpUplink(HttpUplinkConfig(url=endpoint.url), "gw") as uplink:
                for status, kind in ((200, None), (204, None), (408, UplinkError), (429, UplinkError),
                                     (502, UplinkError), (403, UplinkError), (413, UplinkRejected),
                                     (422, UplinkRejected), (301, UplinkRejected)):
                    endpoint.script = [(status, "x", {"Retry-After": "12"})]
                    try:
                        await uplink.send(batch)
                        got: type[Exception] | None = None
                    except UplinkError as exc:
                        got = type(exc)
                        assert exc.retry_after == (None if kind is UplinkRejected else 12.0), status
                    assert got is kind, status
        finally:
            await endpoint.stop()

    asyncio.run(main())
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert _retry_after("soon", now=0.0) is None and _retry_after(None, now=0.0) is None
    assert _retry_after("99999", now=0.0) == 3600.0
