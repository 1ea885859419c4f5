"""``gonggi emu …``: emulated boards from the command line.

``gonggi emu board --flash DIR`` runs one board until Ctrl-C and prints where to reach it::

    REPL /dev/pts/7
    UART1 /dev/pts/9
    UART2 /dev/pts/10

then ``mpremote connect /dev/pts/7 resume fs ls`` or a gateway on ``/dev/pts/9``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from gonggi_emu.bench import Bench, BenchError
from gonggi_emu.scenario import Scenario, ScenarioError
from gonggi_emu.supervisor import EmulatedBoard
from gonggi_emu.vm import VMNotInstalled

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("emu", help="run emulated boards (MicroPython VM + emulated sensors)")
    sub = parser.add_subparsers(dest="emu", required=True, metavar="WHAT")
    board = sub.add_parser(
        "board",
        help="run one emulated board until interrupted",
        description="Run the firmware in DIR on an emulated ESP32. Prints 'REPL <path>' and "
        "'UART<n> <path>' for each UART the bench leaves free, then runs until Ctrl-C.",
    )
    board.add_argument("--flash", type=Path, required=True, metavar="DIR", help="the board's flash (created if missing)")
    board.add_argument("--bench", type=Path, metavar="FILE", help="bench TOML: which devices sit on which bus")
    board.add_argument("--scenario", type=Path, metavar="FILE", help="scenario TOML: values over time and faults")
    board.add_argument("--log-dir", type=Path, metavar="DIR", help="where console.log and board.log go")
    board.set_defaults(func=_board)


def _board(args: argparse.Namespace) -> int:
    try:
        bench = Bench.load(args.bench) if args.bench else Bench()
        scenario = Scenario.load(args.scenario) if args.scenario else Scenario()
        asyncio.run(_serve(args.flash, bench, scenario, args.log_dir))
    except (BenchError, ScenarioError, VMNotInstalled) as exc:
        print(f"gonggi emu board: {exc}", file=sys.stderr)
        return 2
    return 0


async def _serve(flash: Path, bench: Bench, scenario: Scenario, log_dir: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with EmulatedBoard(flash, bench, scenario, log_dir) as board:
        print(f"REPL {board.repl_path}", flush=True)
        for n, path in sorted(board.uart_paths.items()):
            print(f"UART{n} {path}", flush=True)
        print(f"logs in {board.log_dir}", file=sys.stderr, flush=True)
        await stop.wait()
