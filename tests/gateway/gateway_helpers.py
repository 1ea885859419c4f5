"""Helpers for gateway tests: nodes that build real packets, a registry on disk, an in-memory link."""

from __future__ import annotations

import asyncio
import os
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gonggi_gateway.errors import LinkError
from gonggi_gateway.links.base import Link
from gonggi_gateway.protocol import (
    Control,
    Frame,
    FrameDecoder,
    FrameType,
    Hello,
    decode_control,
    encode_frame,
    encode_hello,
    encode_pack,
    mac0_encode,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(100, 132))
NODE = "gg-test01"
T0 = 1_764_000_000.0  # a fixed "now" for the gateway's clock


@dataclass
class SimNode:
    """Builds what a node sends: DATA and HELLO frame bodies with its key, boot and seq."""

    node_id: str = NODE
    key: bytes = KEY
    boot: int = 1
    uptime_ms: int = 100_000

    def data(self, seq: int, *, boot: int | None = None, bt: int = 1_764_000_000,
             readings: list[tuple[str, str, float]] | None = None, key: bytes | None = None) -> bytes:
        payload = encode_pack(bt, readings or [("bat.v", "V", 3.9 + seq / 1000), ("bat.n", "", 12)])
        cose = mac0_encode(key or self.key, self.node_id.encode(), self.boot if boot is None else boot, seq, payload)
        return self.uptime_ms.to_bytes(4, "big") + cose

    def data_frame(self, seq: int, **kw: object) -> Frame:
        return Frame(FrameType.DATA, self.data(seq, **kw))  # type: ignore[arg-type]

    def hello_frame(self, *, boot: int | None = None, backlog: int = 0) -> Frame:
        hello = Hello(self.node_id, self.boot if boot is None else boot, "0.1.0", backlog, self.uptime_ms, 0, False, 0)
        return Frame(FrameType.HELLO, encode_hello(self.key, hello))


def write_registry(path: Path, nodes: dict[str, bytes]) -> Path:
    lines = []
    for node_id, key in nodes.items():
        lines += [f'[nodes."{node_id}"]', f'key = "{key.hex()}"', f'name = "{node_id} name"', 'location = "lab"', ""]
    path.write_text("\n".join(lines))
    return path


@dataclass
class MemoryLink(Link):
    """A Link whose frames the test hands in and whose sent frames the test reads."""

    name: str = "memory:0"
    sent: list[Frame] = field(default_factory=list)
    node_id: str | None = None
    up: bool = True
    _inbox: asyncio.Queue[list[Frame]] = field(default_factory=asyncio.Queue)

    def deliver(self, *frames: Frame) -> None:
        self._inbox.put_nowait(list(frames))

    def end(self) -> None:
        """The connection is over for good (as a BLE link's can be)."""
        self._inbox.put_nowait([])

    async def receive(self) -> list[Frame]:
        frames = await self._inbox.get()
        if not frames:
            raise LinkError(f"{self.name}: ended")
        return frames

    async def send(self, ftype: int, body: bytes) -> None:
        if not self.up:
            raise LinkError(f"{self.name}: down")
        self.sent.append(Frame(ftype, body))

    @property
    def is_open(self) -> bool:
        return self.up

    @property
    def frame_errors(self) -> dict[str, int]:
        return {}

    def controls(self, key: bytes = KEY) -> list[Control]:
        return [decode_control(f.body, key) for f in self.sent if f.type == FrameType.CONTROL]


class PtyNode:
    """A node at the far end of a pty, as an emulated board's data UART is.

    The gateway opens ``path``, a symlink to the pty's slave side, as udev's /dev/serial/by-id
    links point at a USB adapter: ``unplug()`` makes it vanish (EIO for whoever has it open,
    then no such file), ``plug()`` brings a new pty back under the same name.
    """

    def __init__(self, path: Path, sim: SimNode | None = None) -> None:
        self.path = path
        self.sim = sim or SimNode()
        self.received: list[Frame] = []  # what the gateway sent
        self._master = self._slave = -1
        self._decoder = FrameDecoder()
        self._arrived = asyncio.Event()

    def plug(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo of what the node writes before the gateway opens the port
        os.set_blocking(self._master, False)
        os.symlink(os.ttyname(self._slave), self.path)
        self.start_reading()

    def stop_reading(self) -> None:
        """A hung node: what the gateway sends piles up in the pty."""
        asyncio.get_running_loop().remove_reader(self._master)

    def start_reading(self) -> None:
        asyncio.get_running_loop().add_reader(self._master, self._on_readable)

    def unplug(self) -> None:
        asyncio.get_running_loop().remove_reader(self._master)
        self.path.unlink()
        os.close(self._master)
        os.close(self._slave)
        self._master = self._slave = -1

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except OSError:  # EAGAIN, or EIO while nobody has the slave open
            return
        self.received += self._decoder.feed(data)
        self._arrived.set()

    def write_raw(self, data: bytes) -> None:
        try:
            os.write(self._master, data)
        except BlockingIOError:
            pass  # the line is full: lost, as on a UART; the node's retransmission covers it

    def write(self, frame: Frame) -> None:
        self.write_raw(encode_frame(frame.type, frame.body))

    @property
    def controls(self) -> list[Control]:
        return [decode_control(f.body, self.sim.key) for f in self.received if f.type == FrameType.CONTROL]

    def acked(self, boot: int, seq: int) -> bool:
        return any(a.boot == boot and a.first <= seq <= a.last for c in self.controls for a in c.acks)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, re-checked whenever the gateway sent something."""
        while not predicate():
            self._arrived.clear()
            await self._arrived.wait()

    async def send_until(self, frames: list[Frame], done: Callable[[], bool], *, rto: float = 0.3) -> None:
        """Send, and send again every ``rto`` seconds (the node's retransmission timer) until ``done()``."""
        while not done():
            for frame in frames:
                self.write(frame)
            try:
                await asyncio.wait_for(self.wait_for(done), rto)
            except asyncio.TimeoutError:
                pass

    async def send_until_acked(self, frames: list[Frame], seqs: list[int]) -> None:
        await self.send_until(frames, lambda: all(self.acked(self.sim.boot, s) for s in seqs))
