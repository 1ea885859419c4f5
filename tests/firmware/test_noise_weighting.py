"""The node's weighting filters on the VM: designed coefficients and the fixed-point cascade
measured with sine tones, against IEC 61672-1 class 1 (tests/noise_reference.py)."""

from __future__ import annotations

import ast
import math

import numpy as np
import pytest
from scipy import signal

import noise_reference as ref

RATES = [16000, 32000, 44100, 48000]


def centres(rate: int) -> list[tuple[int, float]]:
    """(index into the IEC tables, exact frequency) of the third-octaves below Nyquist."""
    return [(i, f) for i, f in enumerate(ref.EXACT_HZ) if f < rate / 2]


def assert_class1(weighting: str, rate: int, got_db: dict[int, float], design_tol: float) -> None:
    goal = ref.weighting_db(np.array(ref.EXACT_HZ), weighting)
    for i, db in got_db.items():
        dev = db - goal[i]
        upper, lower = ref.CLASS1_DB[i]
        where = f"{weighting} at {ref.NOMINAL_HZ[i]} Hz, {rate} Hz: {db:.3f} dB vs {goal[i]:.3f}"
        assert dev <= upper and (lower is None or dev >= lower), where + " (class 1)"
        assert abs(dev) <= design_tol, where


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("weighting", ["A", "C", "Z"])
def test_designed_response_is_class_1(mpy, weighting: str, rate: int) -> None:
    freqs = [f for _, f in centres(rate)]
    out = mpy.run(f"""
        import math
        from noise import weighting as w
        secs = w.design({weighting!r}, {rate})
        g1k = w.gain(secs, {rate}, 1000.0)
        print([20 * math.log10(w.gain(secs, {rate}, f) / g1k) for f in {freqs!r}])
    """)
    got = ast.literal_eval(out.strip())
    assert_class1(weighting, rate, {i: db for (i, _), db in zip(centres(rate), got)}, design_tol=0.1)


SINE_SCRIPT = """
import array, math
from noise import weighting as w
from noise.biquad import Cascade
from noise.mic import top

RATE = {rate}
secs = w.design({weighting!r}, RATE, {corner})
casc = Cascade(secs, top(24))
g1k = w.gain(secs, RATE, 1000.0)
buf = array.array("i", bytes(4 * 256))
silence = array.array("i", bytes(4 * 256))
amp = {amp}
res = []
for f in {freqs!r}:
    casc.prime(silence, 256)
    dphi = 2 * math.pi * f / RATE
    period = RATE / f
    # Settle 0.25 s, then fit a sin + b cos by least squares over whole periods (>= 0.1 s):
    # exact for a sine even next to Nyquist, where sin and cos are far from orthogonal.
    settle = RATE // 4
    count = round(max(2, math.ceil(0.1 * f)) * period)
    n = 0
    ss = cc = sc = ys = yc = 0.0
    while n < settle + count:
        for i in range(256):
            buf[i] = int(amp * math.sin(dphi * (n + i))) << 8
        casc.run(buf, 256)
        for i in range(256):
            k = n + i
            if settle <= k < settle + count:
                sk = math.sin(dphi * k)
                ck = math.cos(dphi * k)
                ss += sk * sk
                cc += ck * ck
                sc += sk * ck
                ys += buf[i] * sk
                yc += buf[i] * ck
        n += 256
    det = ss * cc - sc * sc
    ga = (ys * cc - yc * sc) / det
    gb = (yc * ss - ys * sc) / det
    a = math.sqrt(ga * ga + gb * gb) * (1 << casc.shift)
    res.append((20 * math.log10(a / amp / g1k), 20 * math.log10(w.gain(secs, RATE, f) / g1k)))
print(res)
"""


@pytest.mark.parametrize("weighting,rate", [("A", 48000), ("A", 16000), ("C", 32000)])
def test_fixed_point_cascade_measured_with_sines(mpy, weighting: str, rate: int) -> None:
    # -20 dBFS sines through the integer cascade: the measured gain is the designed one.
    cs = centres(rate)
    out = mpy.run(SINE_SCRIPT.format(rate=rate, weighting=weighting, corner=0.0,
                                     amp=2**23 // 10, freqs=[f for _, f in cs]), timeout=300)
    got = ast.literal_eval(out.strip())
    measured = {}
    for (i, f), (fixed_db, coef_db) in zip(cs, got):
        assert fixed_db == pytest.approx(coef_db, abs=0.02), f"{f:.0f} Hz"
        measured[i] = fixed_db
    assert_class1(weighting, rate, measured, design_tol=0.1)


def test_equaliser_flattens_the_capsule_rolloff(mpy) -> None:
    # INMP441 rolls off as a first-order high-pass at 60 Hz; with its equaliser the product is
    # a first-order high-pass at 15 Hz (the corner / 4): within 0.5 dB of flat from 45 Hz up.
    # (Z adds its 1 Hz DC blocker.)
    freqs = [10.0, 20.0, 31.5, 45.0, 63.0, 125.0, 1000.0]
    out = mpy.run(f"""
        from noise import weighting as w
        secs = w.design("Z", 48000, 60.0)
        print([w.gain(secs, 48000, f) / w.gain(secs, 48000, 1000.0) for f in {freqs!r}])
    """)
    eq = ast.literal_eval(out.strip())
    for f, g in zip(freqs, eq):
        capsule = (f / 60.0) / math.sqrt(1 + (f / 60.0) ** 2)
        restored = (f / 15.0) / math.sqrt(1 + (f / 15.0) ** 2) * f / math.sqrt(1 + f * f)
        assert 20 * math.log10(g * capsule / restored) == pytest.approx(0.0, abs=0.05), f"{f} Hz"


def stage_l1_norms(secs: list, rate: int) -> list[float]:
    """L1 norm of the float impulse response at each stage's output (2 s of it)."""
    x = np.zeros(2 * rate)
    x[0] = 1.0
    norms = []
    for kind, p in secs:
        if kind == 2:  # biquad
            b, a = p[:3], [1.0, p[3], p[4]]
        elif kind == 1:  # shelf
            b, a = [1.0, -(1.0 - p[0])], [1.0, -(1.0 - p[1])]
        else:  # high-pass
            b, a = [1.0, -1.0], [1.0, -(1.0 - p[0])]
        x = signal.lfilter(b, a, x)
        norms.append(float(np.abs(x).sum()))
    return norms


def test_headroom_bound_holds_for_every_design(mpy) -> None:
    # The cascade's bound (product of each stage's impulse-response L1 norm) covers the real
    # L1 norm at every stage's output, and the input shift keeps 2**23 * bound below 2**28:
    # no input whatsoever takes a signal past 2**28.
    out = mpy.run("""
        from noise import weighting as w
        from noise.biquad import Cascade
        from noise.mic import top
        for wt in "ACZ":
            for rate in (16000, 48000):
                for corner in (0.0, 60.0):
                    secs = w.design(wt, rate, corner)
                    c = Cascade(secs, top(24))
                    print(repr((wt, rate, corner, secs, c.bound, c.shift)))
    """)
    for line in out.splitlines():
        wt, rate, corner, secs, bound, shift = ast.literal_eval(line)
        assert max(stage_l1_norms(secs, rate)) <= bound * 1.0001, (wt, rate, corner)
        assert 2 ** (23 - shift) * bound * 1.01 < 2**28
        assert shift == 0 or 2 ** (24 - shift) * bound * 1.01 >= 2**28  # no bit given away
        if corner == 0.0:
            assert shift == 0, "without the equaliser all 24 bits are kept"


@pytest.mark.parametrize("args,message", [
    ("'A', 22050", "22050 Hz not supported"),
    ("'B', 48000", "weighting 'B'"),
])
def test_bad_design_is_a_value_error(mpy, args: str, message: str) -> None:
    out = mpy.run(f"""
        from noise import weighting as w
        try:
            w.design({args})
        except ValueError as e:
            print(e)
    """)
    assert message in out
