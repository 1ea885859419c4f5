"""Steady-state sampling allocates nothing on the MicroPython heap: every I2C driver's poll() and
the battery's, and the node's sample() with its climate compensation, against a bus whose
readings change every cycle, while the samples still decode to the right values.

The PMS5003 and SDS011 (UART) have the same test in test_pms5003.py and test_sds011.py. On the
64-bit VM an int below 2**62 is small, so these tests cannot see an intermediate of 2**30 or
more, which allocates on the ESP32: test_alloc_bounds.py covers that.
"""

from __future__ import annotations

import ast
import math

from gonggi_emu.devices.bme280 import EXAMPLE_TRIMMING as TRIM

N = 8
BME = [(415148 + 1997 * k, 519888 + 2311 * k - 9000, 30000 + 701 * k) for k in range(N)]
SCD = [(420 + 57 * k, 0x6667 + 311 * k, 0x5EB9 - 503 * k) for k in range(N)]
SPS = [
    (12.5 + k, 20.25 + 2 * k, 22.0 + 2 * k, 23.125 + 3 * k, 75.5 + k, 88.0 + k, 90.0 + k, 90.5 + k, 90.75 + k, 0.5625)
    for k in range(N)
]
SGP = [30000 + (37 * k) % 41 - 20 for k in range(N)]
UVS = [1950000 + 11111 * k for k in range(N)]

BUS = f"""
import array, gc
from fake_i2c import FakeClock
from heapcheck import allocated
from live_bus import LiveBus
from sensor import NO_SAMPLE, WARMING
import drivers.bme280, drivers.scd4x, drivers.sps30, drivers.sgp40
from drivers.bme280 import BME280
from drivers.scd4x import SCD4x
from drivers.sps30 import SPS30
from drivers.sgp40 import SGP40
from drivers.battery import Battery
clk = FakeClock(1000)
for mod in (drivers.bme280, drivers.scd4x, drivers.sps30, drivers.sgp40):
    mod.time = clk
bus = LiveBus({BME!r}, {SCD!r}, {SPS!r}, {SGP!r}, {UVS!r})
"""


def _close(got: int, want: float, tol: float) -> bool:
    return abs(got - want) <= tol


def _check_values(name: str, k: int, vals: list[int]) -> None:
    """The last sample of each sensor decodes variant k of the bus's readings."""
    if name == "bme":
        adc_p, adc_t, adc_h = BME[k]
        t, t_fine = TRIM.temperature(adc_t)
        assert _close(vals[0], t * 100, 1)
        assert _close(vals[1], TRIM.humidity(adc_h, t_fine) * 100, 1)
        assert _close(vals[2], TRIM.pressure(adc_p, t_fine), 4)
    elif name == "scd4x":
        co2, tw, hw = SCD[k]
        assert vals[0] == co2
        assert _close(vals[1], (-45 + 175 * tw / 65536) * 100, 0.5)
        assert _close(vals[2], 100 * hw / 65536 * 100, 0.5)
    elif name == "sps30":
        # The driver rounds halves up (these floats are exact in float32).
        assert vals == [math.floor(v * 100 + 0.5) for v in SPS[k][:9]] + [math.floor(SPS[k][9] * 1000 + 0.5)]
    elif name == "sgp40":
        assert vals[0] == SGP[k]
        assert 1 <= vals[1] <= 500
    elif name == "bat":
        assert vals == [UVS[k] * 2000 // 1000000]
    else:
        raise AssertionError(name)


def test_every_driver_polls_fresh_readings_without_allocating(mpy) -> None:
    out = mpy.run(
        BUS
        + """
sensors = [BME280(bus), SCD4x(bus), SPS30(bus), SGP40(bus), Battery(bus.adc)]
vals = array.array('i', [0] * 10)
last = array.array('i', [0] * 10)
for s in sensors:
    n = len(s.channels)
    state = [0, 0, 0]   # cycle, samples, variant of the last sample

    def run(cycles, s=s, n=n, state=state):
        i = state[0]
        for _ in range(cycles):
            i += 1
            bus.cycle(i)
            clk.now += 250
            f = s.poll(clk.now, vals, 0)
            if not f & (NO_SAMPLE | WARMING):
                state[1] += 1
                state[2] = i % bus.n
                for c in range(n):
                    last[c] = vals[c]
        state[0] = i

    run(300)          # start-up, warm-up, the VOC index's blackout
    state[1] = 0
    print(s.name, allocated(lambda: run(400)), state[1], state[2], list(last[:n]))
"""
    )
    rows = [line.split(" ", 4) for line in out.splitlines()]
    assert [r[0] for r in rows] == ["bme", "scd4x", "sps30", "sgp40", "bat"]
    for name, alloc, samples, k, vals in rows:
        assert alloc == "0", (name, alloc)
        # Two measured runs of 400 cycles of 250 ms (200 s): the fake parts always have data
        # ready, so the drivers' own pacing shows: SGP40 1 s, SCD41 two polls, others every poll.
        assert int(samples) >= {"scd4x": 150, "sps30": 790, "sgp40": 190}.get(name, 800), (name, samples)
        _check_values(name, int(k), ast.literal_eval(vals))


def test_node_sampling_with_climate_compensation_allocates_nothing(mpy) -> None:
    out = mpy.run(
        BUS
        + """
import config
from node import Node
from ring import Ring
cfg = config.validate({"node_id": "alloc", "key": "00" * 32, "sample_s": 1, "report_s": 60,
                       "slot_size": 2048})
bme = BME280(bus)
scd = SCD4x(bus)
sgp = SGP40(bus)
node = Node(cfg, None, [bme, scd, SPS30(bus), sgp, Battery(bus.adc)], Ring("ring.bin", 4, 2048), 1, clk)
state = [0]

def run(cycles):
    i = state[0]
    for _ in range(cycles):
        i += 1
        bus.cycle(i)
        clk.now += 250
        node.sample(clk.now, clk.now)   # a report is always due: no sensor is left asleep
    state[0] = i

run(300)
for a in node._aggs:
    a.reset()
print(allocated(lambda: run(400)))
print([a.count for a in node._aggs])
# The compensation reached its sinks: the SCD41 has the BME280's pressure, the SGP40 its T/RH.
t, rh, p = node._vals[0], node._vals[1], node._vals[2]
print(scd._hpa == scd._pa // 100 and -100 < scd._pa - p < 100, sgp._t == ((t + 4500) * 65535 + 8750) // 17500,
      sgp._rh == (rh * 65535 + 5000) // 10000)
""",
        heap="1M",  # the node, five drivers and the fakes as .py source: compiling them takes room
    )
    alloc, counts, comp = out.splitlines()
    assert alloc == "0"
    bme, scd, sps, sgp, bat = ast.literal_eval(counts)
    assert bme == bat == 800 and sps >= 790 and sgp >= 190 and scd >= 150
    assert comp.split() == ["True", "True", "True"]
