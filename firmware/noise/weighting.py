# Frequency weightings A, C and Z of IEC 61672-1:2013 as filter sections for one sample rate.
#
# The analog weightings (Annex E) are products of first-order factors: A = s^4 over
# (s + w1)^2 (s + w2) (s + w3) (s + w4)^2 and C = s^2 over (s + w1)^2 (s + w4)^2.
# - Each low-frequency factor s / (s + w) becomes one first-order high-pass by the bilinear
#   transform, designed here for the configured rate: its pole is far below Nyquist, where the
#   transform's frequency warping costs < 0.06 dB even at 16 kHz. Kept first-order (not paired
#   into biquads) so the fixed-point kernel can hold the pole as 1 - e with e in full precision.
# - The pole pair at f4 = 12.2 kHz sits near or above Nyquist, where the bilinear transform
#   fails (-6 dB at 16 kHz for fs = 48 kHz). It is one biquad per supported rate, fitted offline
#   (minimax of the magnitude error against 1 / (1 + (f/f4)^2) over 100 Hz .. min(20 kHz,
#   Nyquist), zeros reflected inside the unit circle; docs/noise.md has the fit). A closed-form
#   design on the node (matched z) costs 0.4 to 0.9 dB at the top third-octaves; the fit < 0.08.
# Z is flat: a 1 Hz DC blocker removes the microphone's offset (SPH0645) that A and C remove
# with their zeros at DC. The optional microphone equaliser is a first-order shelf that undoes
# the capsule's low-frequency roll-off (a first-order high-pass at its -3 dB corner) down to a
# quarter of that corner.
import math

from micropython import const

# Pole frequencies (Hz) of IEC 61672-1:2013 Annex E (E.4.1), from fr = 1 kHz, fL = 10^1.5 Hz,
# fH = 10^3.9 Hz and fA = 10^2.45 Hz.
F1 = 20.598997
F2 = 107.65265
F3 = 737.86223
F4 = 12194.217

# Section kinds and their parameters (floats):
HP = const(0)      # (e,): (1 - z^-1) / (1 - (1 - e) z^-1)
SHELF = const(1)   # (ez, ep): (1 - (1 - ez) z^-1) / (1 - (1 - ep) z^-1)
BQ = const(2)      # (b0, b1, b2, a1, a2): (b0 + b1 z^-1 + b2 z^-2) / (1 + a1 z^-1 + a2 z^-2)

# The f4 pole pair per sample rate; worst deviation from the analog pair, 100 Hz .. 20 kHz:
# 16 kHz 0.027 dB, 32 kHz 0.071 dB, 44.1 kHz 0.026 dB, 48 kHz 0.033 dB.
_F4_PAIR = {
    16000: (0.8799108993, 0.9184409957, 0.1687110761, 0.8937941178, 0.0793245645),
    32000: (0.6649646077, 0.6926016513, 0.1369668801, 0.6059396618, -0.0991908758),
    44100: (0.5329869277, 0.5907046120, 0.1403560886, 0.4606230061, -0.2002476341),
    48000: (0.4998318994, -0.0724167707, -0.0986247613, -0.8387960885, 0.1663320414),
}
RATES = (16000, 32000, 44100, 48000)

_DC_HZ = 1.0       # Z-weighting DC blocker corner: -0.04 dB at 10 Hz
_EQ_RANGE = const(4)  # the equaliser restores the response down to corner / _EQ_RANGE


def _hp_e(rate, f):
    # 1 - pole of the bilinear transform of s / (s + 2 pi f), computed without cancellation.
    w = 2.0 * math.pi * f
    return 2.0 * w / (2.0 * rate + w)


def design(weighting, rate, mic_corner_hz=0.0):
    # Sections (kind, params) of the weighting at rate, after the optional equaliser for a
    # microphone whose low-frequency -3 dB corner is mic_corner_hz. Raises ValueError.
    if rate not in _F4_PAIR:
        raise ValueError("noise: sample rate %d Hz not supported %r" % (rate, RATES))
    secs = []
    if mic_corner_hz:
        secs.append((SHELF, (_hp_e(rate, mic_corner_hz), _hp_e(rate, mic_corner_hz / _EQ_RANGE))))
    if weighting == "A":
        poles = (F1, F1, F2, F3)
    elif weighting == "C":
        poles = (F1, F1)
    elif weighting == "Z":
        poles = (_DC_HZ,)
    else:
        raise ValueError("noise: weighting %r is not A, C or Z" % (weighting,))
    for f in poles:
        secs.append((HP, (_hp_e(rate, f),)))
    if weighting != "Z":
        secs.append((BQ, _F4_PAIR[rate]))
    return secs


def gain(secs, rate, f):
    # |H(f)| of the unscaled cascade, in closed form per section (stable for e << 1).
    w = 2.0 * math.pi * f / rate
    s2 = math.sin(0.5 * w) ** 2
    g = 1.0
    for kind, p in secs:
        if kind == BQ:
            b0, b1, b2, a1, a2 = p
            c1, c2, n1, n2 = math.cos(w), math.cos(2 * w), math.sin(w), math.sin(2 * w)
            num = (b0 + b1 * c1 + b2 * c2) ** 2 + (b1 * n1 + b2 * n2) ** 2
            den = (1.0 + a1 * c1 + a2 * c2) ** 2 + (a1 * n1 + a2 * n2) ** 2
            g *= math.sqrt(num / den)
        else:
            ez = 0.0 if kind == HP else p[0]
            ep = p[-1]
            # |1 - (1 - e) e^-jw|^2 = 4 (1 - e) sin^2(w/2) + e^2
            g *= math.sqrt((4.0 * (1.0 - ez) * s2 + ez * ez) / (4.0 * (1.0 - ep) * s2 + ep * ep))
    return g
