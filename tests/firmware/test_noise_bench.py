"""`gonggi bench noise` runs its timing script on the VM and reports what it promises (no timing
asserts here: the speed goals are the benchmark's own exit status)."""

from __future__ import annotations

import argparse
import json

from gonggi_tools import bench_noise


def test_bench_reports_both_paths(capsys) -> None:
    parser = argparse.ArgumentParser(prog="gonggi bench")
    bench_noise.add_parser(parser.add_subparsers(dest="bench"))
    args = parser.parse_args(["noise", "--json", "--repeats", "2"])
    status = args.func(args)
    report = json.loads(capsys.readouterr().out)
    assert report["realtime_fraction"] > 0 and report["float_realtime_fraction"] > 0
    assert report["speedup"] == report["float_realtime_fraction"] / report["realtime_fraction"]
    assert report["repeats"] == 2
    assert status == (0 if report["realtime_fraction"] <= 0.005 and report["speedup"] >= 10 else 1)
