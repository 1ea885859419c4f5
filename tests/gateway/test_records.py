"""The stored and published SenML JSON: float32 values printed as the decimals the node meant."""

from __future__ import annotations

import struct

from hypothesis import given, strategies as st

from gonggi_gateway.records import float32_decimal


def f32(x: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


def test_float32_values_print_as_their_shortest_decimal() -> None:
    assert float32_decimal(f32(20.1)) == 20.1
    assert float32_decimal(f32(43.12)) == 43.12
    assert float32_decimal(f32(-5.25)) == -5.25
    assert float32_decimal(0.1) == 0.1  # not a float32: a float64 value is left alone
    assert float32_decimal(1e300) == 1e300


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_the_decimal_reads_back_as_the_same_float32(value: float) -> None:
    short = float32_decimal(value)
    assert f32(short) == value
    assert len(repr(short)) <= len(repr(value))
