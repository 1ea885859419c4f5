"""SGP40 driver on the MicroPython VM, against a fake bus replaying datasheet transactions."""

from __future__ import annotations

import pytest

SETUP = """
import array, gc
from fake_i2c import FakeI2C, FakeClock
from heapcheck import allocated
from drivers.sensirion import crc8
import drivers.sgp40 as m
from sensor import *
clk = FakeClock(1000)
m.time = clk
bus = FakeI2C()
def w(v):
    b = bytes([v >> 8, v & 0xFF])
    return b + bytes([crc8(b, 0, 2)])
bus.answer(0x59, 0x3682, w(0x0000) + w(0x0102) + w(0x0304))
bus.answer(0x59, 0x280E, w(0xD400))
bus.answer(0x59, 0x260F, w(0x7530))     # 30000 ticks
out = array.array('i', [0, 0])
def step(ms=1000):
    clk.now += ms
    return s.poll(clk.now, out, 0)
"""


def test_start_up_and_measure_raw_frames(mpy):
    out = mpy.run(
        SETUP
        + """
s = m.SGP40(bus)
print("serial", hex(s.serial))
step()
s.set_compensation(2500, 5000)
step()
s.set_compensation(-1000, 8000)
step()
print("writes", " ".join(b.hex() for a, b in bus.writes))
print("values", out[0], out[1])
"""
    )
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert lines["serial"] == "0x1020304"
    # Serial, self test, then measure_raw with the datasheet's default compensation frame
    # (50 %RH = 0x8000 CRC 0xA2, 25 degC = 0x6666 CRC 0x93), the same from set_compensation,
    # then 80 %RH / -10 degC = 0xCCCC / 0x3333.
    assert lines["writes"].split() == [
        "3682", "280e", "260f8000a2666693", "260f8000a2666693", "260fcccca5333388",
    ]
    assert lines["values"] == "30000 0"


def test_sampling_interval_and_the_30_ms_wait(mpy):
    out = mpy.run(
        SETUP
        + """
s = m.SGP40(bus)
print(step(1000), step(10), step(25), step(965), step(1000))
print(out[0])
"""
    )
    # measure sent; 10 ms: not ready; 35 ms: the sample (index blackout: WARMING) - no new
    # measurement yet; 1000 ms after the last: sample + next measurement in the same poll.
    assert out.splitlines() == ["16 16 1 16 1", "30000"]


def test_index_starts_after_the_blackout(mpy):
    out = mpy.run(
        SETUP
        + """
s = m.SGP40(bus)
flags = [step() for _ in range(250)]
print(flags[40] & WARMING, flags[249], out[1])
"""
    )
    assert out.split() == ["1", "0", "100"]


@pytest.mark.parametrize(
    ("fault", "flag"),
    [
        ("bus.nack = True", "MISSING"),
        ("bus.answer(0x59, 0x260F, b'\\x75\\x30\\x00')", "CHECKSUM"),
        ("bus.answer(0x59, 0x260F, b'\\x75')", "CHECKSUM"),
    ],
    ids=["nack", "crc", "truncated"],
)
def test_faults_become_flags_and_the_driver_recovers(mpy, fault, flag):
    out = mpy.run(
        SETUP
        + f"""
s = m.SGP40(bus)
for _ in range(50):
    step()
healthy = bus.answers.copy()
{fault}
seen = 0
for _ in range(3):
    seen |= step()
print(seen & {flag} != 0, s.nacks, s.crc_errors, s.restarts)
bus.nack = False
bus.answers.update(healthy)
flags = [step() for _ in range(3)]
print(flags[-1], out[0], s.voc.uptime > 45)
"""
    )
    first, second = out.splitlines()
    seen, nacks, crc, restarts = first.split()
    assert seen == "True"
    if flag == "MISSING":
        # A part that stopped answering lost its heater history: the index learns again.
        assert int(nacks) > 0 and restarts == "1"
        assert second.split() == ["1", "30000", "False"]
    else:
        assert int(crc) > 0 and restarts == "0"
        assert second.split() == ["0", "30000", "True"]


def test_stuck_raw_value_is_flagged(mpy):
    out = mpy.run(
        SETUP
        + """
s = m.SGP40(bus, stuck_ms=20000)
flags = [step() for _ in range(30)]
print(flags[10] & STUCK, flags[29] & STUCK)
"""
    )
    assert out.split() == ["0", "4"]


def test_failed_self_test_is_refused(mpy):
    out = mpy.run(
        SETUP
        + """
bus.answer(0x59, 0x280E, w(0x4B00))
try:
    m.SGP40(bus)
except ValueError as e:
    print(e)
"""
    )
    assert "SGP40 at 0x59: self test failed (0x4b00)" in out


def test_heater_off_on_sleep(mpy):
    out = mpy.run(
        SETUP
        + """
s = m.SGP40(bus, self_test=False)
bus.writes = []
s.sleep()
print(" ".join(b.hex() for a, b in bus.writes))
"""
    )
    assert out.split() == ["3615"]


def test_no_allocation_per_poll_besides_the_voc_index(mpy):
    out = mpy.run(
        SETUP
        + """
s = m.SGP40(bus)
bus.writes = None
class FixedIndex:
    # Stands in for VocIndex, whose float arithmetic allocates (see voc_index.py).
    def process(self, raw):
        return 100
    def reset(self):
        pass
s.voc = FixedIndex()
def run():
    for _ in range(300):
        step()
print(allocated(run), out[0], out[1])
"""
    )
    assert out.split() == ["0", "30000", "100"]
