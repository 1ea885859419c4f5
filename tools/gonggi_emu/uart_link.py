"""The board's UARTs: the VM's end of each, and what is wired to its pins.

The VM opens the slave of a raw pty per UART (VMIN=0, so reads never block and poll() works);
the supervisor holds the master and the slave (so the master never sees a hang-up between VM
runs) and moves the bytes:

* to a bench device (:class:`DeviceUart`), paced at the device's baud rate, garbled when the
  firmware's line settings differ from the device's;
* or to a :class:`~gonggi_emu.pty_port.PtyPort` whose stable path the gateway opens with pyserial
  (:class:`ExposedUart`), exactly as it opens a real board's data UART.

What arrives while the firmware has the UART closed, or beyond its ``rxbuf`` plus the 128-byte
hardware FIFO, is lost, as on the ESP32.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import struct
import termios
from collections.abc import Callable
from dataclasses import dataclass

from gonggi_emu.devices.base import UARTPeer
from gonggi_emu.pty_port import PtyPort, inq, open_pty
from gonggi_emu.rpc import Op, RpcServer

__all__ = ["EXPOSED_UARTS", "DeviceUart", "ExposedUart", "Pacer", "UartConfig", "UartHub", "UartLink"]

# UART0 carries the REPL: the others are free for the data link and sensors.
EXPOSED_UARTS = (1, 2)
_HW_FIFO = 128
_TICK_S = 0.005
_OPEN = struct.Struct("<IBBBI")  # baudrate, bits, parity (0 none, 1 even, 2 odd), stop, rxbuf


@dataclass(frozen=True)
class UartConfig:
    baudrate: int = 115200
    bits: int = 8
    parity: int | None = None  # as MicroPython: None, 0 even, 1 odd
    stop: int = 1
    rxbuf: int = 256

    @classmethod
    def decode(cls, payload: bytes) -> UartConfig:
        baud, bits, parity, stop, rxbuf = _OPEN.unpack(payload)
        return cls(baud, bits, None if parity == 0 else parity - 1, stop, rxbuf)

    def line(self) -> tuple[int, int, int | None, int]:
        return (self.baudrate, self.bits, self.parity, self.stop)

    def bytes_per_s(self) -> float:
        # A start bit, the data bits, the parity bit if any, the stop bits.
        return self.baudrate / (1 + self.bits + (self.parity is not None) + self.stop)


class UartLink:
    """One ESP32 UART: the pty the VM opens, and callbacks to what is wired to its pins."""

    def __init__(self, uart_id: int, log: logging.Logger) -> None:
        self.id = uart_id
        self._log = log
        self._master, self._slave, self.vm_path = open_pty(vmin=0)
        self.config: UartConfig | None = None  # None: closed (not opened in this VM run)
        self.dropped = 0
        self.on_transmit: Callable[[bytes], None] = lambda data: None
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._master, self._readable)

    def open(self, config: UartConfig) -> None:
        self.config = config

    def restart(self) -> None:
        """The VM stopped: the UART is unconfigured and its FIFOs are empty again."""
        self.config = None
        termios.tcflush(self._slave, termios.TCIOFLUSH)

    def pending(self) -> int:
        """Bytes received and not yet read by the firmware (``UART.any()``)."""
        return inq(self._slave)

    def receive(self, data: bytes) -> None:
        """Bytes arriving on the RX pin."""
        if self.config is None:
            self.dropped += len(data)
            return
        room = max(0, self.config.rxbuf + _HW_FIFO - self.pending())
        try:
            n = os.write(self._master, data[:room]) if room else 0
        except BlockingIOError:
            n = 0
        if n < len(data):
            self.dropped += len(data) - n
            self._log.info("UART%d: receive buffer full, %d bytes lost", self.id, len(data) - n)

    def close(self) -> None:
        self._loop.remove_reader(self._master)
        os.close(self._master)
        os.close(self._slave)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        if data:
            self.on_transmit(data)


class Pacer:
    """Bytes queued on a serial line, handed out as their last bit has been sent."""

    def __init__(self, bytes_per_s: float) -> None:
        self.rate = bytes_per_s
        self._queue = bytearray()
        self._free_at = 0.0

    def push(self, data: bytes, now: float) -> None:
        if not self._queue:
            self._free_at = max(self._free_at, now)
        self._queue += data

    def take(self, now: float) -> bytes:
        n = min(len(self._queue), int((now - self._free_at) * self.rate + 1e-9))
        if n <= 0:
            return b""
        out = bytes(self._queue[:n])
        del self._queue[:n]
        self._free_at += n / self.rate
        return out

    def __len__(self) -> int:
        return len(self._queue)


def misframed(data: bytes, sent_baud: int, read_baud: int, rng: random.Random) -> bytes:
    """What a UART set to ``read_baud`` makes of ``data`` sent at ``sent_baud``: framing garbage."""
    n = max(1, round(len(data) * read_baud / sent_baud)) if data else 0
    return bytes(rng.randrange(256) for _ in range(n))


class DeviceUart:
    """A bench device on a UART: its output paced at its baud rate, its input delivered likewise."""

    def __init__(self, link: UartLink, device: UARTPeer, now: Callable[[], float]) -> None:
        self.link = link
        self.device = device
        self._now = now
        self._rate = device.baudrate / 10  # 8N1: ten bit times per byte
        self._to_mcu = Pacer(self._rate)
        self._to_device_free = 0.0
        self._rng = random.Random(link.id)
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None
        link.on_transmit = self._from_mcu

    def start(self) -> None:
        """Run the line: ``step()`` every few milliseconds of scenario time."""
        self._task = self._loop.create_task(self._run())

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _line_ok(self) -> bool:
        cfg = self.link.config
        return cfg is None or cfg.line() == (self.device.baudrate, 8, None, 1)

    def step(self, now: float) -> None:
        """Collect what the device sent up to ``now`` and pass on what the line has carried."""
        sent = self.device.transmit(now)
        if sent:
            self._to_mcu.push(sent, now)
        out = self._to_mcu.take(now)
        if out:
            cfg = self.link.config
            if not self._line_ok() and cfg is not None:
                out = misframed(out, self.device.baudrate, cfg.baudrate, self._rng)
            self.link.receive(out)

    async def _run(self) -> None:
        while True:
            self.step(self._now())
            await asyncio.sleep(_TICK_S)

    def _from_mcu(self, data: bytes) -> None:
        cfg = self.link.config
        now = self._now()
        if cfg is not None and not self._line_ok():
            data = misframed(data, cfg.baudrate, self.device.baudrate, self._rng)
        rate = cfg.bytes_per_s() if cfg else self._rate
        done = max(now, self._to_device_free) + len(data) / rate
        self._to_device_free = done
        self._loop.call_later(done - now, self._deliver, data, done)

    def _deliver(self, data: bytes, at: float) -> None:
        if data:
            self.device.received(data, at)


class ExposedUart:
    """A UART with nothing on the bench: its pins go to a pty the gateway opens."""

    def __init__(self, link: UartLink) -> None:
        self.port = PtyPort(link.receive)
        link.on_transmit = self.port.write

    def close(self) -> None:
        self.port.close()


class UartHub:
    """All UARTs of a board and their ``UART_OPEN``/``UART_CLOSE``/``UART_ANY`` calls."""

    def __init__(
        self,
        devices: dict[int, UARTPeer],
        now: Callable[[], float],
        console: Callable[[bytes], None],
        log: logging.Logger,
    ) -> None:
        self.links = {n: UartLink(n, log) for n in (0, 1, 2)}
        self._log = log
        # UART0's pins are the REPL's: what the firmware writes there shows on the console.
        self.links[0].on_transmit = console
        self.peers: dict[int, DeviceUart | ExposedUart] = {}
        for n, device in devices.items():
            peer = DeviceUart(self.links[n], device, now)
            peer.start()
            self.peers[n] = peer
        for n in EXPOSED_UARTS:
            if n not in self.peers:
                self.peers[n] = ExposedUart(self.links[n])

    @property
    def paths(self) -> dict[int, str]:
        return {n: p.port.path for n, p in self.peers.items() if isinstance(p, ExposedUart)}

    def register(self, server: RpcServer) -> None:
        server.register(Op.UART_OPEN, self._open)
        server.register(Op.UART_CLOSE, self._close)
        server.register(Op.UART_ANY, self._any)

    def restart(self) -> None:
        for link in self.links.values():
            link.restart()

    def close(self) -> None:
        for peer in self.peers.values():
            peer.close()
        for link in self.links.values():
            link.close()

    def _open(self, unit: int, payload: bytes) -> bytes:
        link = self.links[unit]
        link.open(UartConfig.decode(payload))
        self._log.info("UART%d opened: %s", unit, link.config)
        return link.vm_path.encode()

    def _close(self, unit: int, payload: bytes) -> bytes:
        self.links[unit].config = None
        return b""

    def _any(self, unit: int, payload: bytes) -> bytes:
        return struct.pack("<I", self.links[unit].pending())
