"""UART plumbing of the emulated board: pacing at the baud rate, line mismatches, buffer limits."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import select
from collections.abc import Callable
from dataclasses import dataclass, field

from gonggi_emu.devices.base import UARTPeer
from gonggi_emu.scenario import Scenario
from gonggi_emu.uart_link import DeviceUart, Pacer, UartConfig, UartLink, misframed

LOG = logging.getLogger("test")


class Talker(UARTPeer):
    """Sends what a test queues; records what it receives and when."""

    kind = "talker"
    baudrate = 9600

    def __init__(self, scenario: Scenario, name: str | None = None) -> None:
        super().__init__(scenario, name)
        self.outbox = bytearray()
        self.heard: list[tuple[bytes, float]] = []
        self.arrived = asyncio.Event()

    def received(self, data: bytes, now: float) -> None:
        self.heard.append((data, now))
        self.arrived.set()

    def transmit(self, now: float) -> bytes:
        out = bytes(self.outbox)
        self.outbox.clear()
        return out


@dataclass
class FakeLink:
    """The MCU side of the UART as DeviceUart sees it."""

    id: int = 2
    config: UartConfig | None = None
    got: list[bytes] = field(default_factory=list)

    def receive(self, data: bytes) -> None:
        self.got.append(data)

    on_transmit: Callable[[bytes], None] | None = None


def test_a_pacer_hands_out_bytes_as_the_line_carries_them() -> None:
    pacer = Pacer(bytes_per_s=960.0)  # 9600 baud, 8N1
    pacer.push(bytes(range(96)), now=0.0)
    assert pacer.take(0.0) == b""
    assert pacer.take(0.05) == bytes(range(48))
    assert pacer.take(0.05) == b""
    assert pacer.take(1.0) == bytes(range(48, 96))
    # An idle line starts sending when the next bytes come, not when it went idle.
    pacer.push(b"ab", now=5.0)
    assert pacer.take(5.0015) == b"a"
    assert pacer.take(5.003) == b"b"


def test_a_device_frame_reaches_the_mcu_after_its_transmission_time() -> None:
    async def run() -> None:
        device = Talker(Scenario())
        link = FakeLink(config=UartConfig(baudrate=9600))
        peer = DeviceUart(link, device, now=lambda: 0.0)  # type: ignore[arg-type]
        frame = bytes(range(32))
        device.outbox += frame
        peer.step(1.0)
        assert link.got == []
        peer.step(1.0 + 16 / 960)
        peer.step(1.0 + 32 / 960)
        assert b"".join(link.got) == frame

    asyncio.run(run())


def test_a_firmware_at_the_wrong_baud_rate_reads_garbage() -> None:
    async def run() -> None:
        device = Talker(Scenario())
        link = FakeLink(config=UartConfig(baudrate=115200))
        peer = DeviceUart(link, device, now=lambda: 0.0)  # type: ignore[arg-type]
        frame = b"\x42\x4d" + bytes(30)
        device.outbox += frame
        peer.step(0.0)
        peer.step(1.0)
        got = b"".join(link.got)
        assert got != frame
        assert len(got) == round(len(frame) * 115200 / 9600)

    asyncio.run(run())


def test_what_the_mcu_sends_arrives_at_the_device_once_transmitted() -> None:
    async def run() -> None:
        device = Talker(Scenario())
        link = FakeLink(config=UartConfig(baudrate=9600))
        DeviceUart(link, device, now=lambda: 10.0)  # type: ignore[arg-type]  # hooks link.on_transmit
        assert link.on_transmit is not None
        link.on_transmit(b"\xaa\xb4\x04")  # what the firmware writes to its UART at t=10 s
        await asyncio.wait_for(device.arrived.wait(), 5)
        assert device.heard == [(b"\xaa\xb4\x04", 10.0 + 3 / 960)]

    asyncio.run(run())


def test_misframing_depends_on_both_rates() -> None:
    rng = random.Random(1)
    assert len(misframed(bytes(10), 9600, 115200, rng)) == 120
    assert len(misframed(bytes(120), 115200, 9600, rng)) == 10
    assert misframed(b"", 9600, 115200, rng) == b""


def read_as_the_vm(link: UartLink, n: int) -> bytes:
    """Open the UART's pty as machine.UART does and read ``n`` bytes (waiting for each)."""
    fd = os.open(link.vm_path, os.O_RDWR | os.O_NOCTTY)
    try:
        got = b""
        while len(got) < n and select.select([fd], [], [], 5)[0]:
            got += os.read(fd, n - len(got))
        return got
    finally:
        os.close(fd)


def test_the_receive_buffer_keeps_rxbuf_plus_the_fifo_and_drops_the_rest() -> None:
    async def run() -> None:
        link = UartLink(1, LOG)
        try:
            link.receive(b"x" * 10)  # not opened by the firmware: nothing is kept
            assert (link.pending(), link.dropped) == (0, 10)
            link.open(UartConfig(rxbuf=16))
            link.receive(bytes(300))
            assert link.dropped == 10 + 300 - (16 + 128)
            assert read_as_the_vm(link, 144) == bytes(144)
            link.restart()  # a reset empties the FIFOs and closes the UART
            assert link.pending() == 0
        finally:
            link.close()

    asyncio.run(run())
