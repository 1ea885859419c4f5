# Runs as main.py on a board (emulated or real) to measure what the node's steady-state sampling
# allocates: the real drivers of config.json, the real scheduler, no link. Prints one JSON line.
import gc
import json
import time

import config
from clock import Clock
from node import Node
from ring import Ring
from sensors import build

CYCLES = 20
PERIOD_MS = 250    # faster than a node samples; each poll still reads the sensor's fresh bytes
SETTLE_MS = 90000  # at most this long for every sensor to deliver samples (PM warm-up is 30 s)


class NoLink:
    up = True

    def send(self, ftype, *parts):
        pass


def cycle(node):
    now = node.clock.ticks_ms()
    node.sample(now, now)  # a report is always due: duty-cycled sensors stay awake


def settle(node):
    # Until every sensor has delivered a counted sample: start-up commands, warm-up, first
    # frames and lazily grown buffers are not the steady state.
    start = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), start) < SETTLE_MS:
        cycle(node)
        if all(a.count for a in node._aggs):
            break
        time.sleep_ms(PERIOD_MS)
    for a in node._aggs:
        a.reset()


def measure(node):
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for _ in range(CYCLES):
        cycle(node)
        time.sleep_ms(PERIOD_MS)
    used = gc.mem_alloc() - before
    gc.enable()
    return used


def per_sensor(node):
    # The same polls one sensor at a time: who allocates, if anything does.
    out = {}
    vals = node._vals
    for i, s in enumerate(node.sensors):
        gc.collect()
        gc.disable()
        before = gc.mem_alloc()
        for _ in range(8):
            s.poll(time.ticks_ms(), vals, node._offs[i])
            time.sleep_ms(PERIOD_MS)
        out[s.name] = gc.mem_alloc() - before
        gc.enable()
    return out


cfg = config.load()
node = Node(cfg, NoLink(), build(cfg["sensors"]), Ring("ring.bin", 4, cfg["slot_size"]), 1, Clock())
settle(node)
polls = per_sensor(node)
sampling = measure(node)
counts = {s.name: a.count for s, a in zip(node.sensors, node._aggs)}
gc.collect()
gc.disable()
before = gc.mem_alloc()
node.report(node.clock.uptime_ms())
report = gc.mem_alloc() - before
gc.enable()
gc.collect()
print("MEMORY " + json.dumps({"cycles": CYCLES, "sampling_bytes": sampling, "report_bytes": report,
                              "samples": counts, "poll_bytes": polls,
                              "free": gc.mem_free(), "used": gc.mem_alloc()}))
