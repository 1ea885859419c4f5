"""SCD4x driver on the MicroPython VM, against a fake bus replaying datasheet transactions."""

from __future__ import annotations

import pytest

# The bus and a driver constructed on a virtual clock; the serial number answer and a data-ready
# "yes" (0x8006, as real parts answer) are scripted; w() frames a word with its CRC.
SETUP = """
import array, gc
from fake_i2c import FakeI2C, FakeClock
from heapcheck import allocated
from drivers.sensirion import crc8
import drivers.scd4x as m
from sensor import *
clk = FakeClock(1000)
m.time = clk
bus = FakeI2C()
def w(v):
    b = bytes([v >> 8, v & 0xFF])
    return b + bytes([crc8(b, 0, 2)])
bus.answer(0x62, 0x3682, w(0xF896) + w(0x9F07) + w(0x3BB2))
bus.answer(0x62, 0xE4B8, w(0x8006))
# Datasheet read_measurement example: CO2 0x01F4, T 0x6667, RH 0x5EB9.
bus.answer(0x62, 0xEC05, w(0x01F4) + w(0x6667) + w(0x5EB9))
out = array.array('i', [0, 0, 0])
def step(ms=1000):
    clk.now += ms
    return s.poll(clk.now, out, 0)
"""


def test_crc_datasheet_examples(mpy):
    out = mpy.run(
        """
        from drivers.sensirion import crc8
        print(hex(crc8(b'\\xbe\\xef', 0, 2)), hex(crc8(b'\\x00\\x01\\xbe\\xef', 2, 2)))
        """
    )
    assert out.split() == ["0x92", "0x92"]


def test_start_up_sequence_and_datasheet_measurement(mpy):
    out = mpy.run(
        SETUP
        + """
s = m.SCD4x(bus, temp_offset_c=5.4, altitude_m=520)
print("serial", hex(s.serial))
print("writes", " ".join(b.hex() for a, b in bus.writes))
print("t", clk.now)
flags = [step() for _ in range(3)]
print("flags", flags)
print("values", out[0], out[1], out[2])
"""
    )
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert lines["serial"] == "0xf8969f073bb2"
    # wake_up, stop (then 500 ms), serial, temperature offset 5.4 degC = 0x07E6 (the datasheet's
    # example, CRC 0x48), altitude 520 m = 0x0208, ASC on, start periodic.
    assert lines["writes"].split() == [
        "36f6", "3f86", "3682", "241d07e648", "24270208e1", "24160001b0", "21b1",
    ]
    assert int(lines["t"]) >= 1000 + 30 + 500 + 3
    # data ready asked, answered yes -> read_measurement sent, read: one sample.
    assert lines["flags"] == "[16, 16, 0]"
    assert lines["values"] == "500 2500 3700"  # 500 ppm, 25.00 degC, 37.00 %RH


def test_ambient_pressure_goes_out_between_samples(mpy):
    out = mpy.run(
        SETUP
        + """
s = m.SCD4x(bus)
bus.writes = []
s.set_ambient_pressure(98765)
for _ in range(4):
    step()
print(" ".join(b.hex() for a, b in bus.writes))
"""
    )
    # 987 hPa = 0x03DB; then the data-ready request, the measurement read and the next request.
    assert out.split() == ["e00003db42", "e4b8", "ec05", "e4b8"]


def test_no_data_while_commands_execute(mpy):
    out = mpy.run(
        SETUP
        + """
s = m.SCD4x(bus)
print(step(1000), step(0), step(0))
"""
    )
    # The data-ready request was just sent: its 1 ms has not passed at the same now_ms.
    assert out.split() == ["16", "16", "16"]


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("bus.nack = True", "MISSING"),
        ("bus.answer(0x62, 0xEC05, w(0x01F4) + w(0x6667) + bytes([0x5E, 0xB9, 0x00]))", "CHECKSUM"),
        ("bus.answer(0x62, 0xEC05, w(0x01F4) + b'\\x66')", "CHECKSUM"),
    ],
    ids=["nack", "crc", "truncated"],
)
def test_faults_become_flags_and_the_driver_recovers(mpy, fault, expected):
    out = mpy.run(
        SETUP
        + f"""
s = m.SCD4x(bus)
healthy = bus.answers.copy()
{fault}
seen = 0
for _ in range(6):
    seen |= step()
print("seen", seen & {expected} == {expected}, s.nacks, s.crc_errors)
bus.nack = False
bus.answers.update(healthy)
good = 0
for _ in range(12):
    if step() == 0 and out[0] == 500:
        good += 1
print("recovered", good > 0, s.restarts)
"""
    )
    lines = out.splitlines()
    seen = lines[0].split()
    assert seen[1] == "True"
    if expected == "MISSING":
        assert int(seen[2]) > 0
    else:
        assert int(seen[3]) > 0
    assert lines[1].split()[1] == "True"


def test_unplugged_part_is_restarted_from_wake_up(mpy):
    out = mpy.run(
        SETUP
        + """
s = m.SCD4x(bus)
step(); step()
bus.nack = True
print("missing", step() & MISSING)
bus.nack = False
bus.writes = []
for _ in range(14):
    step(300)
print(" ".join(b.hex() for a, b in bus.writes[:7]))
"""
    )
    lines = out.splitlines()
    assert lines[0] == "missing 8"
    assert lines[1].split() == ["36f6", "3f86", "3682", "241d05da29", "2427000081", "24160001b0", "21b1"]


def test_stuck_value_is_flagged(mpy):
    out = mpy.run(
        SETUP
        + """
s = m.SCD4x(bus, stuck_ms=20000)
flags = 0
for _ in range(15):
    flags |= step(2000)
print(flags & STUCK, s.stuck_count)
"""
    )
    assert out.split() == ["4", "1"]


def test_constructor_names_a_missing_part(mpy):
    out = mpy.run(
        SETUP
        + """
bus.nack = True
try:
    m.SCD4x(bus)
except OSError as e:
    print(e)
"""
    )
    assert "SCD4x not answering at 0x62" in out


def test_no_allocation_per_poll(mpy):
    out = mpy.run(
        SETUP
        + """
s = m.SCD4x(bus)
bus.writes = None
def run(n):
    for _ in range(n):
        step()
print(allocated(lambda: run(300)))
"""
    )
    assert out.split() == ["0"]
