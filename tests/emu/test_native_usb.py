"""The emulated board with native USB (``usb="native"``, an ESP32-S3's own USB-CDC): its REPL port
vanishes under the host at a chip reset and comes back under the same path; a soft reset keeps it."""

from __future__ import annotations

import asyncio
import os
import textwrap
from pathlib import Path

import pytest
import serial

from gonggi_emu.bench import Bench
from gonggi_emu.scenario import Scenario
from gonggi_emu.supervisor import EmulatedBoard

MAIN = """
    import machine
    print("cause", machine.reset_cause())
"""


async def _read_until_gone(host: serial.Serial) -> serial.SerialException:
    """Read what the board sends until the port fails under the reader, as a vanished ttyACM does."""
    while True:
        try:
            await asyncio.to_thread(host.read, 4096)
        except serial.SerialException as exc:
            return exc


def test_a_chip_reset_takes_the_port_away_and_it_comes_back_under_its_path(tmp_path: Path) -> None:
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text(textwrap.dedent(MAIN))

    async def run() -> None:
        async with EmulatedBoard(flash, Bench(), Scenario(), tmp_path / "log", usb="native",
                                 usb_enumeration_s=0.1) as board:
            path = board.repl_path
            assert Path(path).is_symlink() and Path(path).name.startswith("usb-MicroPython_Board_in_FS_mode_")
            first_device = os.path.realpath(path)
            await board.expect(">>> ")
            with serial.Serial(path, 115200, timeout=10) as host:
                host.write(b"import machine; machine.reset()\r")
                gone = await _read_until_gone(host)
                assert "returned no data" in str(gone)  # what pyserial says of a port whose device left
                # Back under the same path, a new device; the old one is still held open here.
                await board.expect("rst:0xc (SW_CPU_RESET)")
                assert os.path.realpath(path) != first_device

            await board.expect("cause 2\r\n")
            await board.expect(">>> ")
            # What the board printed while nobody listened waits in its USB FIFO for the next opener.
            with serial.Serial(path, 115200, timeout=10) as host:
                assert b"cause 2\r\n" in await asyncio.to_thread(host.read_until, b">>> ")
                device = os.path.realpath(path)
                host.write(b"\x04")  # Ctrl-D: a soft reset keeps the USB device
                assert b"cause 5\r\n" in await asyncio.to_thread(host.read_until, b"cause 5\r\n")
                assert os.path.realpath(path) == device

    asyncio.run(run())


def test_the_usb_kind_is_checked() -> None:
    with pytest.raises(ValueError, match="usb='otg': must be one of bridge, native"):
        EmulatedBoard(Path("/nonexistent"), usb="otg")
