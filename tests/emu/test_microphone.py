"""The emulated I2S microphone: slot format, sound pressure levels, self-noise, roll-off, faults.

Levels are checked with the independent reference (tests/noise_reference.py): exact analog
weightings in the frequency domain, not the emulator's own arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import noise_reference as ref
from gonggi_emu.devices import REGISTRY, create
from gonggi_emu.devices.microphone import MODELS, Microphone
from gonggi_emu.scenario import Fault, Scenario


def mic(values: dict, model: str = "inmp441", self_noise: bool = False, faults=()) -> Microphone:
    sc = Scenario.from_dict({"values": values})
    for f in faults:
        sc.inject(f)
    return Microphone(sc, model=model, self_noise=self_noise)


def words(raw: bytes) -> np.ndarray:
    """The 24-bit samples of 32-bit slots."""
    return np.frombuffer(raw, dtype="<i4") >> 8


def undo_rolloff(pa: np.ndarray, rate: int, corner: float) -> np.ndarray:
    """Divide out the capsule's first-order low-frequency roll-off (the datasheet's corner)."""
    n = len(pa)
    spec = np.fft.rfft(pa)
    s = 2j * np.pi * np.fft.rfftfreq(n, 1 / rate)
    h = (s / (2 * np.pi * corner)) / (1 + s / (2 * np.pi * corner))
    h[0] = 1.0
    return np.fft.irfft(spec / h, n)


def level(pa: np.ndarray, rate: int, weighting: str) -> float:
    """A-weighted level, or for Z the level in the 20 Hz - 20 kHz band."""
    if weighting == "Z":
        spec = np.fft.rfft(pa)
        f = np.fft.rfftfreq(len(pa), 1 / rate)
        band = (f >= 20.0) & (f <= 20000.0)
        return float(10 * np.log10(2 * np.sum(np.abs(spec[band]) ** 2) / len(pa) ** 2 / ref.P_REF**2))
    pw = ref.weigh(pa, rate, weighting)
    skip = rate // 4  # the filters' start
    return float(10 * np.log10(np.mean(pw[skip:] ** 2) / ref.P_REF**2))


def test_registered_as_microphone() -> None:
    assert REGISTRY["microphone"] == "gonggi_emu.devices.microphone:Microphone"
    dev = create("microphone", Scenario(), name="mic0", model="ics43434")
    assert isinstance(dev, Microphone) and dev.name == "mic0"


def test_94_db_tone_is_the_datasheet_sensitivity() -> None:
    # INMP441 datasheet: 94 dB SPL at 1 kHz gives -26 dBFS, a peak of (2**23 - 1) * 10**(-26/20).
    m = mic({"tone_db": 94.0, "tone_hz": 1000.0})
    raw = m.i2s_read(4 * 48000, 32, 48000)
    w = words(raw)
    assert np.all(np.frombuffer(raw, dtype="<u4") & 0xFF == 0)  # 24 bits, MSB first, then zeros
    amplitude = np.sqrt(2 * np.mean(w[4800:].astype(float) ** 2))  # 43 whole periods
    # The 60 Hz roll-off takes 0.016 dB at 1 kHz.
    assert amplitude == pytest.approx(420426 * 10 ** (-0.0156 / 20), abs=8)


@pytest.mark.parametrize("rate", [16000, 48000])
@pytest.mark.parametrize("key,weighting", [("noise_dba", "A"), ("noise_db", "Z")])
def test_pink_noise_level(rate: int, key: str, weighting: str) -> None:
    m = mic({key: 60.0})
    pa = ref.slots_to_pa(m.i2s_read(4 * rate * 6, 32, rate), -26.0)
    field = undo_rolloff(pa, rate, MODELS["inmp441"].corner_hz)
    assert level(field, rate, weighting) == pytest.approx(60.0, abs=0.25)


def test_pink_noise_is_pink() -> None:
    # Equal power per octave: third-octave band levels within +-1 dB of their mean, 50 Hz..10 kHz.
    rate = 48000
    m = mic({"noise_db": 70.0})
    pa = undo_rolloff(ref.slots_to_pa(m.i2s_read(4 * rate * 8, 32, rate), -26.0), rate, 60.0)
    psd = np.abs(np.fft.rfft(pa)) ** 2
    f = np.fft.rfftfreq(len(pa), 1 / rate)
    bands = []
    for fc in ref.EXACT_HZ[7:31]:
        sel = (f >= fc * 2 ** (-1 / 6)) & (f < fc * 2 ** (1 / 6))
        bands.append(10 * np.log10(psd[sel].sum()))
    bands = np.array(bands)
    assert np.max(np.abs(bands - bands.mean())) < 1.0


@pytest.mark.parametrize("model,ein", [("inmp441", 33.0), ("ics43434", 29.0)])
def test_self_noise_is_the_equivalent_input_noise(model: str, ein: float) -> None:
    m = mic({"noise_dba": -50.0}, model=model, self_noise=True)
    pa = ref.slots_to_pa(m.i2s_read(4 * 48000 * 4, 32, 48000), -26.0)
    assert level(pa, 48000, "A") == pytest.approx(ein, abs=0.3)


def test_low_frequency_rolloff_at_the_datasheet_corner() -> None:
    def tone_rms(hz: float) -> float:
        m = mic({"tone_db": 94.0, "tone_hz": hz})
        w = words(m.i2s_read(4 * 48000, 32, 48000))[24000:].astype(float)  # whole periods
        return float(np.sqrt(np.mean(w**2)))

    assert 20 * math.log10(tone_rms(60.0) / tone_rms(1000.0)) == pytest.approx(-3.0, abs=0.1)


def test_sph0645_has_18_bits_and_a_dc_offset() -> None:
    m = mic({"tone_db": 80.0}, model="sph0645")
    w = words(m.i2s_read(4 * 48000, 32, 48000))
    assert np.all(w % 64 == 0)  # 18 significant bits of the 24-bit word
    assert w.mean() == pytest.approx(-0.01 * (2**23 - 1), rel=0.01)


def test_16_bit_slots_carry_the_top_bits() -> None:
    a = mic({"tone_db": 94.0})
    b = mic({"tone_db": 94.0})
    w32 = words(a.i2s_read(4 * 6000, 32, 48000))
    w16 = np.frombuffer(b.i2s_read(2 * 6000, 16, 48000), dtype="<i2")
    assert w16[5000:].any() and np.array_equal(w16, w32 >> 8)


def test_inmp441_starts_after_2_18_clock_cycles() -> None:
    # Zeros for 2**18 SCK cycles after power-up: 4096 frames of 64 SCK (85 ms at 48 kHz).
    w = words(mic({"tone_db": 94.0}).i2s_read(4 * 4800, 32, 48000))
    assert not w[:4096].any() and w[4096 + 48 :].any()


def test_audio_time_follows_the_samples_read() -> None:
    # A 40 -> 90 dB ramp over 10 s of scenario time, read faster than real time: the level at
    # audio time t is the scenario's at t.
    rate = 16000
    m = mic({"tone_db": [[0, 40.0], [10, 90.0]], "tone_hz": 1000.0})
    raw = m.i2s_read(4 * rate * 10, 32, rate)
    assert m.samples == rate * 10
    w = words(raw).astype(float)
    for t in (2.0, 5.0, 8.0):
        seg = w[int(t * rate) : int(t * rate) + rate // 10]
        db = 94.0 + 20 * math.log10(np.sqrt(2 * np.mean(seg**2)) / 420426)
        assert db == pytest.approx(40.0 + 5.0 * (t + 0.05), abs=0.1)


def test_faults() -> None:
    faults = [
        Fault("microphone", "stuck", 0.1, 0.2),
        Fault("microphone", "unplug", 0.2, 0.3),
        Fault("microphone", "clip", 0.3, 0.4),
    ]
    m = mic({"tone_db": 94.0}, faults=faults)
    w = words(m.i2s_read(4 * 48000 * 4 // 10, 32, 48000))
    stuck = w[4800:9600]
    assert stuck[0] == w[4799] and len(set(stuck)) == 1    # stuck: the last sample, repeated
    assert not w[9600:14400].any()                          # unplugged: the pull-down reads zeros
    clipped = w[14400:]
    assert clipped.max() == 2**23 - 1 and clipped.min() == -(2**23)  # driven into saturation
