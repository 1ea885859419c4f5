"""``gonggi bench noise``: the node's noise metering path on the emulated board's VM, timed.

One VM run times, per second of 48 kHz audio, the firmware's fixed-point path (NoiseMeter:
slot unpacking, A-weighting cascade, block energy, Fast level, histogram) and a plain float
implementation of the same A-weighting (three @micropython.native float biquads and a float
sum of squares), each as the best of several repeats. Printed as fractions of real time and
their ratio; the goal on this machine is <= 0.005 and >= 10x faster than float.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import textwrap
from pathlib import Path

from gonggi_emu.vm import FIRMWARE_DIR, VMNotInstalled, vm_command, vm_env

__all__ = ["add_parser", "measure", "run", "GOAL_FRACTION", "GOAL_SPEEDUP"]

GOAL_FRACTION = 0.005
GOAL_SPEEDUP = 10.0
RATE = 48000
BLOCK = 256
REPEATS = 15   # the fixed-point path; the float one, 10x slower, gets a third of them

# Runs on the VM with firmware/ on its path. The meter reads from a stand-in I2S whose
# readinto() copies a prepared block with a viper loop (the DMA's copy on a board); the float
# path filters the same samples.
_SCRIPT = """
import array, math, time, micropython
from noise import NoiseMeter, weighting

RATE = {rate}
BLOCK = {block}
REPEATS = {repeats}
SECONDS = 1

# A 1 kHz tone at -26 dBFS plus a little 3 kHz, as 32-bit slots (24-bit sample << 8).
SRC = array.array("i", [
    (int(420426 * math.sin(2 * math.pi * 1000 * i / RATE) + 40000 * math.sin(2 * math.pi * 3000 * i / RATE))) << 8
    for i in range(BLOCK)
])


@micropython.viper
def copy(dst, src, n: int):
    d = ptr32(dst)
    s = ptr32(src)
    for i in range(n):
        d[i] = s[i]


class BlockSource:
    def readinto(self, buf):
        copy(buf, SRC, BLOCK)
        return 4 * BLOCK


meter = NoiseMeter(BlockSource(), rate=RATE, block=BLOCK)
blocks = SECONDS * RATE // BLOCK
for _ in range(200):          # past the warm-up: the timed blocks take the measuring path
    meter.feed()


def time_fixed():
    t0 = time.ticks_us()
    for _ in range(blocks):
        meter.feed()
    return time.ticks_diff(time.ticks_us(), t0)


# The float path: A-weighting as three biquads (the high-pass pairs, then the f4 pair).
secs = weighting.design("A", RATE)
coef = []
for k in (0, 2):
    p1 = 1.0 - secs[k][1][0]
    p2 = 1.0 - secs[k + 1][1][0]
    coef += [1.0, -2.0, 1.0, -(p1 + p2), p1 * p2]
coef += list(secs[4][1])
COEF = array.array("f", coef)
STATE = array.array("f", [0.0] * 6)
FIN = array.array("i", bytes(4 * BLOCK))
FOUT = array.array("f", [0.0])


@micropython.native
def float_block(buf, n, c, st, out):
    # Three transposed direct form II biquads, unrolled, state in locals.
    b00, b01, b02, a01, a02 = c[0], c[1], c[2], c[3], c[4]
    b10, b11, b12, a11, a12 = c[5], c[6], c[7], c[8], c[9]
    b20, b21, b22, a21, a22 = c[10], c[11], c[12], c[13], c[14]
    s01, s02, s11, s12, s21, s22 = st[0], st[1], st[2], st[3], st[4], st[5]
    acc = 0.0
    for i in range(n):
        x = float(buf[i] >> 8)
        y = b00 * x + s01
        s01 = b01 * x - a01 * y + s02
        s02 = b02 * x - a02 * y
        x = y
        y = b10 * x + s11
        s11 = b11 * x - a11 * y + s12
        s12 = b12 * x - a12 * y
        x = y
        y = b20 * x + s21
        s21 = b21 * x - a21 * y + s22
        s22 = b22 * x - a22 * y
        acc += y * y
    st[0], st[1], st[2], st[3], st[4], st[5] = s01, s02, s11, s12, s21, s22
    out[0] = acc


def time_float():
    t0 = time.ticks_us()
    for _ in range(blocks):
        copy(FIN, SRC, BLOCK)
        float_block(FIN, BLOCK, COEF, STATE, FOUT)
    return time.ticks_diff(time.ticks_us(), t0)


fixed = min(time_fixed() for _ in range(REPEATS))
flt = min(time_float() for _ in range(max(1, REPEATS // 3)))
audio_us = blocks * BLOCK * 1000000 // RATE
print("RESULT", fixed, flt, audio_us)
"""


def measure(repeats: int = REPEATS) -> dict[str, float]:
    """Run the timing script on the VM; the figures as a dict."""
    script = _SCRIPT.format(rate=RATE, block=BLOCK, repeats=repeats)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_noise.py"
        path.write_text(textwrap.dedent(script))
        proc = subprocess.run(
            vm_command(str(path)), cwd=tmp, env=vm_env([FIRMWARE_DIR]), capture_output=True, text=True, timeout=300
        )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the benchmark failed on the VM:\n{proc.stdout}{proc.stderr}")
    fixed_us, float_us, audio_us = (int(v) for v in lines[-1].split()[1:])
    fixed = fixed_us / audio_us
    flt = float_us / audio_us
    return {
        "realtime_fraction": fixed,
        "float_realtime_fraction": flt,
        "speedup": flt / fixed,
        "rate": RATE,
        "block": BLOCK,
        "repeats": repeats,
        "goal_realtime_fraction": GOAL_FRACTION,
        "goal_speedup": GOAL_SPEEDUP,
    }


def run(json_out: bool, repeats: int = REPEATS) -> int:
    """Measure and print; 0 when both goals are met, 1 when not, 2 when the VM is missing."""
    try:
        r = measure(repeats)
    except VMNotInstalled as exc:
        print(f"gonggi bench noise: {exc}")
        return 2
    if json_out:
        print(json.dumps(r))
    else:
        print(f"noise metering, {RATE} Hz audio in blocks of {BLOCK}, best of {r['repeats']} runs:")
        print(f"  fixed point (viper): {r['realtime_fraction']:.5f} of real time (goal <= {GOAL_FRACTION})")
        print(f"  float (native):      {r['float_realtime_fraction']:.5f} of real time")
        print(f"  speed-up:            {r['speedup']:.1f}x (goal >= {GOAL_SPEEDUP:g}x)")
    ok = r["realtime_fraction"] <= GOAL_FRACTION and r["speedup"] >= GOAL_SPEEDUP
    return 0 if ok else 1


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "noise", help="time A-weighted noise metering on the emulated board's VM (fixed point vs float)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=REPEATS, metavar="N",
                        help=f"best of N runs of the fixed-point path, N/3 of the float one (default {REPEATS})")
    parser.set_defaults(func=lambda args: run(args.json, args.repeats))
