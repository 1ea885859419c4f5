"""``gonggi emu …``: emulated boards from the command line.

``gonggi emu board --flash DIR`` runs one board until Ctrl-C and prints where to reach it::

    REPL /dev/pts/7
    UART1 /dev/pts/9
    UART2 /dev/pts/10

then ``mpremote connect /dev/pts/7 resume fs ls`` or a gateway on ``/dev/pts/9``. With
``--usb native`` the REPL port is the chip's own USB (ESP32-S3, -C3): a stable path that
vanishes at each reset and comes back, as ``/dev/ttyACM0`` does.

``gonggi emu radio --socket PATH`` runs a virtual BLE radio until Ctrl-C (``RADIO <path>`` once it
listens); ``gonggi emu board --radio PATH`` puts a board's bluetooth on it (docs/ble.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from gonggi_emu.bench import Bench, BenchError
from gonggi_emu.radio.server import Timing, VirtualRadio
from gonggi_emu.radio.standalone import RadioInUse, RadioSummary, run_radio
from gonggi_emu.scenario import Scenario, ScenarioError
from gonggi_emu.supervisor import USB_KINDS, EmulatedBoard
from gonggi_emu.vm import VMNotInstalled

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "emu", help="run emulated boards (MicroPython VM + emulated sensors) and a virtual BLE radio")
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
    board.add_argument("--radio", type=Path, metavar="PATH",
                       help="socket of a running 'gonggi emu radio': the board's bluetooth is on that radio")
    board.add_argument("--usb", choices=USB_KINDS, default="bridge",
                       help="the REPL port: a USB-serial bridge that stays across resets (default), or the "
                       "chip's native USB (ESP32-S2/S3/C3/C6), which vanishes at each reset and comes back")
    board.set_defaults(func=_board)
    radio = sub.add_parser(
        "radio",
        help="run a virtual BLE radio until interrupted",
        description="Run the virtual BLE radio that emulated boards (gonggi emu board --radio PATH) and a "
        "gateway ([ble] radio = \"PATH\") share. Prints 'RADIO <path>' once it listens, and what it saw "
        "when stopped (Ctrl-C or SIGTERM).",
    )
    radio.add_argument("--socket", type=Path, required=True, metavar="PATH", help="the AF_UNIX socket to listen on")
    radio.add_argument("--time-scale", type=_positive, default=1.0, metavar="X",
                       help="run the link layer's timings X times faster than real time (default 1)")
    radio.add_argument("--max-connections", type=int, choices=range(1, 33), default=8, metavar="N",
                       help="connections per central adapter, 1 ... 32 (default 8)")
    radio.set_defaults(func=_radio)


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {text}")
    return value


def _radio(args: argparse.Namespace) -> int:
    try:
        summary = asyncio.run(_serve_radio(args.socket, Timing(time_scale=args.time_scale), args.max_connections))
    except RadioInUse as exc:
        print(f"gonggi emu radio: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"gonggi emu radio: cannot listen on {args.socket}: {exc}", file=sys.stderr)
        return 2
    print(f"radio stopped: {summary}", flush=True)
    return 0


async def _serve_radio(path: Path, timing: Timing, max_connections: int) -> RadioSummary:
    stop = _stop_on_signals()

    def listening(radio: VirtualRadio) -> None:
        where = radio.path.absolute()  # boards and gateways run in other directories
        print(f"RADIO {where}", flush=True)
        print(f"boards: gonggi emu board --radio {where} ...; gateway: [ble] radio = \"{where}\"",
              file=sys.stderr, flush=True)

    return await run_radio(path, stop, timing=timing, max_connections=max_connections, on_listening=listening)


def _board(args: argparse.Namespace) -> int:
    env: dict[str, str] = {}
    if args.radio is not None:
        if not args.radio.is_socket():
            print(f"gonggi emu board: no virtual radio at {args.radio}: start "
                  f"'gonggi emu radio --socket {args.radio}' first", file=sys.stderr)
            return 2
        env["GONGGI_RADIO"] = str(args.radio.resolve())  # the VM runs elsewhere: an absolute path
    elif _link_kind(args.flash) == "ble":
        print("gonggi emu board: warning: config.json has link.kind = \"ble\" but no --radio was given: "
              "the board's bluetooth has no radio to advertise on", file=sys.stderr)
    try:
        bench = Bench.load(args.bench) if args.bench else Bench()
        scenario = Scenario.load(args.scenario) if args.scenario else Scenario()
        asyncio.run(_serve(args.flash, bench, scenario, args.log_dir, env, args.usb))
    except (BenchError, ScenarioError, VMNotInstalled) as exc:
        print(f"gonggi emu board: {exc}", file=sys.stderr)
        return 2
    return 0


def _link_kind(flash: Path) -> str | None:
    """The data link the firmware on ``flash`` will use, as its config.json says (None: unknown)."""
    try:
        link = json.loads((flash / "config.json").read_text()).get("link", {})
    except (OSError, ValueError, AttributeError):
        return None  # no config yet, or not ours to judge: the firmware reports it
    return link.get("kind") if isinstance(link, dict) else None


def _stop_on_signals() -> asyncio.Event:
    """An event set by Ctrl-C or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _serve(flash: Path, bench: Bench, scenario: Scenario, log_dir: Path | None,
                 env: dict[str, str], usb: str = "bridge") -> None:
    stop = _stop_on_signals()
    async with EmulatedBoard(flash, bench, scenario, log_dir, env=env, usb=usb) as board:
        print(f"REPL {board.repl_path}", flush=True)
        for n, path in sorted(board.uart_paths.items()):
            print(f"UART{n} {path}", flush=True)
        print(f"logs in {board.log_dir}", file=sys.stderr, flush=True)
        await stop.wait()
