"""``gonggi bench ingest``: verified-and-committed packets per second on one core, against its parts.

The real pipeline: ``Ingest.run_link`` on each node's link, which delivers its DATA frames in
bursts (many nodes at once; a link's next burst is verified while its last one is committed),
each packet's envelope read and its HMAC checked, the replay check, one SQLite commit for
everything that arrived together (the gateway's durability settings), then the acks.
The process is pinned to one CPU, so the spool's database thread shares it.

In the same run, the raw parts that every packet needs, each measured alone on the same packets:
cbor2's decode of the COSE message, HMAC-SHA256 over its MAC structure, and SQLite's batched
insert of the same rows into a spool of the same schema, in commits of the size the pipeline
made. Their limit is 1 / (sum of the three times per packet); the goal is a pipeline at or above
half of it and at or above 50,000 packets/s.

What the pipeline does instead of the generic part (said so in the output): it does not run
cbor2 over each packet. The envelope is checked against the one byte layout nodes write and the
SenML payload against the node's shape (see gonggi_gateway/verify.py); cbor2 decodes a node's
first packets and anything unusual. The payload becomes SenML JSON when a row is read for
upstream, whose cost per packet is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cbor2

from gonggi_gateway.errors import LinkError
from gonggi_gateway.links.base import Link
from gonggi_gateway.protocol import Frame, FrameType, encode_pack, mac0_encode
from gonggi_gateway.registry import Registry
from gonggi_gateway.spool import MIGRATIONS as SPOOL_SCHEMA
from gonggi_gateway.spool import Spool
from gonggi_gateway.state import Pulse
from gonggi_gateway.ingest import Ingest
from gonggi_gateway.verify import senml_records

__all__ = ["GOAL_PACKETS_PER_S", "GOAL_RATIO", "BenchLink", "add_parser", "make_packets", "measure", "pin_to_one_cpu"]

GOAL_PACKETS_PER_S = 50_000
GOAL_RATIO = 0.5
T0 = 1_764_000_000  # the nodes' clock: synced, as in the field
KEY = bytes(range(32))
# A full report as nodes send it (test vector data-multi-unsynced, synced): name, unit, decimals.
CHANNELS = (("pms.pm25", "ug/m3", 1), ("pms.pm10", "ug/m3", 1), ("pms.n", "", 0), ("pms.health", "", 0),
            ("bme.t", "Cel", 2), ("bme.rh", "%RH", 2), ("bme.p", "Pa", 0), ("bme.n", "", 0))
START = (12.5, 20.1, 11, 0, -5.25, 43.12, 101325, 12)
STEP = (0.3, 0.5, 0, 0, 0.05, 0.2, 3, 0)  # a random walk per report, at each sensor's resolution


class BenchLink(Link):
    """A link with a node's backlog waiting: ``receive`` returns the next ``burst`` frames, then
    ends the link; the acks are counted (all a link handed to ``Ingest.handle`` does)."""

    def __init__(self, name: str, frames: Sequence[Frame] = (), burst: int = 64) -> None:
        self.name = name
        self.sent = 0
        self._frames = list(frames)
        self._burst = burst
        self._next = 0

    async def receive(self) -> list[Frame]:
        start = self._next
        if start >= len(self._frames):
            raise LinkError(f"{self.name}: every frame delivered")
        self._next = start + self._burst
        return self._frames[start:self._next]

    async def send(self, ftype: int, body: bytes) -> None:
        self.sent += 1

    @property
    def is_open(self) -> bool:
        return True

    @property
    def frame_errors(self) -> dict[str, int]:
        return {}


def make_packets(nodes: int, per_node: int, seed: int = 1) -> dict[str, list[bytes]]:
    """DATA frame bodies (u32 uptime + COSE_Mac0) of ``nodes`` nodes, ``per_node`` reports each."""
    rng = random.Random(seed)
    out: dict[str, list[bytes]] = {}
    for n in range(nodes):
        node = f"gg-{n:06x}"
        values = list(START)
        bodies = []
        for seq in range(per_node):
            values = [round(v + rng.uniform(-s, s), d) if s else v for v, s, (_, _, d) in zip(values, STEP, CHANNELS)]
            readings = [(name, unit, v) for (name, unit, _), v in zip(CHANNELS, values)]
            cose = mac0_encode(KEY, node.encode(), 1, seq, encode_pack(T0 + 60 * seq, readings))
            bodies.append((100_000 + 60_000 * seq).to_bytes(4, "big") + cose)
        out[node] = bodies
    return out


def pin_to_one_cpu() -> int | None:
    with contextlib.suppress(AttributeError, OSError):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return cpu
    return None


async def _pipeline(workdir: Path, packets: dict[str, list[bytes]], burst: int, synchronous: str,
                    commit_window: float) -> tuple[float, float, str]:
    """One run: seconds from the first frame to the last ack, packets per commit, durability."""
    registry_path = workdir / "nodes.toml"
    registry_path.write_text("".join(f'[nodes."{n}"]\nkey = "{KEY.hex()}"\n' for n in packets))
    registry = Registry(registry_path)
    async with Spool(workdir / "spool.sqlite", ["bench"], synchronous=synchronous,
                     commit_window=commit_window) as spool:
        ingest = Ingest(spool, registry, Pulse(), clock=lambda: float(T0 + 1))
        links = {node: BenchLink(f"bench:{node}", [Frame(FrameType.DATA, body) for body in bodies], burst)
                 for node, bodies in packets.items()}
        started = time.perf_counter()
        await asyncio.gather(*map(ingest.run_link, links.values()))
        seconds = time.perf_counter() - started
        stats = spool.stats()
        total = sum(map(len, packets.values()))
        if stats.stored != total or any(link.sent == 0 for link in links.values()):
            raise RuntimeError(f"the pipeline stored {stats.stored} of {total} packets")
        return seconds, stats.stored / max(stats.commits, 1), spool.durability


def _best(fn: Any, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def _parts(workdir: Path, bodies: Sequence[bytes], commit_size: int, synchronous: str,
           repeats: int) -> dict[str, float]:
    """Seconds per packet of each raw part, best of ``repeats``."""
    coses = [b[4:] for b in bodies]
    loads = cbor2.loads

    def decode() -> None:
        for cose in coses:
            loads(cose)

    macs = []
    for cose in coses:
        protected, _, payload, _ = loads(cose).value
        macs.append(cbor2.dumps(["MAC0", protected, b"", payload]))

    # HMAC at its fastest, as the gateway computes it: the key's inner and outer hashes set up
    # once, copied per packet (half the cost of a one-shot hmac.digest).
    keyed = hmac.new(KEY, digestmod="sha256")

    def authenticate() -> None:
        for mac in macs:
            h = keyed.copy()
            h.update(mac)
            h.digest()

    rows = [(f"gg-{i % 16:06x}", 1, i, float(T0), cose, None, 100_000) for i, cose in enumerate(coses)]
    batches = [rows[i:i + commit_size] for i in range(0, len(rows), commit_size)]
    conn = sqlite3.connect(workdir / "parts.sqlite", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        for step in SPOOL_SCHEMA:
            for statement in step:
                conn.execute(statement)

        def insert() -> None:
            conn.execute("DELETE FROM packets")
            for batch in batches:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT INTO packets (node, boot, seq, received_at, cose, records, uptime_ms) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)", batch)
                conn.execute("COMMIT")

        count = len(bodies)
        return {
            "cbor2_decode": _best(decode, repeats) / count,
            "hmac": _best(authenticate, repeats) / count,
            "sqlite_insert": _best(insert, repeats) / count,
        }
    finally:
        conn.close()


def _conversion(packets: dict[str, list[bytes]], repeats: int) -> float:
    """Seconds per packet to make a spooled row's SenML JSON (when it is read for upstream)."""
    rows = [(node, body[4:], int.from_bytes(body[:4], "big")) for node, bodies in packets.items() for body in bodies]
    return _best(lambda: [senml_records(n, c, u, float(T0 + 1)) for n, c, u in rows], repeats) / len(rows)


def measure(nodes: int = 16, per_node: int = 4000, burst: int = 64, repeats: int = 3,
            synchronous: str = "full", commit_window: float = 0.0) -> dict[str, Any]:
    """Run the pipeline and its parts; the figures as a dict."""
    cpu = pin_to_one_cpu()
    packets = make_packets(nodes, per_node)
    total = nodes * per_node
    runs = []
    with tempfile.TemporaryDirectory(prefix="gonggi-bench-ingest-") as tmp:
        for i in range(repeats):
            workdir = Path(tmp) / f"run{i}"
            workdir.mkdir()
            runs.append(asyncio.run(_pipeline(workdir, packets, burst, synchronous, commit_window)))
        seconds, per_commit, durability = min(runs)
        bodies = [body for node_bodies in packets.values() for body in node_bodies]
        parts = _parts(Path(tmp), bodies, max(1, round(per_commit)), synchronous, repeats)
    per_packet = sum(parts.values())
    rate = total / seconds
    limit = 1 / per_packet
    return {
        "packets_per_s": rate,
        "parts_limit_packets_per_s": limit,
        "ratio": rate / limit,
        "durability": durability,
        "parts_us": {name: t * 1e6 for name, t in parts.items()},
        "packets": total,
        "nodes": nodes,
        "burst": burst,
        "packets_per_commit": per_commit,
        "repeats": repeats,
        "cpu": cpu,
        "upstream_json_us": _conversion(packets, repeats) * 1e6,
        "goal_packets_per_s": GOAL_PACKETS_PER_S,
        "goal_ratio": GOAL_RATIO,
    }


def _lines(r: dict[str, Any]) -> Iterator[str]:
    parts = r["parts_us"]
    yield (f"ingest: {r['packets']} packets from {r['nodes']} nodes in bursts of {r['burst']}, "
           f"one CPU ({r['cpu']}), best of {r['repeats']} runs, {r['durability']}")
    yield f"  pipeline (verify, replay, commit, ack): {r['packets_per_s']:9,.0f} packets/s " \
          f"({1e6 / r['packets_per_s']:.2f} us each; {r['packets_per_commit']:.0f} packets per commit)"
    yield f"  parts alone:  cbor2 decode {parts['cbor2_decode']:.2f} us + HMAC {parts['hmac']:.2f} us " \
          f"+ SQLite insert {parts['sqlite_insert']:.2f} us = {sum(parts.values()):.2f} us"
    yield f"  parts' limit:                           {r['parts_limit_packets_per_s']:9,.0f} packets/s"
    yield f"  ratio: {r['ratio']:.2f} of the parts' limit (goal >= {GOAL_RATIO}); " \
          f"goal >= {GOAL_PACKETS_PER_S:,} packets/s"
    yield "  the pipeline checks envelopes and payloads by their byte layout; cbor2 decodes only a node's first " \
          "and unusual packets"
    yield f"  not on this path: SenML JSON for upstream, {r['upstream_json_us']:.2f} us per packet when a row is read"


def run(args: argparse.Namespace) -> int:
    """Measure and print; 0 when both goals are met, 1 when not."""
    r = measure(args.nodes, args.per_node, args.burst, args.repeats, args.synchronous, args.commit_window_ms / 1000)
    if args.json:
        print(json.dumps(r))
    else:
        print("\n".join(_lines(r)))
    ok = r["packets_per_s"] >= GOAL_PACKETS_PER_S and r["ratio"] >= GOAL_RATIO
    return 0 if ok else 1


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("ingest", help="verified-and-committed packets per second on one core, "
                                                  "against its raw parts (cbor2, HMAC, SQLite)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--nodes", type=int, default=16, help="nodes, one link each (default 16)")
    parser.add_argument("--per-node", type=int, default=4000, metavar="N", help="packets per node (default 4000)")
    parser.add_argument("--burst", type=int, default=64, metavar="N",
                        help="frames a link delivers at once (default 64: a backlog after an outage)")
    parser.add_argument("--repeats", type=int, default=3, metavar="N", help="best of N runs (default 3)")
    parser.add_argument("--synchronous", choices=("full", "normal"), default="full",
                        help="the spool's durability (default full, as [gateway] synchronous)")
    parser.add_argument("--commit-window-ms", type=float, default=0.0, metavar="MS",
                        help="as [gateway] commit_window_ms (default 0)")
    parser.set_defaults(func=run)
