# I2S MEMS microphones: their datasheet figures and slot format.
#
# All three send two's complement samples MSB first in a 32-bit I2S slot (64 SCK per WS frame):
# 24 data bits then zeros, so the sample is the slot >> 8 (biquad.py unpacks it on the fly).
# SPH0645 carries 18 significant bits (the rest zero) and a DC offset that the weighting removes
# (zeros at DC for A and C, a 1 Hz blocker for Z; the cascade starts primed with the first
# sample, so the offset sends no step through it). Sensitivity is the output of a 94 dB SPL
# 1 kHz sine in dBFS, 0 dBFS being a sine of peak 2**23 - 1.
from micropython import const

# model: (sensitivity dBFS @ 94 dB SPL, data bits, SNR dB(A) (self-noise = 94 - SNR dB(A)),
#         low-frequency -3 dB corner Hz)
MODELS = {
    # InvenSense DS-INMP441-00 rev 1.1, table 1.
    "inmp441": (-26.0, 24, 61.0, 60.0),
    # TDK DS-000069 rev 1.2, table 1; corner read from its typical frequency response plot.
    "ics43434": (-26.0, 24, 65.0, 50.0),
    # Knowles SPH0645LM4H-B rev C, table 2; corner read from its typical frequency response plot.
    "sph0645": (-26.0, 18, 65.0, 50.0),
}

CLIPPED = const(1)   # a block reached the converter's end of scale
DEAD = const(2)      # every sample of a block equal: nothing drives the data line


def model(name):
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError("noise: unknown microphone %r (%s)" % (name, ", ".join(sorted(MODELS))))


def top(bits):
    # The largest positive 24-bit code of a converter with `bits` significant bits.
    return (1 << 23) - (1 << (24 - bits))
