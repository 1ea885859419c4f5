"""SPS30 driver on the MicroPython VM, against a fake bus replaying datasheet transactions."""

from __future__ import annotations

import struct

import pytest

SETUP = """
import array, gc, struct
from fake_i2c import FakeI2C, FakeClock
from heapcheck import allocated
from drivers.sensirion import crc8
import drivers.sps30 as m
from sensor import *
clk = FakeClock(1000)
m.time = clk
bus = FakeI2C()
def words(raw):
    out = b''
    for i in range(0, len(raw), 2):
        out += raw[i:i + 2] + bytes([crc8(raw, i, 2)])
    return out
def floats(*vals):
    return words(struct.pack('>10f', *vals))
bus.answer(0x69, 0xD033, words(b'E9F1D2A3B4C5D6E7' + bytes(16)))
bus.answer(0x69, 0x0202, words(b'\\x00\\x01'))
# mass PM1/2.5/4/10 (ug/m3), number 0.5/1/2.5/4/10 (#/cm3), typical size (um)
SAMPLE = (12.5, 20.25, 22.0, 23.125, 75.5, 88.0, 90.0, 90.5, 90.75, 0.5625)
bus.answer(0x69, 0x0300, floats(*SAMPLE))
out = array.array('i', [0] * 10)
def step(ms=1000):
    clk.now += ms
    return s.poll(clk.now, out, 0)
"""


def test_float_to_fixed_point_conversion(mpy):
    values = (0.0, 1.0, 12.5, 0.005, 0.015, 999.99, 3000.0, 524287.0, -3.25, 1e-30, 3.0e6)
    out = mpy.run(
        f"""
        import struct
        from drivers.sps30 import f32_fixed
        for v in {values!r} + (float('inf'), float('nan')):
            b = struct.pack('>f', v)
            hi, lo = b[0] << 8 | b[1], b[2] << 8 | b[3]
            print(f32_fixed(hi, lo, 100), f32_fixed(hi, lo, 1000))
        """
    )
    rows = [tuple(map(int, line.split())) for line in out.splitlines()]
    big = 0x3FFFFFFF
    for v, row in zip(values, rows):
        as_sent = struct.unpack(">f", struct.pack(">f", v))[0]
        for scale, got in zip((100, 1000), row):
            exact = round(as_sent * scale)
            if abs(as_sent) >= 1 << 19:
                assert got == big
            else:
                # 20 of the 24 mantissa bits are used: the last digit may be off by one
                # above 2**19 counts.
                assert abs(got - exact) <= (1 if abs(exact) >= 1 << 19 else 0)
    assert rows[len(values):] == [(big, big), (big, big)]


def test_start_up_and_decoded_sample(mpy):
    out = mpy.run(
        SETUP
        + """
s = m.SPS30(bus, clean_interval_s=345600)
print("serial", s.serial)
print("writes", " ".join(b.hex() for a, b in bus.writes))
bus.writes = []
print("flags", step())
print("values", " ".join(str(v) for v in out))
print("reads", " ".join(b.hex() for a, b in bus.writes))
print("later", step(15000))
"""
    )
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert lines["serial"] == "E9F1D2A3B4C5D6E7"
    # wake-up twice, reset, serial, auto-cleaning interval 4 days (0x0005 0x4600), start with
    # float output (0x03 0x00, CRC 0xAC: the datasheet's example frame).
    assert lines["writes"].split() == [
        "1103", "1103", "d304", "d033", "8004000574460052", "00100300ac",
    ]
    # Within warmup_ms of the fan's start, then not.
    assert lines["flags"] == "1"
    assert lines["later"] == "0"
    assert lines["values"].split() == ["1250", "2025", "2200", "2313", "7550", "8800", "9000", "9050", "9075", "563"]
    assert lines["reads"].split() == ["0202", "0300"]


def test_not_ready_is_no_data(mpy):
    out = mpy.run(
        SETUP
        + """
s = m.SPS30(bus)
bus.answer(0x69, 0x0202, words(b'\\x00\\x00'))
print(step())
"""
    )
    assert out.split() == ["16"]


@pytest.mark.parametrize(
    ("fault", "flag"),
    [
        ("bus.nack = True", "MISSING"),
        ("bus.answer(0x69, 0x0300, floats(*SAMPLE)[:-1] + b'\\x00')", "CHECKSUM"),
        ("bus.answer(0x69, 0x0300, floats(*SAMPLE)[:30])", "CHECKSUM"),
    ],
    ids=["nack", "crc", "truncated"],
)
def test_faults_become_flags_and_the_driver_recovers(mpy, fault, flag):
    out = mpy.run(
        SETUP
        + f"""
s = m.SPS30(bus)
healthy = bus.answers.copy()
{fault}
f = step()
print(f & {flag} != 0, f & NO_DATA != 0 or f & MISSING != 0, s.nacks + s.crc_errors)
bus.nack = False
bus.answers.update(healthy)
good = [step() for _ in range(8)]
print(WARMING in good or 0 in good, out[1])
"""
    )
    first, second = out.splitlines()
    assert first.split() == ["True", "True", "1"]
    assert second.split() == ["True", "2025"]


def test_stuck_values_are_flagged(mpy):
    out = mpy.run(
        SETUP
        + """
s = m.SPS30(bus, stuck_ms=10000)
flags = [step() for _ in range(12)]
print(flags[5] & STUCK, flags[11] & STUCK, s.stuck_count)
"""
    )
    assert out.split() == ["0", "4", "1"]


def test_sleep_and_wake(mpy):
    out = mpy.run(
        SETUP
        + """
s = m.SPS30(bus)
bus.writes = []
s.sleep()
s.wake()
for _ in range(6):
    step(50)
print(" ".join(b.hex() for a, b in bus.writes))
"""
    )
    # stop, sleep; on wake the whole start-up again (wake-up twice from sleep, reset, ...).
    assert out.split()[:6] == ["0104", "1001", "1103", "1103", "d304", "d033"]


def test_constructor_rejects_a_bad_serial_frame(mpy):
    out = mpy.run(
        SETUP
        + """
bus.answer(0x69, 0xD033, words(b'\\x00' * 32)[:-1] + b'\\x00')
try:
    m.SPS30(bus)
except ValueError as e:
    print(e)
"""
    )
    assert "SPS30 at 0x69" in out


def test_no_allocation_per_poll(mpy):
    out = mpy.run(
        SETUP
        + """
s = m.SPS30(bus)
bus.writes = None
def run(n):
    for _ in range(n):
        step()
print(allocated(lambda: run(300)))
"""
    )
    assert out.split() == ["0"]
