"""The ESP32 ADC model and the battery on it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gonggi_emu.devices.battery import Battery
from gonggi_emu.esp32_adc import FULL_SCALE_V, MAX_CODE, calibrated_uv, raw_code
from gonggi_emu.scenario import Fault, Scenario

ATTN_0DB, ATTN_11DB = 0, 3


def test_codes_scale_with_the_full_scale_voltage_of_each_attenuation() -> None:
    assert raw_code(0.0, ATTN_11DB) == 0
    assert raw_code(1.95, ATTN_11DB) == round(1.95 / 3.9 * 4095) == 2048
    assert raw_code(0.55, ATTN_0DB) == 2048
    assert raw_code(1.1, ATTN_0DB) == MAX_CODE


def test_inputs_outside_the_range_saturate() -> None:
    assert raw_code(2.0, ATTN_0DB) == MAX_CODE
    assert raw_code(-0.3, ATTN_11DB) == 0
    # At 11 dB the pin itself is the limit: no more than VDD_A (3.3 V) gets through.
    assert raw_code(5.0, ATTN_11DB) == raw_code(3.3, ATTN_11DB) == round(3.3 / 3.9 * 4095)


@given(st.floats(0.0, 1.0), st.sampled_from(range(4)))
def test_read_uv_inverts_the_conversion_to_within_one_code_and_a_millivolt(fraction: float, atten: int) -> None:
    volts = fraction * min(FULL_SCALE_V[atten], 3.3)
    uv = calibrated_uv(raw_code(volts, atten), atten)
    assert uv % 1000 == 0
    assert abs(uv / 1e6 - volts) <= FULL_SCALE_V[atten] / MAX_CODE / 2 + 0.0005


def test_the_battery_pin_sees_the_cell_through_the_divider() -> None:
    scenario = Scenario.from_dict({"values": {"battery_v": [[0, 4.2], [100, 3.4]]}})
    battery = Battery(scenario, ratio=2.0)
    assert battery.volts(0.0) == pytest.approx(2.1)
    assert battery.volts(50.0) == pytest.approx(1.9)
    assert Battery(Scenario(), ratio=3.0).volts(0.0) == pytest.approx(1.3)  # 3.9 V by default


def test_an_unplugged_battery_reads_zero() -> None:
    scenario = Scenario()
    scenario.inject(Fault("battery", "unplug", start=10.0, end=20.0))
    battery = Battery(scenario)
    assert battery.volts(5.0) > 1.0
    assert battery.volts(15.0) == 0.0


def test_a_divider_cannot_multiply() -> None:
    with pytest.raises(ValueError, match="ratio 0.5 < 1"):
        Battery(Scenario(), ratio=0.5)
