"""``gonggi bench drain``: how fast the spool drains to a real broker after an outage, against the
ingest rate that filled it.

A broker outage of ``--outage-min`` minutes at ``--ingest-rate`` packets/s leaves that many
packets in the spool (put there by the real ingest pipeline, verified and acked). Then Debian's
mosquitto comes back and the MQTT uplink drains the backlog, with its configured batching,
while the nodes go on at the same rate. Printed: the drain rate (packets confirmed by PUBACK per
second until the spool is empty) and its ratio to the ingest rate; the goal is at least 10x.
One CPU, as ``gonggi bench ingest``, so ingest, spool and uplink share it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from gonggi_emu.broker import BrokerError, Mosquitto
from gonggi_gateway.config import MqttConfig
from gonggi_gateway.ingest import Ingest
from gonggi_gateway.protocol import Frame, FrameType
from gonggi_gateway.registry import Registry
from gonggi_gateway.retry import Backoff
from gonggi_gateway.spool import Spool
from gonggi_gateway.state import Pulse
from gonggi_gateway.uplinks import Drainer
from gonggi_gateway.uplinks.mqtt import MqttUplink
from gonggi_tools.bench_ingest import KEY, T0, BenchLink, pin_to_one_cpu, make_packets

__all__ = ["GOAL_RATIO", "add_parser", "measure"]

GOAL_RATIO = 10.0
NODES = 16


async def _ingest(ingest: Ingest, links: dict[str, BenchLink], frames: dict[str, list[Frame]], start: int,
                  count: int) -> None:
    """Hand ``count`` packets per node, from ``start``, to ingest as their links deliver them."""
    for node, node_frames in frames.items():
        await ingest.handle(links[node], node_frames[start:start + count])


async def _steady(ingest: Ingest, links: dict[str, BenchLink], frames: dict[str, list[Frame]], start: int,
                  rate: float, stop: asyncio.Event) -> int:
    """Ingest at ``rate`` packets/s (in 16 ms rounds, every node in turn) until ``stop``; the count."""
    per_round = rate * 0.016 / len(frames)
    done = 0.0
    sent = start
    began = time.monotonic()
    while not stop.is_set():
        done += per_round
        while done >= 1:
            await _ingest(ingest, links, frames, sent, 1)
            sent += 1
            done -= 1
        rounds = round((time.monotonic() - began) / 0.016) + 1
        await asyncio.sleep(max(0.0, began + rounds * 0.016 - time.monotonic()))
    return (sent - start) * len(frames)


async def _run(workdir: Path, rate: float, outage_s: float) -> dict[str, Any]:
    backlog_per_node = round(rate * outage_s / NODES)
    packets = make_packets(NODES, backlog_per_node * 2 + 1000)
    frames = {node: [Frame(FrameType.DATA, b) for b in bodies] for node, bodies in packets.items()}
    (workdir / "nodes.toml").write_text("".join(f'[nodes."{n}"]\nkey = "{KEY.hex()}"\n' for n in packets))
    registry = Registry(workdir / "nodes.toml")
    async with Mosquitto(workdir / "broker") as broker, Spool(workdir / "spool.sqlite", ["mqtt"]) as spool:
        await broker.stop()  # the outage
        ingest = Ingest(spool, registry, Pulse(), clock=lambda: float(T0 + 1))
        links = {node: BenchLink(f"bench:{node}") for node in packets}
        for start in range(0, backlog_per_node, 64):
            await _ingest(ingest, links, frames, start, min(64, backlog_per_node - start))
        backlog = spool.depth()
        config = MqttConfig(host=broker.host, port=broker.port, client_id="gonggi-bench-drain")
        async with MqttUplink(config, "gw-bench") as uplink:
            await broker.start()  # back
            drainer = Drainer(spool, uplink, batching=uplink.batching, backoff=Backoff(0.1, 1.0))
            stop = asyncio.Event()
            started = time.perf_counter()
            draining = asyncio.create_task(drainer.run())
            producing = asyncio.create_task(_steady(ingest, links, frames, backlog_per_node, rate, stop))
            while spool.depth() > NODES:  # down to what the nodes send meanwhile
                await asyncio.sleep(0.01)
            seconds = time.perf_counter() - started
            stop.set()
            ingested = await producing
            draining.cancel()
            await asyncio.gather(draining, return_exceptions=True)
    drained = drainer.delivered
    return {
        "ingest_rate_packets_per_s": rate,
        "outage_s": outage_s,
        "backlog_packets": backlog,
        "ingested_while_draining": ingested,
        "drained_packets": drained,
        "drain_seconds": seconds,
        "drain_packets_per_s": drained / seconds,
        "ratio": drained / seconds / rate,
        "batch_size": uplink.batching.size,
        "failures": drainer.failures,
        "goal_ratio": GOAL_RATIO,
    }


def measure(rate: float = 100.0, outage_min: float = 5.0) -> dict[str, Any]:
    cpu = pin_to_one_cpu()
    with tempfile.TemporaryDirectory(prefix="gonggi-bench-drain-") as tmp:
        result = asyncio.run(_run(Path(tmp), rate, outage_min * 60))
    return result | {"cpu": cpu}


def run(args: argparse.Namespace) -> int:
    """Measure and print; 0 when the goal is met, 1 when not, 2 without mosquitto."""
    try:
        r = measure(args.ingest_rate, args.outage_min)
    except BrokerError as exc:
        print(f"gonggi bench drain: {exc}")
        return 2
    if args.json:
        print(json.dumps(r))
    else:
        print(f"drain after a {r['outage_s'] / 60:g} min broker outage at {r['ingest_rate_packets_per_s']:g} packets/s, "
              f"one CPU ({r['cpu']}), MQTT QoS 1 to mosquitto in batches of {r['batch_size']}:")
        print(f"  backlog: {r['backlog_packets']:,} packets; ingested meanwhile: {r['ingested_while_draining']:,}")
        print(f"  drained {r['drained_packets']:,} packets in {r['drain_seconds']:.2f} s: "
              f"{r['drain_packets_per_s']:,.0f} packets/s")
        print(f"  ratio: {r['ratio']:.0f}x the ingest rate (goal >= {GOAL_RATIO:g}x)")
    return 0 if r["ratio"] >= GOAL_RATIO else 1


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("drain", help="how fast the spool drains to a real broker after an outage, "
                                                 "against the ingest rate")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--ingest-rate", type=float, default=100.0, metavar="N",
                        help="packets/s from the nodes, during and after the outage (default 100)")
    parser.add_argument("--outage-min", type=float, default=5.0, metavar="MIN",
                        help="minutes the broker is away (default 5)")
    parser.set_defaults(func=run)
