"""An I2S MEMS microphone (INMP441, ICS-43434, SPH0645LM4H) hearing the scenario's sound field.

The sound field is the sum of what the scenario sets (levels are curves over scenario seconds):

``noise_dba``  pink noise at this A-weighted level, dB(A) re 20 uPa (45 when nothing is set)
``noise_db``   pink noise at this flat level in the 20 Hz - 20 kHz band instead, dB re 20 uPa
``tone_db``    a sine at this sound pressure level, dB re 20 uPa ...
``tone_hz``    ... and frequency (1000 Hz when not set)

The part then does what its datasheet says: zeros until it has started (INMP441: 2**18 SCK
cycles after power-up), a first-order high-pass at its low-frequency
-3 dB corner, self-noise at its equivalent input noise (94 dB - SNR, A-weighted, white), the
sensitivity (a 94 dB SPL 1 kHz sine gives ``sensitivity`` dBFS, 0 dBFS being a sine of peak
2**23 - 1: 94 dB is 1.0024 Pa), the SPH0645's DC offset, rounding to its data bits and clipping at full scale. Each
sample goes MSB first into its I2S slot: 24 bits then zeros in a 32-bit slot, the top 16 bits
in a 16-bit slot. Audio is produced on demand: its clock is the number of samples read.

Faults: ``unplug`` and ``silent`` leave the data line to its pull-down (zeros), ``stuck``
repeats the last sample, ``clip`` drives the converter 40 dB into saturation (an overload),
``garbage`` is line noise (random words).
"""

from __future__ import annotations

import cmath
import math
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

from gonggi_emu.devices.base import I2SSource
from gonggi_emu.scenario import Scenario

__all__ = ["MicModel", "MODELS", "Microphone", "a_weighting", "pink_sections"]

P_REF = 20e-6            # Pa: 0 dB SPL
P_94 = P_REF * 10 ** (94 / 20)
FULL_SCALE = 2**23 - 1   # the datasheets' full-scale peak (24-bit word)
_DEFAULT_DBA = 45.0      # a quiet street, when the scenario sets no sound
_CHUNK_S = 0.001         # levels and faults are evaluated once per millisecond of audio
_CLIP_GAIN = 100.0       # fault "clip": +40 dB


@dataclass(frozen=True)
class MicModel:
    """Datasheet figures of one microphone part."""

    part: str
    sensitivity_dbfs: float  # output of a 94 dB SPL 1 kHz sine
    bits: int                # significant bits of the 24-bit word
    snr_db: float            # re 94 dB SPL, A-weighted: self-noise = 94 - snr dB(A)
    corner_hz: float         # low-frequency -3 dB point
    dc_offset: float = 0.0   # fraction of full scale
    startup_frames: int = 0  # zeros after power-up, in WS frames (64 SCK each)


MODELS = {
    # DS-INMP441-00 rev 1.1, table 1; operational 2**18 SCK cycles after power-up (85 ms at
    # 48 kHz).
    "inmp441": MicModel("INMP441", -26.0, 24, 61.0, 60.0, startup_frames=2**18 // 64),
    # DS-000069 rev 1.2; corner from its typical frequency response.
    "ics43434": MicModel("ICS-43434", -26.0, 24, 65.0, 50.0),
    # SPH0645LM4H-B rev C: 18-bit data in the 24-bit word. The datasheet gives no DC offset;
    # parts show a constant negative one (here -1 % of full scale), which meters must remove.
    "sph0645": MicModel("SPH0645LM4H-B", -26.0, 18, 65.0, 50.0, -0.01),
}


def a_weighting(f: float) -> float:
    """|A(f)| of IEC 61672-1 (Annex E), 1 at 1 kHz."""

    def raw(f: float) -> float:
        f2 = f * f
        return (12194.217**2 * f2 * f2) / (
            (f2 + 20.598997**2)
            * math.sqrt((f2 + 107.65265**2) * (f2 + 737.86223**2))
            * (f2 + 12194.217**2)
        )

    return raw(f) / raw(1000.0)


def pink_sections(rate: int) -> list[tuple[float, float, float]]:
    """First-order sections (b0, b1, a1) shaping white noise into pink noise (-3 dB/octave).

    Alternating real poles and zeros, a pole every 3x in frequency from 5 Hz with a zero sqrt(3)
    above it (ripple 0.2 dB), by the bilinear transform with each corner prewarped; pairs whose
    zero would pass 0.45 * rate are left out (the spectrum flattens there).
    """
    sections = []
    f = 5.0
    while f * math.sqrt(3.0) < 0.45 * rate:
        wp = math.tan(math.pi * f / rate)
        wz = math.tan(math.pi * f * math.sqrt(3.0) / rate)
        # (1 + s/wz) / (1 + s/wp) with s = (1 - z^-1) / (1 + z^-1) (prewarped units)
        k = 1.0 / (1.0 + 1.0 / wp)
        sections.append(((1.0 + 1.0 / wz) * k, (1.0 - 1.0 / wz) * k, (1.0 - 1.0 / wp) * k))
        f *= 3.0
    return sections


def _power_gain(sections: list[tuple[float, float, float]], rate: int, f: float) -> float:
    z = cmath.exp(-2j * math.pi * f / rate)
    h = 1.0 + 0j
    for b0, b1, a1 in sections:
        h *= (b0 + b1 * z) / (1.0 + a1 * z)
    return abs(h) ** 2


def _band_power(shape: Callable[[float], float], lo: float, hi: float, points: int = 4000) -> float:
    """Integral of shape(f) df over lo .. hi, and over 0 .. lo as if flat when lo < 1 Hz
    (a log grid: the shapes vary at low frequency)."""
    fs = [lo * (hi / lo) ** (i / (points - 1)) for i in range(points)]
    total = shape(fs[0]) * lo if lo < 1.0 else 0.0
    for f0, f1 in zip(fs, fs[1:]):
        total += 0.5 * (shape(f0) + shape(f1)) * (f1 - f0)
    return total


@dataclass
class _Design:
    """Everything that depends on the sample rate."""

    rate: int
    pink: list[tuple[float, float, float]]
    pink_rms: float     # RMS in 20 Hz - 20 kHz of the pink filter's output for unit white input
    pink_a: float       # A-weighted RMS / that band's RMS
    hp: tuple[float, float, float]   # the capsule's low-frequency roll-off (b0, b1, a1)
    noise_pa: float     # self-noise: RMS (Pa) of white noise whose A-weighted level is the EIN


def _design(model: MicModel, rate: int) -> _Design:
    pink = pink_sections(rate)
    nyquist = 0.5 * rate
    flat = _band_power(lambda f: _power_gain(pink, rate, f), 20.0, min(20000.0, nyquist))
    weighted = _band_power(lambda f: _power_gain(pink, rate, f) * a_weighting(f) ** 2, 0.01, nyquist)
    # White noise of RMS 1 has power density 1 / nyquist; its A-weighted RMS:
    white_a = math.sqrt(_band_power(lambda f: a_weighting(f) ** 2, 0.01, nyquist) / nyquist)
    w = math.tan(math.pi * model.corner_hz / rate)
    k = 1.0 / (1.0 + w)
    return _Design(
        rate=rate,
        pink=pink,
        pink_rms=math.sqrt(flat / nyquist),
        pink_a=math.sqrt(weighted / flat),
        hp=(k, -k, (w - 1.0) * k),
        noise_pa=P_REF * 10 ** ((94.0 - model.snr_db) / 20) / white_a,
    )


class Microphone(I2SSource):
    kind = "microphone"

    def __init__(
        self,
        scenario: Scenario,
        name: str | None = None,
        model: str = "inmp441",
        self_noise: bool = True,
        seed: int = 1,
    ) -> None:
        super().__init__(scenario, name)
        if model not in MODELS:
            raise ValueError(f"microphone {self.name!r}: model {model!r} not one of {', '.join(MODELS)}")
        self.model = MODELS[model]
        self.self_noise = self_noise
        self._rng = random.Random(seed)
        self._design: _Design | None = None
        self._state: list[float] = []
        self._phase = 0.0
        self.samples = 0          # audio clock: samples produced since power-up
        self._last = 0            # last 24-bit word (fault "stuck")

    # -- the sound field ---------------------------------------------------------------------

    def field(self, t: float, rate: int) -> tuple[float, float, float]:
        """(RMS of the pink noise in 20 Hz - 20 kHz in Pa, tone RMS in Pa, tone Hz) at audio time ``t``."""
        sc = self.scenario
        d = self._designed(rate)
        if "noise_db" in sc.values:
            pink = P_REF * 10 ** (sc.value("noise_db", t) / 20)
        elif "noise_dba" in sc.values or "tone_db" not in sc.values:
            pink = P_REF * 10 ** (sc.value("noise_dba", t, default=_DEFAULT_DBA) / 20) / d.pink_a
        else:
            pink = 0.0
        tone = P_REF * 10 ** (sc.value("tone_db", t) / 20) if "tone_db" in sc.values else 0.0
        return pink, tone, sc.value("tone_hz", t, default=1000.0)

    def _designed(self, rate: int) -> _Design:
        if self._design is None or self._design.rate != rate:
            self._design = _design(self.model, rate)
            # Filter state: (x1, y1) per pink section, then the roll-off's (x1, y1).
            self._state = [0.0] * (2 * len(self._design.pink) + 2)
            self._phase = 0.0
        return self._design

    # -- the I2S side ------------------------------------------------------------------------

    def i2s_read(self, nbytes: int, bits: int, rate: int) -> bytes:
        if bits not in (16, 32):
            raise ValueError(f"microphone {self.name!r}: {bits}-bit slots (16 or 32 only)")
        n = nbytes // (bits // 8)
        words: list[int] = []
        chunk = max(1, int(rate * _CHUNK_S))
        while len(words) < n:
            self._chunk(words, min(chunk, n - len(words)), rate)
        if bits == 32:
            return struct.pack(f"<{n}I", *((w << 8) & 0xFFFFFFFF for w in words))
        return struct.pack(f"<{n}H", *((w >> 8) & 0xFFFF for w in words))

    def _chunk(self, words: list[int], k: int, rate: int) -> None:
        """Append k samples (24-bit words) to ``words``; levels and faults are those at its start."""
        t = self.samples / rate
        starting = self.samples < self.model.startup_frames
        self.samples += k
        faults = self.fault(t)
        if starting or faults & {"unplug", "silent"}:
            words.extend([0] * k)
            return
        if "stuck" in faults:
            words.extend([self._last] * k)
            return
        if "garbage" in faults:
            words.extend(self._rng.getrandbits(24) - 2**23 for _ in range(k))
            return
        d = self._designed(rate)
        m = self.model
        pink_pa, tone_pa, tone_hz = self.field(t, rate)
        # Counts per Pa: a 94 dB SPL sine (RMS P_94) peaks at sensitivity dBFS.
        scale = FULL_SCALE * 10 ** (m.sensitivity_dbfs / 20) / (math.sqrt(2.0) * P_94)
        if "clip" in faults:
            scale *= _CLIP_GAIN
        g_pink = pink_pa / d.pink_rms * scale
        g_tone = tone_pa * math.sqrt(2.0) * scale
        g_noise = d.noise_pa * scale if self.self_noise else 0.0
        dc = m.dc_offset * FULL_SCALE
        step = 1 << (24 - m.bits)
        top = (1 << 23) - step
        dphi = 2 * math.pi * tone_hz / rate
        gauss = self._rng.gauss
        sin = math.sin
        pink = d.pink
        hb0, hb1, ha1 = d.hp
        st = self._state
        last = len(st) - 2
        phase = self._phase
        for _ in range(k):
            x = gauss(0.0, 1.0)
            i = 0
            for b0, b1, a1 in pink:
                y = b0 * x + b1 * st[i] - a1 * st[i + 1]
                st[i] = x
                st[i + 1] = y
                x = y
                i += 2
            p = g_pink * x + g_tone * sin(phase)
            phase += dphi
            y = hb0 * p + hb1 * st[last] - ha1 * st[last + 1]
            st[last] = p
            st[last + 1] = y
            if g_noise:
                y += g_noise * gauss(0.0, 1.0)
            w = round((y + dc) / step) * step
            if w > top:
                w = top
            elif w < -(1 << 23):
                w = -(1 << 23)
            words.append(w)
        self._phase = phase % (2 * math.pi)
        self._last = words[-1]
