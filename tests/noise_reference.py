"""Independent CPython reference for the node's noise meter (numpy + scipy, floats throughout).

Nothing here shares code or design with firmware/noise: the weightings are the analog
transfer functions of IEC 61672-1:2013 Annex E applied exactly in the frequency domain (no
digital filter design at all), and the Fast time weighting is the exact exponential average
of the squared signal, sample by sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

__all__ = [
    "NOMINAL_HZ",
    "EXACT_HZ",
    "A_GOAL_DB",
    "C_GOAL_DB",
    "CLASS1_DB",
    "weighting_db",
    "weighting_response",
    "weigh",
    "Levels",
    "levels",
    "slots_to_pa",
    "P_REF",
]

P_REF = 20e-6
FAST_S = 0.125

# IEC 61672-1:2013 Table 3: nominal third-octave frequencies (Hz), the A and C design goals (dB)
# and the class 1 acceptance limits (+upper, -lower; None = no lower limit). Where published
# transcriptions of the table differ (1.6 kHz: +-1.4 or +-1.6 dB) the stricter limit is kept.
NOMINAL_HZ = (
    10, 12.5, 16, 20, 25, 31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630,
    800, 1000, 1250, 1600, 2000, 2500, 3150, 4000, 5000, 6300, 8000, 10000, 12500, 16000, 20000,
)
# The exact base-10 frequencies the nominal ones stand for: 1000 * 10**(n/10).
EXACT_HZ = tuple(1000.0 * 10 ** (n / 10) for n in range(-20, 14))
A_GOAL_DB = (
    -70.4, -63.4, -56.7, -50.5, -44.7, -39.4, -34.6, -30.2, -26.2, -22.5, -19.1, -16.1, -13.4,
    -10.9, -8.6, -6.6, -4.8, -3.2, -1.9, -0.8, 0.0, 0.6, 1.0, 1.2, 1.3, 1.2, 1.0, 0.5, -0.1,
    -1.1, -2.5, -4.3, -6.6, -9.3,
)
C_GOAL_DB = (
    -14.3, -11.2, -8.5, -6.2, -4.4, -3.0, -2.0, -1.3, -0.8, -0.5, -0.3, -0.2, -0.1, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.1, -0.2, -0.3, -0.5, -0.8, -1.3, -2.0, -3.0, -4.4,
    -6.2, -8.5, -11.2,
)
CLASS1_DB: tuple[tuple[float, float | None], ...] = (
    (3.5, None), (3.0, None), (2.5, -4.5), (2.5, -2.5), (2.5, -2.0), (2.0, -2.0), (1.5, -1.5),
    (1.5, -1.5), (1.5, -1.5), (1.5, -1.5), (1.5, -1.5), (1.5, -1.5), (1.5, -1.5), (1.5, -1.5),
    (1.4, -1.4), (1.4, -1.4), (1.4, -1.4), (1.4, -1.4), (1.4, -1.4), (1.4, -1.4), (1.1, -1.1),
    (1.4, -1.4), (1.4, -1.4), (1.6, -1.6), (1.6, -1.6), (1.6, -1.6), (1.6, -1.6), (2.1, -2.1),
    (2.1, -2.6), (2.1, -3.1), (2.6, -3.6), (3.0, -6.0), (3.5, -17.0), (4.0, None),
)

# Annex E pole frequencies (E.4.1), from fr = 1 kHz, fL = 10**1.5 Hz, fH = 10**3.9 Hz,
# fA = 10**2.45 Hz, D**2 = 1/2.
_D = np.sqrt(0.5)
_FR, _FL, _FH, _FA = 1000.0, 10**1.5, 10**3.9, 10**2.45


def _poles() -> tuple[float, float, float, float]:
    # E.2: f1, f4 from the C-weighting's definition; E.3: f2, f3 from fA.
    c = _FL**2 * _FH**2
    b = (1 / (1 - _D)) * (_FR**2 + _FL**2 * _FH**2 / _FR**2 - _D * (_FL**2 + _FH**2))
    f1 = np.sqrt((-b - np.sqrt(b * b - 4 * c)) / 2)
    f4 = np.sqrt((-b + np.sqrt(b * b - 4 * c)) / 2)
    f2 = (3 - np.sqrt(5)) / 2 * _FA
    f3 = (3 + np.sqrt(5)) / 2 * _FA
    return float(f1), float(f2), float(f3), float(f4)


F1, F2, F3, F4 = _poles()


def weighting_response(f: np.ndarray, weighting: str) -> np.ndarray:
    """Complex analog response H(j 2 pi f) of weighting A, C or Z, |H(1 kHz)| = 1."""
    f = np.asarray(f, dtype=float)

    def raw(ff: np.ndarray) -> np.ndarray:
        s = 2j * np.pi * ff
        w1, w2, w3, w4 = (2 * np.pi * x for x in (F1, F2, F3, F4))
        if weighting == "A":
            return s**4 * w4**2 / ((s + w1) ** 2 * (s + w2) * (s + w3) * (s + w4) ** 2)
        if weighting == "C":
            return s**2 * w4**2 / ((s + w1) ** 2 * (s + w4) ** 2)
        if weighting == "Z":
            return np.ones_like(s)
        raise ValueError(weighting)

    return raw(f) / abs(raw(np.array([1000.0]))[0])


def weighting_db(f: float | np.ndarray, weighting: str) -> np.ndarray:
    """Design goal (dB) of the weighting at frequency f (exact, not rounded)."""
    return 20 * np.log10(np.abs(weighting_response(np.atleast_1d(f), weighting)))


def weigh(x: np.ndarray, rate: int, weighting: str) -> np.ndarray:
    """x through the analog weighting, exactly (FFT with a second of zero padding, so the
    causal impulse response does not wrap around)."""
    n = len(x) + rate
    spec = np.fft.rfft(x, n)
    f = np.fft.rfftfreq(n, 1 / rate)
    h = weighting_response(f, weighting)
    h[0] = abs(h[0])
    h[-1] = abs(h[-1])  # Nyquist bin of a real signal stays real
    return np.fft.irfft(spec * h, n)[: len(x)]


def slots_to_pa(raw: bytes, sensitivity_dbfs: float) -> np.ndarray:
    """32-bit I2S slots (24-bit samples) to sound pressure in Pa for a microphone of this
    sensitivity (a 94 dB SPL sine gives peak (2**23 - 1) * 10**(sensitivity/20))."""
    words = np.frombuffer(raw, dtype="<i4").astype(float) / 256.0
    p94 = P_REF * 10 ** (94 / 20)
    return words * p94 / ((2**23 - 1) * 10 ** (sensitivity_dbfs / 20) / np.sqrt(2))


@dataclass(frozen=True)
class Levels:
    eq: float
    fmax: float
    fmin: float
    l10: float
    l50: float
    l90: float


def levels(
    pa: np.ndarray, rate: int, start: int, weighting: str = "A", prime: int | None = None, every: int = 1
) -> Levels:
    """Levels of pa[start:] (dB re 20 uPa). The Fast detector starts, as a meter warmed up
    for one time constant would be, at the mean square of the `prime` samples before start.
    The statistical levels sample the Fast level every `every` samples (a meter's rate of
    sampling for its statistics; maximum and minimum look at every sample)."""
    pw = weigh(pa - pa.mean(), rate, weighting) if weighting == "Z" else weigh(pa, rate, weighting)
    p2 = pw * pw
    if prime is None:
        prime = round(FAST_S * rate)
    f0 = p2[start - prime : start].mean()
    k = np.exp(-1.0 / (rate * FAST_S))
    fast, _ = signal.lfilter([1 - k], [1, -k], p2[start:], zi=[k * f0])
    lf = 10 * np.log10(fast / P_REF**2)
    sampled = lf[every - 1 :: every]
    return Levels(
        eq=float(10 * np.log10(p2[start:].mean() / P_REF**2)),
        fmax=float(lf.max()),
        fmin=float(lf.min()),
        l10=float(np.percentile(sampled, 90)),
        l50=float(np.percentile(sampled, 50)),
        l90=float(np.percentile(sampled, 10)),
    )
