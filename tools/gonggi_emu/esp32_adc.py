"""The ESP32's 12-bit SAR ADC: a pin voltage to the raw code, and the calibrated reading.

Each attenuation scales the input to the ADC's ~1.1 V reference; ESP-IDF gives the full-scale
input voltage per setting (VDD_A = 3.3 V): 0 dB 1.1 V, 2.5 dB 1.5 V, 6 dB 2.2 V, 11 dB 3.9 V,
the last limited by VDD_A, which is also the most a pin can take. The conversion is modelled as
linear over that span, and ``read_uv()`` (esp_adc_cal) as its exact inverse rounded to whole
millivolts, the resolution the calibration API returns.
"""

from __future__ import annotations

__all__ = ["FULL_SCALE_V", "MAX_CODE", "VDD_A", "calibrated_uv", "raw_code"]

# Index = machine.ADC.ATTN_0DB .. ATTN_11DB.
FULL_SCALE_V = (1.1, 1.5, 2.2, 3.9)
VDD_A = 3.3
MAX_CODE = 4095


def raw_code(volts: float, atten: int) -> int:
    """The 12-bit code for ``volts`` on the pin with attenuation ``atten`` (0..3)."""
    pin = min(max(volts, 0.0), VDD_A)
    return min(MAX_CODE, round(pin / FULL_SCALE_V[atten] * MAX_CODE))


def calibrated_uv(code: int, atten: int) -> int:
    """What ``ADC.read_uv()`` returns for ``code``: microvolts, in whole millivolts."""
    return round(code * FULL_SCALE_V[atten] * 1000 / MAX_CODE) * 1000
