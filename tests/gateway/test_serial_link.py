"""The serial link on a real pty: frames in, CONTROL out, and a port that vanishes and comes back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_helpers import NODE, PtyNode
from gonggi_gateway.config import SerialConfig
from gonggi_gateway.errors import LinkError
from gonggi_gateway.links import open_link
from gonggi_gateway.links.serial import MAX_TX_BUFFER, SerialLink
from gonggi_gateway.protocol import Frame, FrameType, encode_frame
from gonggi_gateway.retry import Backoff


class DownLogs(logging.Handler):
    """Collects the link's 'down' log records and lets a test wait for the n-th one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.levels: list[str] = []
        self.changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "serial link down" in record.getMessage():
            self.levels.append(record.levelname)
            self.changed.set()

    async def wait_for(self, count: int) -> None:
        while len(self.levels) < count:
            self.changed.clear()
            await self.changed.wait()


@pytest.fixture
def down_logs() -> Iterator[DownLogs]:
    logs = DownLogs()
    logger = logging.getLogger("gonggi_gateway.links.serial")
    old_level = logger.level
    logger.addHandler(logs)
    logger.setLevel(logging.DEBUG)
    yield logs
    logger.removeHandler(logs)
    logger.setLevel(old_level)


async def deliver(node: PtyNode, link: SerialLink, frame: Frame) -> None:
    """The node repeats ``frame`` (its retransmission timer) until the link has received it."""
    received: list[Frame] = []
    while frame not in received:
        node.write(frame)
        try:
            received = await asyncio.wait_for(link.receive(), 0.3)
        except asyncio.TimeoutError:
            continue


async def answer(node: PtyNode, link: SerialLink, body: bytes) -> None:
    frame = Frame(FrameType.CONTROL, body)
    await link.send(frame.type, frame.body)
    await node.wait_for(lambda: frame in node.received)


def test_frames_in_control_out_and_line_noise_counted(tmp_path: Path) -> None:
    async def main() -> None:
        node = PtyNode(tmp_path / "ttyNODE")
        node.plug()
        async with open_link(SerialConfig(str(node.path))) as link:
            assert isinstance(link, SerialLink) and link.name == f"serial:{node.path}"
            await deliver(node, link, node.sim.data_frame(0))
            # Line noise and a frame with a bad FCS are dropped and counted; the next frame gets through.
            bad = bytearray(encode_frame(FrameType.DATA, b"x" * 20))
            bad[5] ^= 0x01
            node.write_raw(b"\x01\x02garbage" + bytes(bad))
            node.write(node.sim.data_frame(1))
            assert await asyncio.wait_for(link.receive(), 5) == [node.sim.data_frame(1)]
            assert link.frame_errors["fcs"] == 1 and link.frame_errors["escape"] == 1
            # A node that stops reading: the pty fills up, then the link's buffer, then sends fail
            # instead of blocking the gateway. What was accepted arrives once the node reads again.
            node.stop_reading()
            accepted = []
            with pytest.raises(LinkError, match="node is not reading"):
                for i in range(100):
                    body = bytes([0x30 + i % 64]) * 900
                    await link.send(FrameType.CONTROL, body)
                    accepted.append(body)
            assert len(accepted) * 900 > MAX_TX_BUFFER  # some went to the pty, some to the buffer
            node.start_reading()
            await answer(node, link, b"ack")
            assert [f.body for f in node.received] == [*accepted, b"ack"]
        node.unplug()

    asyncio.run(main())


def test_a_port_that_vanishes_is_reopened_when_it_comes_back(tmp_path: Path, down_logs: DownLogs) -> None:
    async def main() -> None:
        node = PtyNode(tmp_path / "ttyNODE")
        async with SerialLink(SerialConfig(str(node.path)), backoff=Backoff(0.01, 0.05)) as link:
            await down_logs.wait_for(3)  # not there at start: retried, logged once
            assert not link.is_open
            with pytest.raises(LinkError, match="not open"):
                await link.send(FrameType.CONTROL, b"x")
            node.plug()
            await deliver(node, link, node.sim.data_frame(0))
            await answer(node, link, b"ack0")
            link.node_id = NODE  # as ingest does after a valid message
            node.unplug()  # cable pulled: EIO for the open port, then the path is gone
            await down_logs.wait_for(6)
            assert not link.is_open
            node.plug()
            await deliver(node, link, node.sim.data_frame(1))
            assert link.node_id is None  # reopened: whoever is plugged in now must authenticate again
            await answer(node, link, b"ack1")
        node.unplug()
        # Two outages, one WARNING each; the retries in between only at DEBUG.
        assert down_logs.levels.count("WARNING") == 2
        assert down_logs.levels[1:3] == ["DEBUG", "DEBUG"]

    asyncio.run(main())
