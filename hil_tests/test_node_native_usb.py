"""``gonggi node`` against a board on its own USB (ESP32-S2/S3/C3/C6, /dev/ttyACM0): at every
reset the port vanishes under the tool and comes back a moment later. The tool follows it, says
so once, and sees the node start; a port that stays away is an error that says what to check.

The board here is the emulated one with ``usb="native"`` (``gonggi emu board --usb native``):
its port is a link like /dev/serial/by-id/usb-MicroPython_Board_in_FS_mode_<id>-if00, removed
and made again at each reset as udev does (the path a field tech passes as --port).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_node_support import (  # noqa: F401  (fixtures)
    Gonggi,
    bench,
    data_port,
    gonggi,
    registry,
    site,
)

from gonggi_emu.bench import Bench
from gonggi_emu.scenario import Scenario
from gonggi_emu.supervisor import EmulatedBoard

REENUMERATED = "the board re-enumerated its USB port (native USB)"


@pytest.fixture
def board(request: pytest.FixtureRequest, hil_loop: asyncio.AbstractEventLoop, flash_dir: Path,
          hil_log_dir: Path, bench: Bench, scenario: Scenario) -> Iterator[EmulatedBoard]:
    """An emulated board whose REPL port is the chip's native USB."""
    if request.config.getoption("hil_port"):
        pytest.skip("needs the emulated board's native USB (a real bench's port kind is not known)")
    native = EmulatedBoard(flash_dir, bench, scenario, hil_log_dir, usb="native")
    hil_loop.run_until_complete(native.__aenter__())
    try:
        yield native
    finally:
        hil_loop.run_until_complete(native.__aexit__(None, None, None))


async def test_flash_follows_the_port_through_the_reset_and_hears_the_first_packet(
    board: EmulatedBoard, gonggi: Gonggi, site: Path, registry: Path, data_port: str
) -> None:
    run = await gonggi("node", "provision", "--port", board.repl_path, "--site", str(site),
                       "--registry", str(registry), "--no-flash")
    assert run.rc == 0, run.out
    assert "board reset: it starts with its new config" in run.out
    assert "/serial/by-id/" in board.repl_path
    await board.expect("rst:0xc (SW_CPU_RESET)")  # the board, and its port, are back

    run = await gonggi("node", "flash", "--port", board.repl_path, "--data-port", data_port)
    assert run.rc == 0, run.out
    assert re.search(r"all \d+ files verified on the board \(SHA-256\)", run.out)
    assert run.out.count(REENUMERATED) == 1
    assert re.search(r"node gg-\w+ started: firmware 0\.1\.0, boot 1", run.out)
    assert re.search(rf"first packet on {re.escape(data_port)}: (HELLO|DATA) seq \d+, verified", run.out)
    assert board.reset_count == 2  # provisioning's reset and the flash's


async def test_a_port_that_does_not_come_back_says_what_to_check(
    board: EmulatedBoard, gonggi: Gonggi, site: Path, registry: Path, data_port: str
) -> None:
    run = await gonggi("node", "provision", "--port", board.repl_path, "--site", str(site),
                       "--registry", str(registry), "--data-port", data_port)
    assert run.rc == 0, run.out
    assert run.out.count(REENUMERATED) == 1  # provisioning's reset is followed as the flash's is
    assert "verified with the node's key" in run.out

    board.usb_enumeration_s = 3600.0  # held in boot mode, or a cable that lost its data lines
    run = await gonggi("node", "flash", "--port", board.repl_path, "--data-port", data_port, "--port-wait", "0.5")
    assert run.rc == 1, run.out
    assert (f"error: the board's port {board.repl_path} went away at the reset "
            "and did not come back within 0.5 s") in run.out
    assert "what to do: check the USB cable" in run.out
    assert "boot mode" in run.out and "`ls /dev/ttyACM*`" in run.out
    assert REENUMERATED not in run.out
