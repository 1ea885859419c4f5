"""A field tech's session with mpremote: copy, list, run, reset, interrupt. The same commands as
against /dev/ttyUSB0, run as the real mpremote CLI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gonggi_emu.supervisor import EmulatedBoard

if TYPE_CHECKING:
    from conftest import RealBoard

    Board = EmulatedBoard | RealBoard

Mpremote = Callable[..., Awaitable[str]]

MAIN_PRINTS_RESET_CAUSE = """\
import machine
print("main.py: reset cause", machine.reset_cause())
"""

MAIN_RUNS_FOREVER = """\
import asyncio

async def node():
    print("main.py: node running")
    while True:
        await asyncio.sleep(1)

asyncio.run(node())
"""


async def test_cp_puts_a_file_on_the_board_and_import_runs_it(board: Board, mpremote: Mpremote, tmp_path: Path) -> None:
    src = tmp_path / "hello.py"
    src.write_text('print("hello from", __name__)\n')
    await mpremote("resume", "fs", "cp", str(src), ":hello.py")
    assert "hello from hello" in await mpremote("resume", "exec", "import hello")


async def test_the_copied_file_lands_in_the_flash_directory(
    emulated_board: EmulatedBoard, mpremote: Mpremote, tmp_path: Path
) -> None:
    src = tmp_path / "config.py"
    src.write_text("NODE = 'sensor-7'\n")
    await mpremote("resume", "fs", "cp", str(src), ":config.py")
    assert (emulated_board.flash_dir / "config.py").read_text() == "NODE = 'sensor-7'\n"
    assert "R\x01" in emulated_board.console  # the board accepted raw-paste mode


async def test_fs_ls_lists_the_flash_with_sizes(board: Board, mpremote: Mpremote) -> None:
    listing = await mpremote("resume", "fs", "ls")
    assert listing.split("\n")[0] == "ls :"
    assert not any("board" in line for line in listing.split("\n")[1:])  # board support stays hidden
    await mpremote("resume", "exec", "open('notes.txt', 'w').write('12345')")
    assert "5 notes.txt" in await mpremote("resume", "fs", "ls")


async def test_run_executes_a_local_script_on_the_board(board: Board, mpremote: Mpremote, tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text("import machine\nprint('unique id', len(machine.unique_id()), 'bytes')\n")
    assert "unique id 6 bytes" in await mpremote("resume", "run", str(script))


@pytest.mark.flash({"main.py": MAIN_PRINTS_RESET_CAUSE})
async def test_without_resume_mpremote_soft_resets_first_and_still_works(board: Board, mpremote: Mpremote) -> None:
    await board.expect("main.py: reset cause")
    assert "after soft reset" in await mpremote("exec", "print('after', 'soft reset')")
    # A soft reset from the raw REPL runs boot.py, not main.py, as on a board.
    assert "main.py:" not in await mpremote("resume", "exec", "print('still quiet')")


@pytest.mark.flash({"main.py": MAIN_PRINTS_RESET_CAUSE})
async def test_a_hard_reset_runs_main_py_again(board: Board, mpremote: Mpremote) -> None:
    await board.expect("main.py: reset cause 1")
    await mpremote("resume", "reset")
    await board.expect("main.py: reset cause 2")  # machine.HARD_RESET
    await board.reset()  # the EN button
    await board.expect("main.py: reset cause 1")


@pytest.mark.flash({"main.py": MAIN_RUNS_FOREVER})
async def test_ctrl_c_stops_main_py_and_leaves_the_repl(board: Board, mpremote: Mpremote) -> None:
    await board.expect("main.py: node running")
    board.write(b"\x03")
    await board.expect("KeyboardInterrupt")
    await board.expect(">>> ")
    board.write(b"print(6 * 7)\r")
    await board.expect("42\r\n")


@pytest.mark.flash({"main.py": MAIN_RUNS_FOREVER})
async def test_mpremote_interrupts_a_running_main_py(board: Board, mpremote: Mpremote) -> None:
    await board.expect("main.py: node running")
    assert "7" in await mpremote("resume", "exec", "print(3 + 4)")
