"""A real MQTT broker for tests and the demo: Debian's mosquitto on a free localhost port.

    async with Mosquitto(tmp_path) as broker:
        ...  # connect to 127.0.0.1:broker.port
        await broker.stop()   # an outage
        await broker.start()  # back, same port, persisted sessions and queued messages restored

Persistence is on (in the work directory), so a persistent subscriber's session and its queued
QoS 1 messages survive a restart, as with a production broker.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["BrokerError", "Mosquitto", "find_mosquitto"]

_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


class BrokerError(RuntimeError):
    """mosquitto is missing, or did not start."""


def find_mosquitto() -> str:
    for path in (shutil.which("mosquitto"), *_CANDIDATES):
        if path and os.access(path, os.X_OK):
            return path
    raise BrokerError("mosquitto is not installed (Debian/Ubuntu: sudo apt-get install mosquitto)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """One mosquitto process, restartable on the same port."""

    def __init__(self, workdir: str | Path, *, port: int | None = None, start_timeout: float = 10.0) -> None:
        self.executable = find_mosquitto()
        self.workdir = Path(workdir)
        self.port = port or _free_port()
        self.host = "127.0.0.1"
        self.start_timeout = start_timeout
        self.log_path = self.workdir / "mosquitto.log"
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            # As root, mosquitto would drop to user "mosquitto", who cannot write the work dir.
            f"user {getpass.getuser()}\n"
        )
        return conf

    async def start(self) -> None:
        """Start the broker and return once its port accepts connections."""
        if self.running:
            return
        conf = self._write_config()
        with (self.workdir / "mosquitto.stderr").open("ab") as stderr:
            self._proc = await asyncio.create_subprocess_exec(
                self.executable, "-c", str(conf),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
            )
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc.returncode is not None or time.monotonic() > deadline:
                await self._failed()
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                # Poll the port: mosquitto has no readiness notification on a plain listener.
                await asyncio.sleep(0.02)
                continue
            writer.close()
            await writer.wait_closed()
            return

    async def _failed(self) -> None:
        assert self._proc is not None
        if self._proc.returncode is None:
            self._proc.kill()
        await self._proc.wait()
        self._proc = None
        output = "".join(p.read_text(errors="replace") for p in (self.workdir / "mosquitto.stderr", self.log_path)
                         if p.exists())
        raise BrokerError(f"mosquitto did not start on {self.host}:{self.port}:\n{output}")

    async def stop(self) -> None:
        """Stop the broker as an operator would (SIGTERM: it saves its persistence file)."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()
