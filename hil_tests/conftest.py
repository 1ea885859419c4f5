"""Hardware-in-the-loop plugin: the same tests against an emulated board (default) or a real one.

Options (``pytest --help``, group "hil")::

    --hil-port /dev/ttyUSB0       a real board's REPL port; without it, an emulated board
    --hil-data-port /dev/ttyUSB1  the real board's data UART (its UART1)
    --hil-log-dir DIR             keep each test's logs in DIR/<test name>/

Fixtures, each cleaning up after itself even when the test fails:

* ``flash_dir`` - the board's files before it boots, from ``@pytest.mark.flash({path: text})``;
* ``board`` - :class:`~gonggi_emu.supervisor.EmulatedBoard`, or :class:`RealBoard` with
  ``--hil-port``: ``repl_path``, ``uart_paths``, ``expect()``, ``write()``, ``reset()``, ``console``;
* ``emulated_board`` - the same board for tests that need the emulator's powers (power cuts,
  scenarios, the flash directory): skipped on a real bench, and only there;
* ``mpremote`` - runs the real mpremote CLI against the board;
* ``hil_log_dir`` - this test's log directory.

``async def`` tests run on the event loop the board lives on (``hil_loop``).
"""

from __future__ import annotations

import asyncio
import inspect
import re
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Self

import pytest
import serial

from gonggi_emu.bench import Bench
from gonggi_emu.console import Console
from gonggi_emu.scenario import Scenario
from gonggi_emu.supervisor import EmulatedBoard

from cli_runner import port_released, run_logged

HERE = Path(__file__).resolve().parent
MPREMOTE = str(Path(sys.executable).with_name("mpremote"))
TEST_TIMEOUT_S = 120.0
MPREMOTE_TIMEOUT_S = 60.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "hardware-in-the-loop (hil_tests/)")
    group.addoption("--hil-port", metavar="DEV", help="REPL port of a real board (default: an emulated board)")
    group.addoption("--hil-data-port", metavar="DEV", help="data UART (UART1) of the real board")
    group.addoption("--hil-log-dir", metavar="DIR", type=Path, help="keep per-test logs under DIR")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "flash(files): {path: text} on the board's flash before it boots")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.hil)
            if inspect.iscoroutinefunction(getattr(item, "obj", None)):
                item.fixturenames.insert(0, "hil_loop")  # type: ignore[attr-defined]


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    loop = pyfuncitem.funcargs["hil_loop"]
    assert isinstance(loop, asyncio.AbstractEventLoop)
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    loop.run_until_complete(asyncio.wait_for(pyfuncitem.obj(**kwargs), TEST_TIMEOUT_S))
    return True


@pytest.fixture
def hil_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.fixture
def hil_log_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    base = request.config.getoption("hil_log_dir")
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    path = base / name if base is not None else tmp_path / "log"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def flash_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """The board's files, in place before it boots: ``@pytest.mark.flash({"main.py": "..."})``."""
    path = tmp_path / "flash"
    path.mkdir()
    marker = request.node.get_closest_marker("flash")
    for name, text in (marker.args[0] if marker else {}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


@pytest.fixture
def bench() -> Bench:
    """The bench of the emulated board; override in a test module to wire devices."""
    return Bench()


@pytest.fixture
def scenario() -> Scenario:
    """The emulated world; override in a test module."""
    return Scenario()


@pytest.fixture
def board(
    request: pytest.FixtureRequest,
    hil_loop: asyncio.AbstractEventLoop,
    flash_dir: Path,
    hil_log_dir: Path,
    bench: Bench,
    scenario: Scenario,
) -> Iterator[EmulatedBoard | RealBoard]:
    port = request.config.getoption("hil_port")
    the_board: EmulatedBoard | RealBoard
    if port:
        the_board = RealBoard(port, request.config.getoption("hil_data_port"), flash_dir, hil_log_dir)
    else:
        the_board = EmulatedBoard(flash_dir, bench, scenario, hil_log_dir)
    hil_loop.run_until_complete(the_board.__aenter__())
    try:
        yield the_board
    finally:
        hil_loop.run_until_complete(the_board.__aexit__(None, None, None))


@pytest.fixture
def emulated_board(board: EmulatedBoard | RealBoard) -> EmulatedBoard:
    if not isinstance(board, EmulatedBoard):
        pytest.skip("needs the emulated board (power switch, scenario or flash directory)")
    return board


@pytest.fixture
def mpremote(board: EmulatedBoard | RealBoard, hil_log_dir: Path) -> Callable[..., Awaitable[str]]:
    """``await mpremote("resume", "fs", "ls")``: mpremote's output; fails the test if it fails."""

    async def run(*args: str) -> str:
        argv = ["connect", board.repl_path, *args]
        async with port_released(board):
            rc, out = await run_logged([MPREMOTE, *argv], hil_log_dir / "mpremote.log", MPREMOTE_TIMEOUT_S,
                                       "mpremote " + " ".join(argv))
        assert rc == 0, f"mpremote {' '.join(args)} failed ({rc}):\n{out}"
        return out

    return run


class RealBoard:
    """A board on a serial port, with the attributes of EmulatedBoard that a real bench has.

    Its flash gets the files of ``flash_dir`` (with mpremote) before the first reset; EN is
    pulsed through RTS as esptool does on ESP32 dev boards.
    """

    def __init__(self, port: str, data_port: str | None, flash_dir: Path, log_dir: Path) -> None:
        self.repl_path = port
        self.uart_paths = {1: data_port} if data_port else {}
        self.log_dir = log_dir
        self.reset_count = 0
        self._flash_dir = flash_dir
        self._console = Console(log_dir / "console.log", lambda data: None)
        self._serial: serial.Serial | None = None

    @property
    def console(self) -> str:
        return self._console.text

    @property
    def console_log(self) -> Path:
        return self._console.log_path

    async def __aenter__(self) -> Self:
        for entry in sorted(self._flash_dir.iterdir()):
            await self._mpremote("fs", "cp", "-r", str(entry), ":")
        self.open_port()
        await self.reset()
        self.reset_count = 0
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close_port()
        self._console.close()

    async def expect(self, pattern: bytes | str | re.Pattern[bytes], timeout: float = 10.0) -> re.Match[bytes]:
        return await self._console.expect(pattern, timeout)

    def write(self, data: bytes) -> None:
        assert self._serial is not None, "the port is lent to mpremote"
        self._serial.write(data)

    async def reset(self) -> None:
        """Pulse EN low through RTS as esptool's hard reset does; an adapter without modem
        lines gets ``machine.reset()`` typed at the REPL instead."""
        assert self._serial is not None, "the port is lent to mpremote"
        try:
            self._serial.rts = True
        except OSError:
            self.write(b"\x03\x03\r\x02import machine; machine.reset()\r")
        else:
            await asyncio.sleep(0.1)  # EN must stay low long enough for the chip to reset
            self._serial.rts = False
        self.reset_count += 1

    def open_port(self) -> None:
        port = serial.Serial()
        port.port, port.baudrate, port.timeout = self.repl_path, 115200, 0
        port.dtr = port.rts = False  # EN high and IO0 high: run, not download mode
        port.open()
        self._serial = port
        asyncio.get_running_loop().add_reader(port.fileno(), self._readable)

    def close_port(self) -> None:
        if self._serial is not None:
            asyncio.get_running_loop().remove_reader(self._serial.fileno())
            self._serial.close()
            self._serial = None

    def _readable(self) -> None:
        assert self._serial is not None
        data = self._serial.read(self._serial.in_waiting or 1)
        if data:
            self._console.emit(data)

    async def _mpremote(self, *args: str) -> None:
        proc = await asyncio.create_subprocess_exec(MPREMOTE, "connect", self.repl_path, *args)
        if await proc.wait() != 0:
            raise RuntimeError(f"mpremote {' '.join(args)} failed on {self.repl_path}")
