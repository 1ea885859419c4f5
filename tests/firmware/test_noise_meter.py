"""NoiseMeter on the VM, end to end: the emulated microphone's PCM (tools/gonggi_emu) goes
through machine.I2S's stand-in into the meter; its levels are checked against the independent
CPython reference (tests/noise_reference.py) computed from the very same samples."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest

import noise_reference as ref
from gonggi_emu.devices.microphone import MODELS, Microphone
from gonggi_emu.scenario import Fault, Scenario

BLOCK = 256


def pcm(path: Path, values: dict, seconds: float, rate: int = 48000, model: str = "inmp441",
        self_noise: bool = False, faults: tuple[Fault, ...] = ()) -> bytes:
    """Write `seconds` of the emulated microphone hearing `values` to path; return the bytes."""
    sc = Scenario.from_dict({"values": values})
    for f in faults:
        sc.inject(f)
    raw = Microphone(sc, model=model, self_noise=self_noise).i2s_read(4 * round(rate * seconds), 32, rate)
    path.write_bytes(raw)
    return raw


@dataclass
class Reading:
    start: int          # first sample of the measured interval
    flags: int
    values: list[float]  # dB: eq, max, min, l10, l50, l90
    lines: list[str]


METER = """
import array
from fake_i2s import FakeI2S
from noise import NoiseMeter
i2s = FakeI2S("audio.pcm")
m = NoiseMeter(i2s, {args})
while not m.measuring():
    m.feed()
start = i2s.reads * {block}
while m.feed():
    pass
out = array.array("i", [0] * 6)
flags = m.poll(0, out, 0)
print("RESULT", start, flags, *out)
print("COUNTS", m.overloads, m.dropouts, m.read_errors)
"""


def measure(mpy, args: str = "", block: int = BLOCK) -> Reading:
    out = mpy.run(METER.format(args=args, block=block))
    lines = out.splitlines()
    fields = next(ln for ln in lines if ln.startswith("RESULT")).split()[1:]
    return Reading(int(fields[0]), int(fields[1]), [int(v) / 100 for v in fields[2:]], lines)


def reference(raw: bytes, start: int, rate: int = 48000, model: str = "inmp441", weighting: str = "A",
              block: int = BLOCK) -> list[float]:
    pa = ref.slots_to_pa(raw, MODELS[model].sensitivity_dbfs)
    prime = math.ceil(rate * 0.125 / block) * block
    r = ref.levels(pa, rate, start, weighting, prime, every=block)  # statistics once per block
    return [r.eq, r.fmax, r.fmin, r.l10, r.l50, r.l90]


def assert_agree(node: list[float], want: list[float], tol: float) -> None:
    names = ["eq", "max", "min", "L10", "L50", "L90"]
    for name, a, b in zip(names, node, want):
        assert a == pytest.approx(b, abs=tol), f"{name}: node {node} vs reference {[round(v, 2) for v in want]}"


RANGE, MISSING, BUS, NO_DATA, WARMING = 0x20, 0x08, 0x40, 0x10, 0x01


def test_94_db_calibrator_tone_reads_94(mpy) -> None:
    raw = pcm(mpy.cwd / "audio.pcm", {"tone_db": 94.0, "tone_hz": 1000.0}, 2.0)
    r = measure(mpy)
    assert r.flags == 0
    # INMP441's 60 Hz roll-off takes 0.016 dB at 1 kHz: the reference and the node see it.
    assert_agree(r.values, reference(raw, r.start), 0.03)
    assert r.values == pytest.approx([93.98] * 6, abs=0.03)


@pytest.mark.parametrize("name,values,seconds", [
    ("pink 60 dB(A)", {"noise_dba": 60.0}, 6.0),
    ("pink ramp 40 -> 90 dB(A)", {"noise_dba": [[0.0, 40.0], [10.0, 90.0]]}, 10.0),
    ("a 1 kHz tone rising over pink", {"noise_dba": 55.0, "tone_db": [[0, 50.0], [3, 75.0], [6, 50.0]]}, 6.0),
])
def test_levels_agree_with_reference(mpy, name: str, values: dict, seconds: float) -> None:
    # The issue asks for 0.5 dB; the node is within a few hundredths.
    raw = pcm(mpy.cwd / "audio.pcm", values, seconds)
    r = measure(mpy)
    assert r.flags == 0
    assert_agree(r.values, reference(raw, r.start), 0.1)


def test_quiet_30_dba_loses_no_accuracy(mpy) -> None:
    # 30 dB(A) is -90 dBFS for a -26 dBFS microphone: the fixed-point path's rounding noise
    # (near -140 dBFS) must not show. Without self-noise the field is below INMP441's linear
    # range (self-noise 33 dB(A) + 7): RANGE says so, the values are still right.
    raw = pcm(mpy.cwd / "audio.pcm", {"noise_dba": 30.0}, 6.0)
    r = measure(mpy)
    assert_agree(r.values, reference(raw, r.start), 0.1)
    assert r.flags == RANGE


@pytest.mark.parametrize("hz", [1000.0, 3150.0, 31.5])
def test_loud_110_db_does_not_clip(mpy, hz: float) -> None:
    raw = pcm(mpy.cwd / "audio.pcm", {"tone_db": 110.0, "tone_hz": hz}, 2.0)
    r = measure(mpy)
    assert r.flags == 0
    assert_agree(r.values, reference(raw, r.start), 0.05)


def test_overload_is_flagged_not_hidden(mpy) -> None:
    # 125 dB SPL is past the microphone's 120 dB full scale: its converter clips.
    pcm(mpy.cwd / "audio.pcm", {"tone_db": 125.0}, 2.0)
    r = measure(mpy)
    assert r.flags == RANGE
    assert r.lines[-1].split()[1] != "0"  # overloads counted
    assert r.values[0] > 115.0


@pytest.mark.parametrize("rate", [16000, 32000, 44100])
def test_other_sample_rates(mpy, rate: int) -> None:
    raw = pcm(mpy.cwd / "audio.pcm", {"noise_dba": 65.0, "tone_db": 80.0, "tone_hz": 2000.0}, 3.0, rate=rate)
    r = measure(mpy, f"rate={rate}")
    assert_agree(r.values, reference(raw, r.start, rate), 0.2)


@pytest.mark.parametrize("block", [64, 1024])
def test_other_block_sizes(mpy, block: int) -> None:
    # 3.3 s is no whole number of blocks: the last one is partial.
    raw = pcm(mpy.cwd / "audio.pcm", {"noise_dba": 60.0, "tone_db": 70.0, "tone_hz": 500.0}, 3.3)
    r = measure(mpy, f"block={block}", block)
    assert_agree(r.values, reference(raw, r.start, block=block), 0.1)


@pytest.mark.parametrize("weighting", ["C", "Z"])
def test_c_and_z_weighting(mpy, weighting: str) -> None:
    raw = pcm(mpy.cwd / "audio.pcm", {"noise_db": 70.0, "tone_db": 85.0, "tone_hz": 63.0}, 4.0)
    r = measure(mpy, f"weighting={weighting!r}")
    assert_agree(r.values, reference(raw, r.start, weighting=weighting), 0.2)


@pytest.mark.parametrize("weighting", ["A", "Z"])
def test_sph0645_dc_offset_is_removed(mpy, weighting: str) -> None:
    # SPH0645 sends a -1 % of full scale offset with its 18-bit samples: at 94 dB the offset
    # (-40 dBFS, 80 dB SPL as a level) must not reach the levels.
    raw = pcm(mpy.cwd / "audio.pcm", {"tone_db": 94.0}, 2.0, model="sph0645")
    r = measure(mpy, f"mic='sph0645', weighting={weighting!r}")
    assert r.flags == 0
    assert_agree(r.values, reference(raw, r.start, model="sph0645", weighting=weighting), 0.05)
    assert r.values[0] == pytest.approx(93.98, abs=0.05)


def test_equaliser_restores_the_capsule_low_end(mpy) -> None:
    # A 63 Hz tone at 94 dB: INMP441 rolls it off by 2.8 dB; its equaliser puts that back, down
    # to what a first-order roll-off at 15 Hz (the corner / 4) would take.
    pcm(mpy.cwd / "audio.pcm", {"tone_db": 94.0, "tone_hz": 63.0}, 2.0)
    plain = measure(mpy, "weighting='Z'").values[0]
    equalised = measure(mpy, "weighting='Z', equalise=True").values[0]
    boost = float(mpy.run("""
        import math
        from noise import weighting as w
        eq = w.design("Z", 48000, 60.0)
        z = w.design("Z", 48000)
        print(20 * math.log10(w.gain(eq, 48000, 63.0) / w.gain(eq, 48000, 1000.0)
                             * w.gain(z, 48000, 1000.0) / w.gain(z, 48000, 63.0)))
    """))
    assert plain == pytest.approx(94.0 - 10 * math.log10(1 + (60 / 63) ** 2), abs=0.05)
    assert equalised == pytest.approx(plain + boost, abs=0.03)
    assert equalised == pytest.approx(94.0 - 10 * math.log10(1 + (15 / 63) ** 2), abs=0.05)


def test_under_range_when_the_microphone_hears_its_own_noise(mpy) -> None:
    # A silent room: INMP441's self-noise (33 dB(A)) is all there is.
    pcm(mpy.cwd / "audio.pcm", {"noise_dba": 10.0}, 3.0, self_noise=True)
    r = measure(mpy)
    assert r.flags == RANGE
    assert r.values[0] == pytest.approx(33.0, abs=0.3)


def test_calibration_offset_from_a_calibrator_reading(mpy) -> None:
    # A calibrator (94 dB, 1 kHz) reads 93.98 on this node; the offset from that reading makes
    # the node read the calibrator's level.
    pcm(mpy.cwd / "audio.pcm", {"tone_db": 94.0}, 2.0)
    out = mpy.run("""
        from noise import calibration_offset
        print(calibration_offset(9398), calibration_offset(9410, offset_cdb=-20), calibration_offset(11390, 0, 11400))
    """)
    assert out.split() == ["2", "-30", "10"]
    r = measure(mpy, "offset_cdb=2")
    assert r.values[0] == pytest.approx(94.0, abs=0.02)


def test_a_microphone_that_sends_nothing_is_refused(mpy) -> None:
    (mpy.cwd / "audio.pcm").write_bytes(bytes(4 * 48000))
    out = mpy.run("""
        from fake_i2s import FakeI2S
        from noise import NoiseMeter
        try:
            NoiseMeter(FakeI2S("audio.pcm"))
        except OSError as e:
            print("OSError", e)
    """)
    assert "OSError noise: no signal from the inmp441 on I2S" in out


def test_dropouts_and_read_errors(mpy) -> None:
    # The data line drops out for 0.5 s in the first interval (BUS: part of it is missing),
    # stays dead through the second (MISSING), and a read fails in the third (BUS).
    faults = (Fault("microphone", "unplug", 1.0, 1.5), Fault("microphone", "unplug", 2.5, 4.0))
    pcm(mpy.cwd / "audio.pcm", {"noise_dba": 60.0}, 6.0, faults=faults)
    out = mpy.run("""
        import array
        from fake_i2s import FakeI2S
        from noise import NoiseMeter
        i2s = FakeI2S("audio.pcm")
        m = NoiseMeter(i2s)
        out = array.array("i", [0] * 6)
        print(m.poll(0, out, 0))
        def upto(seconds):
            while i2s.reads * 256 < seconds * 48000 and m.feed():
                pass
        upto(2.5)
        print(m.poll(0, out, 0), out[0])
        upto(4.0)
        print(m.poll(0, out, 0))
        upto(5.0)
        i2s.fail = 1
        upto(6.0)
        print(m.poll(0, out, 0), out[0], m.dropouts, m.read_errors)
    """)
    warm, first, dead, last = out.splitlines()
    assert int(warm) == WARMING | NO_DATA
    flags, laeq = first.split()
    assert int(flags) == BUS and float(laeq) / 100 == pytest.approx(60.0, abs=0.5)
    assert int(dead) == MISSING
    flags, laeq, dropouts, errors = last.split()
    assert int(flags) == BUS and float(laeq) / 100 == pytest.approx(60.0, abs=0.5)
    assert int(dropouts) > 0 and int(errors) == 1


def test_sleep_stops_and_wake_warms_up_again(mpy) -> None:
    pcm(mpy.cwd / "audio.pcm", {"noise_dba": 50.0}, 3.0)
    out = mpy.run("""
        import array
        from fake_i2s import FakeI2S
        from noise import NoiseMeter
        i2s = FakeI2S("audio.pcm")
        m = NoiseMeter(i2s)
        out = array.array("i", [0] * 6)
        while not m.measuring():
            m.feed()
        for _ in range(50):
            m.feed()
        print(m.poll(0, out, 0), m.warmup_ms)
        m.sleep()
        print(m.feed(), m.poll(0, out, 0))
        m.wake()
        n = 0
        while not m.measuring():
            n += m.feed()
        print(m.poll(0, out, 0), n)
    """)
    awake, asleep, woken = out.splitlines()
    assert awake.split() == ["0", "225"]
    assert asleep.split() == ["0", str(NO_DATA)]
    flags, samples = woken.split()
    assert int(flags) == NO_DATA            # measuring again, nothing since the warm-up
    assert int(samples) == pytest.approx(0.225 * 48000, abs=2 * BLOCK)


def test_run_task_processes_audio_as_it_arrives(mpy) -> None:
    pcm(mpy.cwd / "audio.pcm", {"tone_db": 94.0}, 1.0)
    out = mpy.run("""
        import array, asyncio
        from fake_i2s import FakeI2S
        from noise import NoiseMeter
        i2s = FakeI2S("audio.pcm")
        m = NoiseMeter(i2s)
        async def main():
            task = asyncio.create_task(m.run())
            while i2s.reads * 256 < 48000:
                await asyncio.sleep_ms(0)
            task.cancel()
        asyncio.run(main())
        out = array.array("i", [0] * 6)
        print(m.poll(0, out, 0), out[0])
    """)
    flags, laeq = out.split()
    assert int(flags) == 0 and int(laeq) == pytest.approx(9398, abs=3)


def test_steady_state_allocates_nothing_and_fits_the_heap(mpy) -> None:
    pcm(mpy.cwd / "audio.pcm", {"noise_dba": 60.0}, 2.0)
    out = mpy.run("""
        import array, gc
        from heapcheck import allocated
        gc.collect()
        before = gc.mem_alloc()
        from fake_i2s import FakeI2S
        from noise import NoiseMeter
        m = NoiseMeter(FakeI2S("audio.pcm"))
        gc.collect()
        print(gc.mem_alloc() - before)
        while not m.measuring():
            m.feed()
        out = array.array("i", [0] * 6)
        def work():
            for _ in range(20):
                m.feed()
            m.poll(0, out, 0)
        print(allocated(work))
    """)
    heap, per_call = (int(v) for v in out.split())
    assert per_call == 0
    assert heap < 32 * 1024   # code (compiled from source) + buffers, of the 150 KB heap


def test_open_i2s_configures_what_the_meter_reads(mpy) -> None:
    out = mpy.run("""
        import sys

        class I2S:
            RX, MONO = 1, 0
            def __init__(self, id, **kw):
                print(id, sorted(kw.items()))

        class Pin:
            def __init__(self, n):
                self.n = n
            def __repr__(self):
                return "Pin(%d)" % self.n

        class machine:
            pass
        machine.I2S = I2S
        machine.Pin = Pin
        sys.modules["machine"] = machine
        from noise import open_i2s
        open_i2s(14, 15, 32, rate=16000, block=512)
    """)
    assert out.strip() == (
        "0 [('bits', 32), ('format', 0), ('ibuf', 8192), ('mode', 1), ('rate', 16000), "
        "('sck', Pin(14)), ('sd', Pin(32)), ('ws', Pin(15))]"
    )
