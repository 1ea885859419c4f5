"""``gonggi bench memory``: heap allocated by steady-state sampling of every sensor the node supports.

An emulated board with the six air-quality sensors and the battery divider, the real firmware
(compiled as flashed), and ``probes/memory.py`` as its main.py: it runs the node's sampling
cycle with ``gc`` disabled and reports ``gc.mem_alloc()`` across many cycles, the samples each
sensor contributed (so a sensor that silently failed does not pass as "allocates nothing"), and
what one report allocates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from gonggi_emu.bench import Bench
from gonggi_emu.scenario import Scenario
from gonggi_emu.supervisor import EmulatedBoard
from gonggi_tools.firmware_image import compile_module, provision_flash

__all__ = ["ALL_SENSORS", "add_parser", "measure"]

PROBE = Path(__file__).with_name("probes") / "memory.py"
# UART1 and UART2 carry the PM sensors: the probe needs no link.
ALL_SENSORS = {
    "slot_size": 2048,  # every sensor's channels: a report takes up to ~1.1 KB
    "sensors": [
        {"driver": "pms5003", "uart": 1},
        {"driver": "sds011", "uart": 2},
        {"driver": "sps30"},
        {"driver": "scd4x"},
        {"driver": "bme280"},
        {"driver": "sgp40"},
        {"driver": "battery", "pin": 35},
    ],
    "bench": {
        "device": [
            {"kind": "pms5003", "bus": "uart1"},
            {"kind": "sds011", "bus": "uart2"},
            {"kind": "sps30", "bus": "i2c0"},
            {"kind": "scd41", "bus": "i2c0"},
            {"kind": "bme280", "bus": "i2c0"},
            {"kind": "sgp40", "bus": "i2c0"},
            {"kind": "battery", "bus": "adc35"},
        ]
    },
}
# A street corner on a hazy afternoon; the other sensors' defaults are indoor air.
SCENARIO = {"values": {"pm2_5_ugm3": 18.0, "temperature_c": 24.0, "humidity_rh": 55.0}}
_RESULT = re.compile(rb"MEMORY (\{.*\})\r\n")
_TIMEOUT_S = 240.0


async def measure(workdir: Path) -> dict[str, Any]:
    flash = workdir / "flash"
    flash.mkdir()
    provision_flash(flash, {"node_id": "bench-mem", "key": "00" * 32, "sensors": ALL_SENSORS["sensors"],
                            "slot_size": ALL_SENSORS["slot_size"]})
    # Compiled like the firmware: compiling a script at boot would itself take the heap it measures.
    compile_module(PROBE, flash / "memory_probe.mpy", name="memory_probe.py")
    (flash / "main.py").write_text("import memory_probe\n")
    board = EmulatedBoard(flash, Bench.from_dict(ALL_SENSORS["bench"]), Scenario.from_dict(SCENARIO), workdir / "log")
    async with board:
        match = await board.expect(_RESULT, timeout=_TIMEOUT_S)
    result: dict[str, Any] = json.loads(match[1])
    return result


def run(json_out: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="gonggi-bench-memory-") as tmp:
        r = asyncio.run(measure(Path(tmp)))
    silent = sorted(name for name, n in r["samples"].items() if n == 0)
    if json_out:
        print(json.dumps({**r, "bytes_per_cycle": r["sampling_bytes"] / r["cycles"], "silent_sensors": silent}))
    else:
        print(f"steady-state sampling of {len(r['samples'])} sensors on the emulated board, {r['cycles']} cycles:")
        print(f"  heap allocated: {r['sampling_bytes']} bytes ({r['sampling_bytes'] / r['cycles']:g} per cycle; goal 0)")
        print("  samples taken:  " + ", ".join(f"{k} {v}" for k, v in r["samples"].items()))
        print(f"  one report:     {r['report_bytes']} bytes allocated")
        print(f"  heap after:     {r['used']} bytes used, {r['free']} free")
    return 0 if r["sampling_bytes"] == 0 and not silent else 1


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("memory", help="heap allocated per sampling cycle with every sensor (goal: 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=lambda args: run(args.json))
