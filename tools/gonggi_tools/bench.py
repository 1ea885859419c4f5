"""``gonggi bench …``: figures measured in one run, printed as ratios (machines here are shared)."""

from __future__ import annotations

import argparse
import importlib

__all__ = ["add_parser"]

# Each benchmark module exposes add_parser(subparsers) for its own `gonggi bench NAME`.
BENCHMARKS = ("gonggi_tools.bench_noise", "gonggi_tools.bench_memory", "gonggi_tools.bench_ble",
              "gonggi_tools.bench_ingest", "gonggi_tools.bench_drain")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="print performance and memory figures")
    sub = parser.add_subparsers(dest="bench", required=True, metavar="BENCH")
    for name in BENCHMARKS:
        importlib.import_module(name).add_parser(sub)
