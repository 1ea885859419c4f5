"""``gonggi demo``: emulated nodes -> gateway -> local archive, with a live terminal view.

Each node is an emulated ESP32 running the real firmware (compiled with mpy-cross, as flashed)
with a battery divider, a BME280 and an SCD41 on its buses; their values follow a short scripted
day (a room filling with people: CO2 and temperature rise). The gateway is the real service
with one serial link per node and the embedded archive as its upstream: no broker needed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import shutil
import signal
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gonggi_gateway.config import parse_config
from gonggi_gateway.service import Gateway
from gonggi_gateway.state import Snapshot
from gonggi_tools.fleet import EmulatedNode, NodeSpec, gateway_toml, registry_toml

__all__ = ["add_parser", "demo_specs", "run_demo"]

GATEWAY_ID = "gw-demo"
REFRESH_S = 0.5
# (column title, reading name, decimals)
COLUMNS = (
    ("bat V", "bat.v", 2),
    ("T °C", "bme.t", 2),
    ("RH %", "bme.rh", 1),
    ("p hPa", "bme.p", 1),
    ("CO2 ppm", "scd4x.co2", 0),
)


def demo_specs(count: int) -> list[NodeSpec]:
    """``count`` nodes, each in a room of its own: different start values and occupancy."""
    specs = []
    for i in range(count):
        occupancy = 1.0 + 0.5 * i  # people per minute, roughly: CO2 climbs faster in busier rooms
        scenario = {
            "values": {
                "battery_v": [[0, 4.05 - 0.1 * i], [3600, 3.85 - 0.1 * i]],
                "temperature_c": [[0, 20.5 + i], [600, 22.0 + i + 0.5 * occupancy]],
                "humidity_rh": [[0, 45.0 + 3 * i], [600, 48.0 + 3 * i]],
                "pressure_pa": 100_900.0 + 150 * i,
                "co2_ppm": [[0, 430.0], [600, 430.0 + 400 * occupancy]],
            }
        }
        specs.append(NodeSpec(
            f"demo-{i + 1:02d}",
            secrets.token_bytes(32),
            sensors=[{"driver": "battery", "pin": 35}, {"driver": "bme280"}, {"driver": "scd4x"}],
            bench={"device": [
                {"kind": "battery", "bus": "adc35"},
                {"kind": "bme280", "bus": "i2c0"},
                {"kind": "scd41", "bus": "i2c0"},
            ]},
            scenario=scenario,
            settings={"sample_s": 1, "report_s": 5},
        ))
    return specs


@dataclass(frozen=True)
class Summary:
    packets: dict[str, int]  # per node, stored by the gateway
    archived: int  # packets in the archive
    rejected: dict[str, int]

    @property
    def ok(self) -> bool:
        return all(self.packets.values()) and self.archived == sum(self.packets.values())


def _view(snap: Snapshot, started: float, archived: int) -> Group:
    table = Table(title=f"gonggi demo — gateway {snap.gateway_id} — {snap.taken_at - started:.0f} s")
    for title in ("node", "boot", "packets", "seen", *(c[0] for c in COLUMNS)):
        table.add_column(title, justify="right" if title != "node" else "left")
    for node_id, node in snap.nodes.items():
        latest = {r.name: r.value for r in node.readings}
        seen = "—" if node.last_seen is None else f"{snap.taken_at - node.last_seen:.0f} s"
        cells = []
        for _, name, decimals in COLUMNS:
            value = latest.get(name)
            if name == "bme.p" and isinstance(value, (int, float)):
                value = value / 100
            cells.append("—" if not isinstance(value, (int, float)) else f"{value:.{decimals}f}")
        table.add_row(node_id, str(node.boot or "—"), str(node.packets), seen, *cells)
    uplinks = "; ".join(f"{u.name} {u.delivered} delivered, {u.pending} pending" for u in snap.uplinks)
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(snap.rejected.items())) or "none"
    return Group(table, Text(f"spool {snap.spool_depth} · {uplinks} · archive holds {archived} packets"),
                 Text(f"rejected: {rejected}"))


async def run_demo(workdir: Path, nodes: int, duration: float | None, console: Console) -> Summary:
    """Run the demo in ``workdir`` until ``duration`` seconds passed (or forever), then summarise."""
    specs = demo_specs(nodes)
    registry = workdir / "nodes.toml"
    registry.write_text(registry_toml(specs))
    async with contextlib.AsyncExitStack() as stack:
        console.print(f"starting {nodes} emulated node(s) in {workdir} …")
        boards = [await stack.enter_async_context(EmulatedNode(spec, workdir)) for spec in specs]
        text = gateway_toml(GATEWAY_ID, ports=[b.data_port for b in boards], registry=registry,
                            spool=workdir / "spool.sqlite", archive=workdir / "archive.sqlite")
        (workdir / "gateway.toml").write_text(text)
        config = parse_config(tomllib.loads(text), str(workdir / "gateway.toml"), workdir)
        gateway = await stack.enter_async_context(Gateway(config))
        archive = gateway.archive
        assert archive is not None  # the configuration above always has one
        serving = asyncio.create_task(gateway.run(), name="gateway")
        started = time.time()
        # Ctrl-C ends the demo like --duration does: with the summary.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        stack.callback(loop.remove_signal_handler, signal.SIGINT)
        try:
            with Live(console=console, refresh_per_second=4) as live:
                while not stop.is_set() and (duration is None or time.time() - started < duration):
                    if serving.done():
                        serving.result()  # the gateway crashed: show why
                    live.update(_view(gateway.snapshot(), started, await archive.count()))
                    await asyncio.sleep(REFRESH_S)
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
        snap = gateway.snapshot()
        return Summary({n: s.packets for n, s in snap.nodes.items()}, await archive.count(), dict(snap.rejected))


def _print_summary(summary: Summary, console: Console) -> None:
    console.print()
    for node_id, count in summary.packets.items():
        console.print(f"{node_id}: {count} packets stored")
    console.print(f"archive: {summary.archived} packets; rejected: {summary.rejected or 'none'}")
    console.print("demo OK: every node delivered, every packet archived" if summary.ok
                  else "demo FAILED: a node delivered nothing or the archive is missing packets")


def _main(args: argparse.Namespace) -> int:
    console = Console()
    keep = args.workdir is not None
    workdir = Path(args.workdir) if keep else Path(tempfile.mkdtemp(prefix="gonggi-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        summary = asyncio.run(run_demo(workdir, args.nodes, args.duration, console))
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    _print_summary(summary, console)
    return 0 if summary.ok else 1


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("demo", help="emulated nodes -> gateway -> archive, with a live view",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=3, help="emulated nodes (default 3)")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds with a summary")
    parser.add_argument("--workdir", type=Path, metavar="DIR",
                        help="keep flash, logs, spool and archive in DIR (default: a temp dir, removed)")
    parser.set_defaults(func=_main)
