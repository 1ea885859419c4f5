"""The ingest and drain benchmarks run and report consistent figures (their goals are figures,
printed by `gonggi bench ...`, not asserted here: this machine's speed is not the code's)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gonggi_emu.broker import find_mosquitto


def bench(*args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "gonggi_tools.cli", "bench", *args, "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr  # 1: a goal missed on this machine, still a report
    return json.loads(done.stdout)


def test_bench_ingest_runs_the_pipeline_over_every_packet_and_reports_its_parts() -> None:
    r = bench("ingest", "--nodes", "2", "--per-node", "300", "--repeats", "1")
    assert r["packets"] == 600 and r["durability"] == "synchronous=full commit_window_ms=0"
    assert set(r["parts_us"]) == {"cbor2_decode", "hmac", "sqlite_insert"}
    limit = 1e6 / sum(r["parts_us"].values())  # type: ignore[union-attr]
    assert r["parts_limit_packets_per_s"] == pytest.approx(limit)
    assert r["ratio"] == pytest.approx(r["packets_per_s"] / limit)  # type: ignore[operator]


def test_bench_drain_empties_an_outages_backlog_through_mosquitto() -> None:
    find_mosquitto()
    r = bench("drain", "--outage-min", "0.05", "--ingest-rate", "320")
    assert r["backlog_packets"] == 320 * 3
    assert r["drained_packets"] >= r["backlog_packets"]  # type: ignore[operator]
    assert r["failures"] == 0
