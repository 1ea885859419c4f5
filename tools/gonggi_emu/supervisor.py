"""The emulated board: the MicroPython VM on a flash directory, its console, UARTs and peripherals.

::

    async with EmulatedBoard(flash_dir, bench, scenario, log_dir) as board:
        await board.expect(b"gonggi node")       # wait for console output
        board.repl_path                          # what mpremote connects to
        board.uart_paths[1]                      # the data link the gateway opens

Like a dev board, it keeps its REPL and UART device paths while the VM restarts: on a soft
reset (the VM exits by itself: Ctrl-D at the REPL, ``sys.exit()``), on ``machine.reset()``, on a
watchdog expiry, after ``machine.deepsleep(ms)``, after :meth:`reset` (the EN button) and after
:meth:`power_cycle` (the supply). Each restart runs boot.py and main.py again and reports the
matching ``machine.reset_cause()``; the console shows the lines an ESP32 prints then.

Its REPL port is that of a USB-serial bridge chip (CP210x, CH340: ``usb="bridge"``, the
default), which stays put across resets, or the chip's own USB (``usb="native"``, as on the
ESP32-S2/S3/C3/C6): at every chip reset and power-up the port vanishes under whoever has it open
(EIO, hang-up) and comes back ``usb_enumeration_s`` later as a new pty under the same path, a
symlink named like a ``/dev/serial/by-id/`` entry. A soft reset keeps it, as on the real chip.

For the field tools' tests it can also pull its USB cable (:meth:`unplug`, :meth:`plug`), show
what the host typed at the REPL (:meth:`expect_typed`), have a small flash (``flash_size``) and
pretend to run another MicroPython (``pretend_micropython``). While it runs, ``gonggi node list``
finds it (:mod:`gonggi_emu.announce`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from gonggi_emu.announce import AnnouncedBoard, announce, withdraw
from gonggi_emu.bench import Bench
from gonggi_emu.board_image import BOOT_SCRIPT, board_image
from gonggi_emu.console import RAW_REPL_BANNER, Console, ExpectTimeout
from gonggi_emu.devices.base import Device
from gonggi_emu.heap import board_heap
from gonggi_emu.peripherals import Peripherals
from gonggi_emu.pty_port import PtyPort
from gonggi_emu.rpc import Op, RpcServer
from gonggi_emu.scenario import Scenario
from gonggi_emu.uart_link import UartHub
from gonggi_emu.vm import HEAP_ESP32_WROOM, vm_command, vm_env
from gonggi_emu.vm_process import VmProcess
from gonggi_emu.wiring import Wiring

__all__ = [
    "DEEPSLEEP_RESET",
    "HARD_RESET",
    "PWRON_RESET",
    "SOFT_RESET",
    "WDT_RESET",
    "EmulatedBoard",
    "EmulatorError",
    "ExpectTimeout",
]

# machine.reset_cause() values of the ESP32 port, and machine.TIMER_WAKE.
PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5
_TIMER_WAKE = 4
# What the ESP32's ROM bootloader prints first after each kind of chip reset.
_ROM_RESET = {
    PWRON_RESET: "0x1 (POWERON_RESET)",
    HARD_RESET: "0xc (SW_CPU_RESET)",
    WDT_RESET: "0xc (SW_CPU_RESET)",
    DEEPSLEEP_RESET: "0x5 (DEEPSLEEP_RESET)",
}
_START_TIMEOUT_S = 10.0
_RAW_RESTART_HOLD_S = 5.0
USB_KINDS = ("bridge", "native")
# A native USB port is away this long at a chip reset: the ROM, then MicroPython's TinyUSB
# enumerating, then the host's driver and udev making the device node.
_USB_ENUMERATION_S = 0.5
# MicroPython's TinyUSB CDC TX FIFO (CFG_TUD_CDC_TX_BUFSIZE): output kept while no host listens.
_CDC_TX_FIFO = 256


class EmulatorError(RuntimeError):
    """The emulated board itself failed (not the firmware on it)."""


@dataclass(frozen=True)
class _Restart:
    cause: int
    power: bool = False  # the supply was cut: RTC domain and devices start over
    en: bool = False  # EN pulled low: the whole chip starts over, devices stay powered
    sleep_s: float = 0.0  # deep sleep before waking (inf: until reset)


class EmulatedBoard:
    """An ESP32 running the real MicroPython VM on ``flash_dir``, wired as ``bench`` says."""

    # Set up by start().
    uarts: UartHub
    peripherals: Peripherals
    _repl: PtyPort
    _console: Console
    _typed: Console
    _server: RpcServer

    def __init__(
        self,
        flash_dir: Path,
        bench: Bench | None = None,
        scenario: Scenario | None = None,
        log_dir: Path | None = None,
        uid: bytes | None = None,
        *,
        heap: str = HEAP_ESP32_WROOM,
        env: Mapping[str, str] | None = None,
        usb: str = "bridge",
        usb_enumeration_s: float = _USB_ENUMERATION_S,
    ) -> None:
        """``heap`` is what the firmware finds free; ``env`` adds VM environment variables
        (e.g. ``GONGGI_RADIO`` for the virtual BLE radio); ``usb`` is "bridge" or "native"
        (see the module), ``usb_enumeration_s`` how long a native port is away at a reset."""
        if usb not in USB_KINDS:
            raise ValueError(f"usb={usb!r}: must be one of {', '.join(USB_KINDS)}")
        self.flash_dir = Path(flash_dir).resolve()
        self.bench = bench or Bench()
        self.scenario = scenario or Scenario()
        self.log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="gonggi-board-"))
        self.uid = uid or self.bench.uid or _default_uid(self.flash_dir)
        self.heap = heap
        self._extra_env = dict(env or {})
        self.usb = usb
        self.usb_enumeration_s = usb_enumeration_s  # applies from the next reset
        self._usb_link: Path | None = None
        # Both apply from the next (re)start: a flash of this many bytes (statvfs and ENOSPC as
        # littlefs gives them), and ((major, minor, micro), sys.implementation._mpy) to report.
        self.flash_size: int | None = None
        self.pretend_micropython: tuple[tuple[int, int, int], int] | None = None
        self._cable = asyncio.Event()
        self._cable.set()
        self.reset_count = 0  # restarts since start(), of any kind
        self.reset_cause = PWRON_RESET  # of the current run
        self.devices: dict[str, Device] = {}
        self._log = logging.getLogger(f"gonggi_emu.board.{self.uid.hex()}")
        self._vm: VmProcess | None = None
        self._request: _Restart | None = None
        self._wake = asyncio.Event()
        self._started = asyncio.Event()
        self._generation = 0
        self._life: asyncio.Task[None] | None = None
        self._wdt: asyncio.TimerHandle | None = None
        self._wdt_s = 0.0
        self._t0 = 0.0
        self._stack = contextlib.AsyncExitStack()

    # -- public ----------------------------------------------------------------------------

    @property
    def repl_path(self) -> str:
        return self._repl.path

    @property
    def uart_paths(self) -> dict[int, str]:
        return self.uarts.paths

    @property
    def console(self) -> str:
        return self._console.text

    @property
    def console_log(self) -> Path:
        return self._console.log_path

    def now(self) -> float:
        """Scenario time: seconds since the board was first powered up."""
        return asyncio.get_running_loop().time() - self._t0

    async def expect(self, pattern: bytes | str | re.Pattern[bytes], timeout: float = 10.0) -> re.Match[bytes]:
        """Wait for ``pattern`` on the console after the previous match (ExpectTimeout if not)."""
        return await self._console.expect(pattern, timeout)

    def write(self, data: bytes) -> None:
        """Type on the console, as a terminal on the REPL port would."""
        self._to_vm(data)

    async def expect_typed(self, pattern: bytes | str | re.Pattern[bytes], timeout: float = 10.0) -> re.Match[bytes]:
        """Wait until whoever has the REPL port open has sent ``pattern`` (after the previous match)."""
        return await self._typed.expect(pattern, timeout)

    async def unplug(self) -> None:
        """Pull the USB cable: the REPL port vanishes under whoever has it open (their reads and
        writes fail), and the board, powered through the cable, is off until :meth:`plug`."""
        if not self._cable.is_set():
            return
        self._cable.clear()
        self._repl.close()
        self._restart(_Restart(PWRON_RESET, power=True))

    async def plug(self) -> None:
        """Plug the cable back in: a REPL port appears (``repl_path``; a pty may get a new name,
        as a re-plugged adapter sometimes does) and the board powers up."""
        if self._cable.is_set():
            return
        self._repl = self._new_repl()
        self._publish()
        generation = self._generation
        self._cable.set()
        await self._wait_started(generation)

    async def reset(self) -> None:
        """Press EN: the chip restarts as at power-on (PWRON_RESET); the sensors stay powered."""
        await self._restart_and_wait(_Restart(PWRON_RESET, en=True))

    async def power_cycle(self) -> None:
        """Cut the supply and restore it: chip, RTC and every bench device start over."""
        await self._restart_and_wait(_Restart(PWRON_RESET, power=True))

    async def start(self) -> None:
        """Power up: ports, peripherals, then the VM; returns once the VM runs."""
        stack = self._stack
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.log_dir / "board.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self._log.addHandler(handler)
        self._log.setLevel(logging.INFO)
        stack.callback(handler.close)
        stack.callback(self._log.removeHandler, handler)
        wiring = Wiring.build(self.bench, self.scenario)
        self.devices = dict(wiring.by_name)
        if self.usb == "native":
            usb_dir = Path(tempfile.mkdtemp(prefix="gonggi-usb-"))
            stack.callback(shutil.rmtree, usb_dir, ignore_errors=True)
            by_id = usb_dir / "serial" / "by-id"
            by_id.mkdir(parents=True)
            self._usb_link = by_id / f"usb-MicroPython_Board_in_FS_mode_{self.uid.hex()}-if00"
        self._repl = self._new_repl()
        stack.callback(self._close_repl)
        self._console = Console(self.log_dir / "console.log", self._to_host)
        stack.callback(self._console.close)
        self._typed = Console(self.log_dir / "repl-input.log", lambda data: None)
        stack.callback(self._typed.close)
        self.uarts = UartHub(wiring.uart, self.now, self._console.emit, self._log)
        stack.callback(self.uarts.close)
        self.peripherals = Peripherals(wiring, self.now)
        self.peripherals.power_on()
        tmp = Path(tempfile.mkdtemp(prefix="gonggi-"))
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        self._server = RpcServer(tmp / "periph.sock", self._log)
        self.peripherals.register(self._server)
        self.uarts.register(self._server)
        self._server.register(Op.WDT_START, self._wdt_start)
        self._server.register(Op.WDT_FEED, self._wdt_feed)
        self._server.register(Op.RESET, self._reset_call)
        self._server.register(Op.DEEPSLEEP, self._deepsleep_call)
        await self._server.start()
        stack.push_async_callback(self._server.close)
        stack.callback(self._disarm_wdt)
        self._log.info(
            "board %s: flash %s, REPL %s, UARTs %s", self.uid.hex(), self.flash_dir, self.repl_path, self.uart_paths
        )
        self._life = asyncio.create_task(self._run())
        stack.push_async_callback(self._end_life)
        self._publish()
        stack.callback(withdraw, self.uid.hex())
        await self._wait_started(0)

    async def stop(self) -> None:
        """Switch off; also undoes a start() that failed half-way."""
        await self._stack.aclose()

    async def _end_life(self) -> None:
        if self._life is not None:
            self._life.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._life
        if self._vm is not None:
            self._vm.kill()
            await self._vm.wait()

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
        if exc is None and self._server.errors:
            raise EmulatorError(
                f"emulated peripherals raised {len(self._server.errors)} error(s), "
                f"first: {self._server.errors[0]!r}; see {self.log_dir / 'board.log'}"
            ) from self._server.errors[0]

    # -- the VM's life: start, run, restart ---------------------------------------------------

    async def _run(self) -> None:
        cause, wake, raw = PWRON_RESET, 0, False
        while True:
            await self._cable.wait()  # unplugged: no power
            self.reset_cause = cause
            self._announce(cause)
            # Started in the board image so tracebacks name "_boot.py" as an ESP32's do;
            # _boot.py then mounts the flash at "/" and moves there.
            image = await board_image()
            self._vm = await VmProcess.start(
                vm_command("-i", BOOT_SCRIPT, heap=await board_heap(self.heap)),
                self._env(image, cause, wake, raw),
                image,
                self._console.feed_vm,
            )
            self._log.info("VM %d started: reset cause %d%s", self._vm.pid, cause, ", raw REPL" if raw else "")
            if raw:
                # A soft reset from the raw REPL comes back to the raw REPL, quietly.
                self._console.hold_until(RAW_REPL_BANNER, _RAW_RESTART_HOLD_S)
                self._vm.write(b"\x01")
            if self._request is not None:
                self._vm.kill()
            self._generation += 1
            self._started.set()
            code = await self._vm.wait()
            request, self._request = self._request, None
            if request is None:
                # The VM ended by itself: a soft reset, or (non-zero) a crash the chip would
                # answer with a panic and a reboot.
                soft = code == 0 or code == -signal.SIGINT
                request = _Restart(SOFT_RESET if soft else HARD_RESET)
                if not soft:
                    self._log.error("VM exited with status %d: restarting as after a panic", code)
            self._log.info("VM stopped (status %d): %s", code, request)
            usb_gone = self.usb == "native" and request.cause != SOFT_RESET and self._cable.is_set()
            if usb_gone:
                self._repl.close()  # the chip's USB device goes with the chip
            raw = request.cause == SOFT_RESET and self._console.in_raw_repl
            self._console.release()
            self.uarts.restart()
            self._apply(request)
            wake = 0
            if request.sleep_s:
                wake = await self._deep_sleep(request.sleep_s)
                if self._request is not None:  # EN or the supply ended the sleep
                    request, self._request = self._request, None
                    self._apply(request)
            cause = request.cause
            self.reset_count += 1
            if usb_gone:
                await self._enumerate()

    def _apply(self, request: _Restart) -> None:
        """What a restart of this kind resets besides the VM."""
        if request.cause != SOFT_RESET:
            self._disarm_wdt()  # a chip reset stops the watchdog; a soft reboot does not
            self._console.reset_mode()
            self.peripherals.chip_reset()
        if request.power or request.en:
            self.peripherals.power_on()
        if request.power:
            for device in self.devices.values():
                device.power_on(self.now())

    async def _deep_sleep(self, seconds: float) -> int:
        """Sleep until the timer (returns TIMER_WAKE) or a reset/power cycle ends it (0)."""
        self._wake.clear()
        timeout = None if math.isinf(seconds) else seconds
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            return _TIMER_WAKE
        return 0

    def _announce(self, cause: int) -> None:
        if cause == SOFT_RESET:
            self._console.emit(b"MPY: soft reboot\r\n")
            return
        if cause == WDT_RESET:
            ms = int(self.now() * 1000)
            self._console.emit(
                b"E (%d) task_wdt: Task watchdog got triggered. The following tasks did not reset "
                b"the watchdog in time:\r\nE (%d) task_wdt:  - mp_task (CPU 0)\r\n" % (ms, ms)
            )
        self._console.emit(
            b"ets Jul 29 2019 12:21:46\r\n\r\nrst:%s,boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
            % _ROM_RESET[cause].encode()
        )

    def _env(self, image: Path, cause: int, wake: int, raw: bool) -> dict[str, str]:
        return vm_env(
            [image, self.flash_dir / "lib"],
            GONGGI_FLASH=str(self.flash_dir),
            GONGGI_BOARD=str(image),
            GONGGI_PERIPH=str(self._server.path),
            GONGGI_RESET_CAUSE=str(cause),
            GONGGI_WAKE=str(wake),
            GONGGI_UID=self.uid.hex(),
            GONGGI_RAW="1" if raw else "0",
            GONGGI_FLASH_SIZE=str(self.flash_size or 0),
            GONGGI_MICROPYTHON=_pretend_env(self.pretend_micropython),
            **self._extra_env,
        )

    def _restart(self, request: _Restart) -> None:
        """Stop the running VM now and restart as ``request`` says (the first request wins)."""
        if self._request is None:
            self._request = request
        self._log.info("restart requested: %s", request)
        if self._vm is not None:
            self._vm.kill()
        self._wake.set()

    async def _restart_and_wait(self, request: _Restart) -> None:
        generation = self._generation
        self._restart(request)
        await self._wait_started(generation)

    async def _wait_started(self, generation: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT_S
        while self._generation <= generation:
            if self._life is not None and self._life.done():
                self._life.result()  # re-raise what stopped the board
                raise EmulatorError("the board stopped")
            self._started.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise EmulatorError(f"the VM did not start within {_START_TIMEOUT_S:g} s; see {self.log_dir}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 0.5)):
                    await self._started.wait()

    def _new_repl(self) -> PtyPort:
        if self._usb_link is None:
            return PtyPort(self._from_host)
        return PtyPort(self._from_host, link=self._usb_link, hold=_CDC_TX_FIFO)

    async def _enumerate(self) -> None:
        """The native USB port comes back under its old path (unless the cable was pulled meanwhile:
        then :meth:`plug` brings it)."""
        gone = self._repl
        await asyncio.sleep(self.usb_enumeration_s)
        if self._cable.is_set() and self._repl is gone:
            self._repl = self._new_repl()
            self._log.info("USB port %s enumerated again", self.repl_path)

    def _to_vm(self, data: bytes) -> None:
        if self._vm is not None:
            self._vm.write(data)

    def _from_host(self, data: bytes) -> None:
        self._typed.emit(data)
        self._to_vm(data)

    def _to_host(self, data: bytes) -> None:
        if self._cable.is_set():
            self._repl.write(data)

    def _close_repl(self) -> None:
        if self._cable.is_set():
            self._repl.close()

    def _publish(self) -> None:
        announce(AnnouncedBoard(self.repl_path, self.uart_paths, os.getpid(), self.uid.hex(), str(self.flash_dir)))

    # -- calls from machine.py that concern the whole chip ----------------------------------

    def _reset_call(self, unit: int, payload: bytes) -> None:
        self._restart(_Restart(SOFT_RESET if unit == 1 else HARD_RESET))

    def _deepsleep_call(self, unit: int, payload: bytes) -> None:
        ms = int.from_bytes(payload[:4], "little")
        self._restart(_Restart(DEEPSLEEP_RESET, sleep_s=ms / 1000 if ms else math.inf))

    def _wdt_start(self, unit: int, payload: bytes) -> bytes:
        self._wdt_s = int.from_bytes(payload[:4], "little") / 1000
        self._log.info("watchdog started: %g s", self._wdt_s)
        return self._wdt_feed(unit, payload)

    def _wdt_feed(self, unit: int, payload: bytes) -> bytes:
        if self._wdt is not None:
            self._wdt.cancel()
        if self._wdt_s:
            self._wdt = asyncio.get_running_loop().call_later(self._wdt_s, self._wdt_expired)
        return b""

    def _wdt_expired(self) -> None:
        self._wdt = None
        self._log.warning("watchdog expired after %g s without a feed", self._wdt_s)
        self._restart(_Restart(WDT_RESET))

    def _disarm_wdt(self) -> None:
        if self._wdt is not None:
            self._wdt.cancel()
            self._wdt = None
        self._wdt_s = 0.0


def _pretend_env(impl: tuple[tuple[int, int, int], int] | None) -> str:
    # "1.19.1/10246": read by the board's _boot.py
    return "" if impl is None else ".".join(map(str, impl[0])) + f"/{impl[1]}"


def _default_uid(flash_dir: Path) -> bytes:
    # Espressif's OUI and three bytes that differ between flash directories, like a MAC.
    return bytes.fromhex("a4cf12") + hashlib.sha256(str(flash_dir).encode()).digest()[:3]
