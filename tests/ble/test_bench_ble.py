"""`gonggi bench ble`, scaled down: firmware nodes on the VM, the radio and the gateway, and a JSON
object that says what it promises (the delay goal is the benchmark's own exit status)."""

from __future__ import annotations

import argparse
import json

from gonggi_tools import bench, bench_ble


def test_bench_ble_is_registered() -> None:
    assert "gonggi_tools.bench_ble" in bench.BENCHMARKS


def test_a_small_fleet_delivers_every_expected_reading_and_reports_the_figures(capsys) -> None:
    parser = argparse.ArgumentParser(prog="gonggi bench")
    bench_ble.add_parser(parser.add_subparsers(dest="bench"))
    args = parser.parse_args(["ble", "--json", "--nodes", "6", "--per-vm", "3", "--interval", "10",
                              "--intervals", "2", "--time-scale", "4"])
    status = args.func(args)
    report = json.loads(capsys.readouterr().out)
    assert (report["nodes"], report["slots"], report["interval_s"], report["vm_processes"]) == (6, 8, 10, 2)
    # Six nodes spread over the first 10 s report at 10 s steps: each has its first reading
    # more than one interval before the end (30 s), some a second one too.
    assert 6 <= report["expected"] <= 12
    assert report["delivered"] == report["expected"]
    assert report["unknown"] == 0
    assert 0 < report["p50_delay_s"] <= report["p95_delay_s"] <= report["max_delay_s"]
    assert report["sessions"] >= report["nodes"]  # each node is visited at least once
    assert 1 <= report["max_concurrent_connections"] <= 8
    assert status == (0 if report["p95_delay_s"] < 10 else 1)
