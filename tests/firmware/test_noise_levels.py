"""The integer level arithmetic on the VM: log2 and centi-dB, the Fast time weighting (IEC 61672-1
decay rate and tone-burst response) and the statistical levels from the histogram."""

from __future__ import annotations

import ast
import math

import numpy as np
import pytest

import noise_reference as ref


def test_log2_and_centi_db_are_accurate(mpy) -> None:
    out = mpy.run("""
        import math
        from noise.levels import cdb, log2q
        worst_l2 = worst_db = 0.0
        for e in (-40, -3, 0, 7, 30):
            for i in range(500):
                m = 0x20000000 + i * 1073741
                exact = math.log(m) / math.log(2) + e
                worst_l2 = max(worst_l2, abs(log2q(m, e) / 65536 - exact))
                l2 = round(exact * 65536)
                worst_db = max(worst_db, abs(cdb(l2) / 100 - 10 * math.log10(2) * l2 / 65536))
        print(worst_l2, worst_db, log2q(1, 0), log2q(3 << 40, -40))
    """)
    worst_l2, worst_db, one, three = out.split()
    assert float(worst_l2) * 3.0103 < 0.0003      # dB
    assert float(worst_db) < 0.0051               # rounding to the centi-dB (+0.0001)
    assert int(one) == 0 and int(three) / 65536 == pytest.approx(math.log2(3), abs=1e-4)


def test_fast_level_decays_at_34_7_db_per_second(mpy) -> None:
    # IEC 61672-1: time constant F = 125 ms, a decay of 10 lg(e) / 0.125 = 34.7 dB/s.
    out = mpy.run("""
        import array
        from noise import levels as lv
        loud = array.array("i", [(-1) ** i * 100000 for i in range(256)])
        quiet = array.array("i", [(-1) ** i * 10 for i in range(256)])
        L = lv.Levels(48000, 256, 60 << 16)
        L.restart()
        for _ in range(24):
            L.add(loud, 256, 100000)
        L.start()
        for _ in range(100):
            L.add(loud, 256, 100000)
        trace = [L.add(quiet, 256, 10) for _ in range(94)]  # 0.5 s
        print([lv.cdb(v) for v in trace])
    """)
    trace = ast.literal_eval(out.strip())
    t = np.arange(len(trace)) * 256 / 48000
    slope = np.polyfit(t[5:], np.array(trace[5:]) / 100, 1)[0]
    assert slope == pytest.approx(-10 * math.log10(math.e) / 0.125, abs=0.1)


# IEC 61672-1 tone bursts (4 kHz) against F: LAFmax - the steady level is
# 10 lg(1 - exp(-tb / 0.125 s)); class 1 allows +-0.5 dB down to 10 ms (more below).
BURSTS_MS = [1000, 200, 50, 10, 2]
SEGMENT = 375 * 256    # 2 s, whole blocks
LEAD = 188 * 256       # warm-up and lead-in, whole blocks


def burst_pcm(rate: int = 48000) -> bytes:
    rng = np.random.default_rng(3)
    n = LEAD + SEGMENT * (1 + len(BURSTS_MS))
    t = np.arange(n) / rate
    amp = (2**23 - 1) * 10 ** ((100 - 94 - 26) / 20)            # 100 dB SPL, -26 dBFS at 94
    x = rng.normal(0, 20, n)                                    # background ~ 20 dB SPL
    x[: LEAD + SEGMENT] += amp * np.sin(2 * np.pi * 4000 * t[: LEAD + SEGMENT])
    for k, ms in enumerate(BURSTS_MS):
        a = LEAD + SEGMENT * (k + 1) + rate // 2
        b = a + rate * ms // 1000
        x[a:b] += amp * np.sin(2 * np.pi * 4000 * (t[a:b] - t[a]))  # starts at a zero crossing
    return (np.round(x).astype(np.int64) << 8).astype("<i4").tobytes()


def test_tone_burst_response(mpy) -> None:
    (mpy.cwd / "audio.pcm").write_bytes(burst_pcm())
    out = mpy.run(f"""
        import array
        from fake_i2s import FakeI2S
        from noise import NoiseMeter
        i2s = FakeI2S("audio.pcm")
        m = NoiseMeter(i2s)
        out = array.array("i", [0] * 6)
        end = {LEAD}
        for k in range({1 + len(BURSTS_MS)} + 1):
            while i2s.reads * 256 < end:
                m.feed()
            m.poll(0, out, 0)
            print(out[1])
            end += {SEGMENT}
    """)
    lead, steady, *bursts = (int(v) / 100 for v in out.split())
    for ms, lmax in zip(BURSTS_MS, bursts):
        want = 10 * math.log10(1 - math.exp(-ms / 1000 / ref.FAST_S))
        lo, hi = (-0.5, 0.5) if ms >= 10 else (-1.5, 1.0)
        assert lo <= (lmax - steady) - want <= hi, f"{ms} ms burst: {lmax - steady:.2f} dB, want {want:.2f}"


def test_percentiles_interpolate_within_bins(mpy) -> None:
    # 100 counts spread over bins 10..19 (10 each): L90 = 10 % from the bottom = top of bin 10.
    out = mpy.run("""
        import array
        from noise.levels import NBINS, percentile
        h = array.array("H", bytes(2 * NBINS))
        for k in range(10, 20):
            h[k] = 10
        print(percentile(h, 0, 10), percentile(h, 0, 50), percentile(h, 0, 90))
    """)
    l10, l50, l90 = (int(v) / 2048 for v in out.split())
    assert (l10, l50, l90) == pytest.approx((19.0, 15.0, 11.0))


def test_histogram_halves_instead_of_overflowing(mpy) -> None:
    out = mpy.run("""
        import array
        from noise import levels as lv
        L = lv.Levels(48000, 256, 60 << 16)
        L.restart()
        L.start()
        block = array.array("i", [(-1) ** i * 1000 for i in range(256)])
        L.add(block, 256, 1000)
        k = [i for i in range(lv.NBINS) if L.hist[i]][0]
        L.hist[k] = 0xFFFF
        L.hist[k - 40] = 3001
        L.add(block, 256, 1000)
        print(L.hist[k], L.hist[k - 40])
    """)
    assert out.split() == ["32768", "1500"]
