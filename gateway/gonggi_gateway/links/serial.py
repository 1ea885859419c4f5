"""A node on a serial port: ``/dev/ttyUSB0``, a ``/dev/serial/by-id/...`` path, or an emulated board's pty.

pyserial opens and configures the port (raw mode, baud rate, exclusive lock); reads and writes
then go straight to its non-blocking file descriptor from the event loop (``add_reader`` /
``add_writer``), so a slow or silent node never blocks the gateway. When the port fails
(cable unplugged: EIO or end of file; port gone: ENOENT on reopen) the link logs once, closes
it, and reopens it with backoff until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from types import TracebackType
from typing import Self

import serial

from gonggi_gateway.config import SerialConfig
from gonggi_gateway.errors import LinkError
from gonggi_gateway.links.base import Link
from gonggi_gateway.protocol import Frame, FrameDecoder, encode_frame
from gonggi_gateway.retry import Backoff

__all__ = ["SerialLink"]

log = logging.getLogger(__name__)

_READ_CHUNK = 4096
MAX_QUEUED_FRAMES = 1024  # received, not yet taken by ingest; beyond this the oldest are dropped
MAX_TX_BUFFER = 16384  # bytes the node has not read yet; beyond this sends fail


class SerialLink(Link):
    def __init__(self, config: SerialConfig, *, backoff: Backoff | None = None) -> None:
        self.config = config
        self.name = f"serial:{config.port}"
        self.node_id = None
        self._backoff = backoff or Backoff(initial=0.5, maximum=10.0)
        self._errors = FrameDecoder().errors  # one tally across reopenings
        self._errors["overrun"] = 0
        self._decoder = FrameDecoder(errors=self._errors)
        self._port: serial.SerialBase | None = None
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._frames: list[Frame] = []
        self._arrived = asyncio.Event()
        self._lost: asyncio.Future[BaseException] | None = None
        self._out = bytearray()
        self._task: asyncio.Task[None] | None = None
        self._down_logged = False

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._keep_open(), name=self.name)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._close()

    @property
    def is_open(self) -> bool:
        return self._port is not None

    @property
    def frame_errors(self) -> dict[str, int]:
        return self._errors

    async def _keep_open(self) -> None:
        assert self._loop is not None
        while True:
            try:
                self._open()
            except LinkError as exc:
                self._report_down(exc)
                await self._backoff.wait()
                continue
            log.info("serial link %s port=%s baudrate=%d", "back" if self._down_logged else "open",
                     self.config.port, self.config.baudrate)
            self._down_logged = False
            self._backoff.reset()
            self._lost = self._loop.create_future()
            try:
                reason = await self._lost
            finally:
                self._close()
            self._report_down(reason)
            await self._backoff.wait()

    def _report_down(self, exc: BaseException) -> None:
        # Once per outage at WARNING: a port that stays unplugged must not flood the log.
        level = logging.DEBUG if self._down_logged else logging.WARNING
        log.log(level, "serial link down port=%s error=%s; reopening with backoff", self.config.port, exc)
        self._down_logged = True

    def _open(self) -> None:
        assert self._loop is not None
        try:
            port = serial.serial_for_url(self.config.port, baudrate=self.config.baudrate, timeout=0,
                                         exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"{self.config.port}: cannot open: {exc}") from exc
        try:
            fd = port.fileno()
        except (AttributeError, serial.SerialException, OSError) as exc:
            port.close()
            raise LinkError(f"{self.config.port}: has no file descriptor to poll") from exc
        self._port, self._fd = port, fd
        self._decoder = FrameDecoder(errors=self._errors)
        self.node_id = None  # another node may have been plugged in
        self._loop.add_reader(fd, self._on_readable)
        self._changed()

    def _close(self) -> None:
        if self._port is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()
        self._port, self._fd = None, -1
        self._out.clear()
        self._changed()

    def _fail(self, exc: BaseException) -> None:
        assert self._loop is not None
        # Stop polling at once: a dead tty stays readable and would spin the loop.
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(exc)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, _READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(exc)
            return
        if not data:
            self._fail(LinkError("end of file (device gone)"))
            return
        frames = self._decoder.feed(data)
        if frames:
            self._frames.extend(frames)
            excess = len(self._frames) - MAX_QUEUED_FRAMES
            if excess > 0:
                self._errors["overrun"] += excess
                del self._frames[:excess]
            self._arrived.set()

    async def receive(self) -> list[Frame]:
        while not self._frames:
            self._arrived.clear()
            await self._arrived.wait()
        frames, self._frames = self._frames, []
        return frames

    async def send(self, ftype: int, body: bytes) -> None:
        if self._port is None:
            raise LinkError(f"{self.name}: port is not open")
        data = encode_frame(ftype, body)
        if self._out:
            if len(self._out) + len(data) > MAX_TX_BUFFER:
                raise LinkError(f"{self.name}: node is not reading ({len(self._out)} bytes waiting)")
            self._out += data
            return
        try:
            written = os.write(self._fd, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            self._fail(exc)
            raise LinkError(f"{self.name}: write failed: {exc}") from exc
        if written < len(data):
            self._out += data[written:]
            assert self._loop is not None
            self._loop.add_writer(self._fd, self._on_writable)

    def _on_writable(self) -> None:
        try:
            written = os.write(self._fd, self._out)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(exc)
            return
        del self._out[:written]
        if not self._out:
            assert self._loop is not None
            self._loop.remove_writer(self._fd)
