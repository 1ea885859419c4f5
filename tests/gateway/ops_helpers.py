"""Helpers for the operations tests: a gateway with HTTP on a free port, systemd's notify socket,
a Prometheus text parser, and a gateway that runs for the duration of a block."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from gateway_helpers import KEY, NODE, write_registry
from gonggi_gateway.config import Config, load_config
from gonggi_gateway.service import Gateway

HEALTH = "[health]\ninterval = 0.05\nstall_after = 0.5\nuplink_down_after = 600\n"


def ops_config(tmp_path: Path, extra: str = "", *, health: str = HEALTH) -> Config:
    """A gateway with the local archive, HTTP on a free port, quick health checks."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_registry(tmp_path / "nodes.toml", {NODE: KEY})
    path = tmp_path / "gateway.toml"
    path.write_text(f'[gateway]\nid = "gw-ops"\n\n[http]\nlisten = "127.0.0.1:0"\n\n{health}\n{extra}')
    return load_config(path)


@contextlib.asynccontextmanager
async def running(gateway: Gateway) -> AsyncIterator[Gateway]:
    task = asyncio.create_task(gateway.run())
    try:
        yield gateway
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def fetch(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text -> {(sample name, labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return metrics[(name, frozenset(labels.items()))]


class NotifySocket:
    """systemd's end of sd_notify: a datagram socket the gateway sends READY=1 etc. to."""

    def __init__(self, address: str | Path) -> None:
        self.address = str(address)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + self.address[1:].encode() if self.address.startswith("@") else self.address)
        self.sock.setblocking(False)

    def close(self) -> None:
        self.sock.close()

    async def receive(self) -> dict[str, str]:
        """The next message, as its fields."""
        data = await asyncio.get_running_loop().sock_recv(self.sock, 4096)
        return dict(line.split("=", 1) for line in data.decode().splitlines())

    async def until(self, field: str, value: str | None = None) -> dict[str, Any]:
        """Receive until a message has ``field`` (with ``value``, if given)."""
        while True:
            message = await self.receive()
            if field in message and (value is None or message[field] == value):
                return message

    def drain(self) -> list[dict[str, str]]:
        """Every message already received, without waiting."""
        out: list[dict[str, str]] = []
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return out
            out.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
