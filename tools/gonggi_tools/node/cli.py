"""``gonggi node …``: the field tech's commands, a USB cable away from the board.

::

    gonggi node list
    gonggi node provision --port /dev/ttyUSB0 --site site.toml --registry nodes.toml [--data-port /dev/ttyUSB1]
    gonggi node flash     --port /dev/ttyUSB0 [--data-port /dev/ttyUSB1]
    gonggi node check     --port /dev/ttyUSB0 [--registry nodes.toml]
    gonggi node monitor   --data-port /dev/ttyUSB1 --registry nodes.toml [--count N]

Exit status: 0 done (check: every item passed), 1 the board or node failed (the message says
what to do), 2 a file or option is wrong, 130 interrupted. docs/field-guide.md walks through it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gonggi_emu.vm import FIRMWARE_DIR
from gonggi_tools.node.port_wait import PORT_WAIT_S

if TYPE_CHECKING:
    from gonggi_tools.node.board import Board, BoardInfo
    from gonggi_tools.node.monitor import Packet
    from gonggi_tools.node.ui import Ui

__all__ = ["add_parser"]

# The commands import what they use when they run: every `gonggi` invocation builds this parser.

_WAIT_S = 30.0  # after a reset: the node's start-up line and its first packet


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    node = subparsers.add_parser("node", help="provision, flash, check and monitor a node over its USB cable",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = node.add_subparsers(dest="node_command", required=True, metavar="COMMAND")

    listing = sub.add_parser("list", help="the boards attached (USB serial ports and emulated boards)")
    listing.set_defaults(func=_wrap(_list))

    prov = sub.add_parser("provision", help="give a board a node id, key and config; register it; flash and start it")
    _board_options(prov)
    prov.add_argument("--site", type=Path, required=True, metavar="FILE", help="the site TOML: sensors, pins, link, intervals")
    prov.add_argument("--registry", type=Path, required=True, metavar="FILE", help="the gateway's node registry (TOML)")
    prov.add_argument("--node-id", metavar="ID", help="default: gg-<the board's MAC>")
    prov.add_argument("--key-file", type=Path, metavar="FILE", help="use this key (hex) instead of a new one")
    prov.add_argument("--rekey", action="store_true", help="replace the key the registry has for this node")
    prov.add_argument("--name", default="", help="for the gateway's status page")
    prov.add_argument("--location", default="", help="free text, e.g. 37.5729,126.9794")
    prov.add_argument("--no-bus-check", dest="bus_check", action="store_false",
                      help="do not require every I2C sensor of the site to answer a bus scan")
    prov.add_argument("--no-flash", dest="flash", action="store_false", help="only write the config and register")
    _flash_options(prov)
    prov.set_defaults(func=_wrap(_provision))

    fl = sub.add_parser("flash", help="copy the firmware (only what changed, verified), reset, wait for the first packet")
    _board_options(fl)
    _flash_options(fl)
    fl.set_defaults(func=_wrap(_flash))

    chk = sub.add_parser("check", help="board, firmware, config, sensors and link: pass or fail each")
    _board_options(chk)
    chk.add_argument("--registry", type=Path, metavar="FILE", help="also check the node is registered with its key")
    chk.add_argument("--no-restart", dest="restart", action="store_false",
                     help="leave the node stopped at the REPL afterwards")
    chk.set_defaults(func=_wrap(_check))

    mon = sub.add_parser("monitor", help="decode and verify the node's packets on its data UART, live")
    mon.add_argument("--data-port", required=True, metavar="PORT", help="the node's data UART (UART1)")
    mon.add_argument("--registry", type=Path, required=True, metavar="FILE", help="where the node keys are (TOML)")
    mon.add_argument("--count", type=int, metavar="N", help="stop after N packets")
    mon.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds")
    mon.set_defaults(func=_wrap(_monitor))


def _board_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", "-p", required=True, metavar="PORT",
                   help="the board's USB serial port (/dev/ttyUSB0), or an emulated board's REPL pty")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S", help="how long the REPL may take to answer")


def _flash_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-port", metavar="PORT", help="the node's data UART: wait for its first valid packet there")
    p.add_argument("--firmware", type=Path, default=FIRMWARE_DIR, metavar="DIR", help="firmware sources")
    p.add_argument("--wait", type=float, default=_WAIT_S, metavar="S",
                   help=f"how long the node may take to start and send (default {_WAIT_S:g})")
    p.add_argument("--port-wait", type=float, default=PORT_WAIT_S, metavar="S",
                   help="how long a board with native USB (ESP32-S2/S3/C3/C6 on /dev/ttyACM*) may take to bring "
                   f"its port back after a reset (default {PORT_WAIT_S:g})")


def _wrap(command: Callable[[argparse.Namespace, Ui], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from gonggi_tools.node.errors import NodeToolError
        from gonggi_tools.node.ui import Ui

        ui = Ui()
        try:
            return command(args, ui)
        except NodeToolError as exc:
            ui.fail(exc)
            return exc.exit_code

    return run


def _list(args: argparse.Namespace, ui: Ui) -> int:
    from rich.markup import escape
    from rich.table import Table

    from gonggi_tools.node.listing import attached_boards

    boards = attached_boards()
    if not boards:
        ui.say("no boards found: plug one in (a data cable, not a charge-only one), "
               "or start an emulated one: gonggi emu board --flash DIR")
        return 0
    table = Table(title="boards attached", title_justify="left")
    for column in ("port", "kind", "details", "data port"):
        table.add_column(column)
    for b in boards:
        table.add_row(b.port, b.kind, escape(b.description), b.data_port)
    ui.console.print(table)
    return 0


def _probe(board: Board, ui: Ui) -> BoardInfo:
    info = board.probe()
    ui.say(f"board on {board.port}: MicroPython {info.version_text} on {info.platform}, MAC {info.uid}")
    return info


def _provision(args: argparse.Namespace, ui: Ui) -> int:
    from gonggi_tools.node.board import Board
    from gonggi_tools.node.flash import flash
    from gonggi_tools.node.provision import provision, read_key_file
    from gonggi_tools.node.site import load_site
    from gonggi_tools.node.target import target_arch

    site = load_site(args.site)
    key = read_key_file(args.key_file) if args.key_file else None
    with Board(args.port, timeout=args.timeout, port_wait=args.port_wait) as board:
        info = _probe(board, ui)
        target_arch(info)  # an incompatible board is refused before it is registered
        identity = provision(board, info, site, ui, registry=args.registry, node_id=args.node_id, key=key,
                             rekey=args.rekey, name=args.name, location=args.location, bus_check=args.bus_check)
        if args.flash:
            flash(board, info, ui, source=args.firmware, data_port=args.data_port, wait=args.wait, identity=identity)
        else:
            board.reset()
            ui.say("board reset: it starts with its new config if it has gonggi firmware")
    return 0


def _flash(args: argparse.Namespace, ui: Ui) -> int:
    from gonggi_tools.node.board import Board
    from gonggi_tools.node.flash import flash

    with Board(args.port, timeout=args.timeout, port_wait=args.port_wait) as board:
        info = _probe(board, ui)
        flash(board, info, ui, source=args.firmware, data_port=args.data_port, wait=args.wait)
    return 0


def _check(args: argparse.Namespace, ui: Ui) -> int:
    from gonggi_tools.node.board import Board
    from gonggi_tools.node.check import run_check, show

    with Board(args.port, timeout=args.timeout) as board:
        info = board.probe()
        items = run_check(board, info, registry=args.registry)
        if args.restart:
            board.restart_node()
    show(items, ui, args.port)
    failed = [i.name for i in items if not i.passed]
    ui.say(f"{len(items) - len(failed)} of {len(items)} passed" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _monitor(args: argparse.Namespace, ui: Ui) -> int:
    from gonggi_gateway.errors import ConfigError
    from gonggi_gateway.registry import Registry
    from gonggi_tools.node.errors import NodeToolError, SiteError
    from gonggi_tools.node.monitor import PacketReader, open_data_port, read_packets

    try:
        registry = Registry(args.registry)
    except ConfigError as exc:
        raise SiteError(str(exc)) from None
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    shown = verified = 0
    with open_data_port(args.data_port) as line:
        ui.say(f"listening on {args.data_port} (Ctrl-C to stop)")
        for packet in read_packets(line, PacketReader(registry.keys), deadline):
            _show_packet(packet, ui)
            shown += 1
            verified += packet.verified
            if args.count is not None and shown >= args.count:
                break
    ui.say(f"{shown} packet(s), {verified} verified")
    if verified == 0:
        raise NodeToolError(f"no valid packet on {args.data_port}",
                            hint="is the node running (gonggi node check) and in the registry?")
    return 0


_STATUS_STYLE = {"verified": "green", "repeat": "dim green"}


def _show_packet(p: Packet, ui: Ui) -> None:
    from rich.markup import escape

    style = _STATUS_STYLE.get(p.status, "bold red")
    where = f"boot {p.boot} seq {p.seq}" if p.boot is not None else ""
    ui.console.print(f"{datetime.now():%H:%M:%S} {escape(p.node_id or '-')} {p.kind} {where} "
                     f"[{style}]{p.status}[/{style}] {escape(p.detail)}")
