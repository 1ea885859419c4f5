"""``gonggi node check``: is this node fit to leave on its pole? One line per item, pass or fail.

The board, its firmware (every file hashed on the board against the manifest), its config, the
node as it was running when Ctrl-C stopped it (firmware/status.py reads its state), each sensor
(bus scan and health flags) and the link to the gateway.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from gonggi_gateway.errors import ConfigError
from gonggi_gateway.registry import Registry, key_fingerprint
from gonggi_tools.firmware_image import MANIFEST
from gonggi_tools.node.board import Board, BoardInfo
from gonggi_tools.node.bus import BusReport, scan
from gonggi_tools.node.errors import IncompatibleMicroPython, NodeToolError, SiteError
from gonggi_tools.node.site import DRIVERS, parse_site
from gonggi_tools.node.target import MpyAbi, target_arch
from gonggi_tools.node.ui import Ui, size
from gonggi_tools.node.update import MARKER

__all__ = ["Item", "flag_names", "run_check", "show"]

# firmware/sensor.py health flags; the ones that mean the sensor is not doing its job.
_FLAGS = ((0x01, "warming up"), (0x02, "checksum errors"), (0x04, "stuck"), (0x08, "missing"),
          (0x10, "no new data"), (0x20, "out of range"), (0x40, "bus errors"), (0x80, "rejected its config"))
_FAILING = 0x04 | 0x08 | 0x20 | 0x40 | 0x80


@dataclass(frozen=True)
class Item:
    name: str
    passed: bool
    detail: str
    hint: str = ""


def flag_names(flags: int) -> str:
    return ", ".join(name for bit, name in _FLAGS if flags & bit) or "healthy"


def run_check(board: Board, info: BoardInfo, *, registry: Path | None) -> list[Item]:
    items = [_board_item(info)]
    firmware, files_ok = _firmware_item(board)
    items.append(firmware)
    if not files_ok:
        return items
    try:
        status = json.loads(board.exec("import status\nstatus.report()", "reading the node's status").strip().splitlines()[-1])
    except (NodeToolError, ValueError, IndexError) as exc:
        reason = exc.message if isinstance(exc, NodeToolError) else "unreadable answer"
        return [*items, Item("node", False, f"its status cannot be read ({reason})", "flash a current build: gonggi node flash")]
    config = status["config"]
    items.append(_config_item(config, registry))
    node = status["node"]
    items.append(_node_item(node, status))
    if "error" not in config:
        items += _sensor_items(board, config, node)
        items.append(_link_item(node))
    return items


def _board_item(info: BoardInfo) -> Item:
    where = (f"MicroPython {info.version_text} ({MpyAbi.decode(info.mpy)}) on {info.platform}, "
             f"{size(info.mem_free)} RAM free, flash {size(info.flash_free)} free of {size(info.flash_total)}")
    try:
        target_arch(info)
    except IncompatibleMicroPython as exc:
        return Item("board", False, exc.message, exc.hint)
    return Item("board", True, where)


def _firmware_item(board: Board) -> tuple[Item, bool]:
    text = board.read_text(MANIFEST)
    if text is None:
        return Item("firmware", False, "no gonggi firmware on the board", "gonggi node flash"), False
    try:
        manifest = json.loads(text)
        files: Mapping[str, str] = manifest["files"]
    except (ValueError, KeyError, TypeError):
        return Item("firmware", False, f"{MANIFEST} is damaged", "gonggi node flash"), False
    got = board.hashes(files)
    bad = sorted(p for p, want in files.items() if got.get(p) != want)
    if board.read_text(MARKER) is not None:
        return Item("firmware", False, "an update was cut off half-way: the node does not start",
                    "run gonggi node flash again to finish it"), False
    if bad:
        return Item("firmware", False, f"{len(bad)} file(s) differ from the manifest: {', '.join(bad[:4])}",
                    "gonggi node flash"), False
    return Item("firmware", True, f"build {manifest.get('version')}: all {len(files)} files match the manifest"), True


def _config_item(config: Mapping[str, Any], registry: Path | None) -> Item:
    if "error" in config:
        return Item("config", False, config["error"], "gonggi node provision")
    link = config["link"]
    where = f"UART{link.get('uart', 1)} at {link.get('baudrate', 115200)} baud" if link["kind"] == "serial" else "BLE"
    detail = (f"node {config['node_id']}, {link['kind']} link ({where}), sample every {config['sample_s']} s, "
              f"report every {config['report_s']} s, key of {config['key_bytes']} bytes ({config['key_id']})")
    if registry is None:
        return Item("config", True, detail)
    try:
        info = Registry(registry).get(config["node_id"])
    except ConfigError as exc:
        raise SiteError(str(exc)) from None
    if info is None:
        return Item("config", False, f"{detail}; node {config['node_id']} is not in {registry}",
                    "gonggi node provision (it registers the node)")
    if key_fingerprint(info.key) != config["key_id"]:
        return Item("config", False, f"{detail}; {registry} has another key ({key_fingerprint(info.key)}): "
                    "the gateway rejects its packets", "gonggi node provision")
    return Item("config", True, f"{detail}; registered in {registry} with this key")


def _node_item(node: Mapping[str, Any] | None, status: Mapping[str, Any]) -> Item:
    firmware = status["firmware"]
    if node is None:
        if "error" in status["config"]:
            why = "its config.json is not valid"
        else:
            why = "it stopped or never started"
        return Item("node", False, f"not running: {why}",
                    "reset the board and watch its console (mpremote connect PORT repl)")
    return Item("node", True, f"running firmware {firmware['version']}: boot {node['boot']}, up "
                f"{node['uptime_ms'] // 1000} s, {node['reports']} report(s), {size(status['mem_free'])} RAM free")


def _sensor_items(board: Board, config: Mapping[str, Any], node: Mapping[str, Any] | None) -> list[Item]:
    specs: Sequence[Mapping[str, Any]] = config["sensors"]
    try:
        site = parse_site({"sensors": list(specs), "link": config["link"]}, "config.json")
        buses: dict[str, BusReport] = {r.sensor.name: r for r in scan(board, site.i2c_sensors())}
    except SiteError:
        buses = {}  # a config the firmware accepts but this tool does not know: the node's own word counts
    items = []
    for i, spec in enumerate(specs):
        name = spec.get("name", spec["driver"])
        problems, facts = [], [spec["driver"]]
        bus = buses.get(name)
        if bus is not None:
            (facts if bus.present else problems).append(bus.describe())
        if node is not None and i < len(node["sensors"]):
            state = node["sensors"][i]
            if state["error"]:
                problems.append(f"did not start: {state['error']}")
            flags = state["flags"]
            (problems if flags & _FAILING else facts).append(flag_names(flags))
            facts.append(f"{state['samples']} sample(s) this interval")
        hint = "check its wiring and power" if spec["driver"] in DRIVERS else ""
        items.append(Item(f"sensor {name}", not problems, "; ".join(problems + facts), hint if problems else ""))
    return items


def _link_item(node: Mapping[str, Any] | None) -> Item:
    if node is None:
        return Item("link", False, "the node is not running", "see the node item")
    link = node["link"]
    facts = f"backlog {link['backlog']} packet(s), {link['dropped']} dropped, time {'synced' if link['synced'] else 'not synced'}"
    if not link["up"]:
        return Item("link", False, f"{link['kind']}: no gateway connected; {facts}", "is the gateway in range and running?")
    if not link["linked"]:
        return Item("link", False, f"{link['kind']}: no gateway has answered since the node started; {facts}",
                    "is the gateway running with this node in its registry, the data UART wired (TX to RX, GND)?")
    return Item("link", True, f"{link['kind']}: a gateway answers; {facts}")


def show(items: Sequence[Item], ui: Ui, port: str) -> None:
    table = Table(title=f"gonggi node check {port}", title_justify="left")
    table.add_column("item")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for item in items:
        result = "[green]PASS[/green]" if item.passed else "[bold red]FAIL[/bold red]"
        table.add_row(escape(item.name), result, escape(item.detail))
    ui.console.print(table)
    for item in items:
        if not item.passed and item.hint:
            ui.say(f"{item.name}: {item.hint}")
