"""PMS5003/7003 driver on the MicroPython VM, fed datasheet frames through a fake UART."""

from __future__ import annotations

import ast

# One frame worked out by hand from the datasheet's layout (appendix I): header 42 4D, frame
# length 2*13+2 = 28, then PM1/PM2.5/PM10 CF=1 = 7/9/9, atmospheric 7/9/9, counts >0.3 um 1326
# (05 2E), >0.5 394 (01 8A), >1.0 52 (00 34), >2.5/5/10 0, reserved 97 00. Check code:
# 0x42 + 0x4D + 0x1C = 171; data bytes 7+9+9+7+9+9 = 50, 0x05+0x2E+0x01+0x8A+0x34 = 242,
# 0x97 = 151; 171 + 50 + 242 + 151 = 614 = 0x0266.
FRAME = "424d001c 000700090009 000700090009 052e018a0034000000000000 9700 0266".replace(" ", "")
WORDS = [7, 9, 9, 7, 9, 9, 1326, 394, 52, 0, 0, 0, 0x9700]

# Commands (appendix II): 42 4D CMD 00 DATA LRCH LRCL with LRC = sum of the first five bytes.
ACTIVE = "424de100010171"      # 0x42 + 0x4D + 0xE1 + 0x01 = 0x171
PASSIVE = "424de100000170"
READ = "424de200000171"
SLEEP = "424de400000173"
WAKE = "424de400010174"

PRELUDE = """
from array import array
from fake_uart import FakeUART
from pm_frames import pms_frame, pms_ack
from drivers.pms5003 import PMS5003
from sensor import WARMING, CHECKSUM, STUCK, MISSING, NO_DATA, RANGE, BUS, CONFIG
out = array("i", bytes(4 * 14))
"""


def run(mpy, code: str) -> dict:
    """Run PRELUDE + code on the VM; its last output line is a dict literal of results."""
    return ast.literal_eval(mpy.run(PRELUDE + code).strip().splitlines()[-1])


def test_datasheet_frame_decodes_into_channels(mpy):
    r = run(mpy, f"""
f = bytes.fromhex("{FRAME}")
u = FakeUART()
d = PMS5003(u)
u.feed(f)
flags = d.poll(0, out, 1)
print(dict(built=pms_frame({WORDS}).hex(), flags=flags, out=list(out),
           channels=[c[0] for c in d.channels], units=list(set(c[1] for c in d.channels)),
           exps=list(set(c[2] for c in d.channels)), frames=d.frames))
""")
    assert r["built"] == FRAME
    assert r["out"] == [0, 7, 9, 9, 7, 9, 9, 1326, 394, 52, 0, 0, 0, 0]
    assert r["channels"] == ["pm1", "pm25", "pm10", "pm1_cf1", "pm25_cf1", "pm10_cf1",
                             "n0_3", "n0_5", "n1_0", "n2_5", "n5_0", "n10"]
    assert sorted(r["units"]) == ["", "ug/m3"] and r["exps"] == [0]   # counts: no SenML unit
    assert r["flags"] == 0x01   # WARMING only: just powered up, a fresh frame
    assert r["frames"] == 1


def test_commands_are_the_datasheet_bytes(mpy):
    r = run(mpy, """
u = FakeUART()
d = PMS5003(u, passive=True)
res = dict(init=u.take_tx())
d.poll(0, out, 0)
res["poll"] = u.take_tx()
d.sleep()
res["sleep"] = u.take_tx()
d.wake()
res["wake"] = u.take_tx()
u2 = FakeUART()
PMS5003(u2)
res["active"] = u2.take_tx()
print(res)
""")
    # construction wakes the sensor too: the node may have rebooted while it slept
    assert r == {"init": WAKE + PASSIVE, "poll": READ, "sleep": SLEEP, "wake": WAKE + PASSIVE,
                 "active": WAKE + ACTIVE}


def test_passive_mode_reads_the_answer_at_the_next_poll(mpy):
    r = run(mpy, """
u = FakeUART()
d = PMS5003(u, passive=True)
u.feed(pms_ack(0xE1, 0))                       # the sensor acknowledges passive mode
f1 = d.poll(0, out, 0)
u.feed(pms_frame([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0]))   # the answer to the read
f2 = d.poll(1000, out, 0)
print(dict(f1=f1, f2=f2, out=list(out[:12]), tx=u.take_tx(), frames=d.frames))
""")
    assert r["f1"] == 0x01 | 0x10     # WARMING | NO_DATA: nothing yet; the ack is no error
    assert r["f2"] == 0x01
    assert r["out"] == [4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 11, 12]
    assert r["tx"] == WAKE + PASSIVE + READ + READ
    assert r["frames"] == 1


def test_faults_become_flags_and_the_driver_keeps_going(mpy):
    r = run(mpy, """
u = FakeUART()
d = PMS5003(u, missing_ms=10000, stuck_ms=5000)
good = pms_frame([10, 12, 15, 10, 12, 15, 900, 300, 40, 3, 1, 0, 0])
def words(k):
    return [k, k, k, k, k, k, 100 + k, 50, 10, 1, 0, 0, 0]
res = {}
u.feed(good); d.poll(0, out, 0)
# checksum: the last byte off by one; the last good values stay
bad = bytearray(good); bad[31] ^= 1
u.feed(bad); res["checksum"] = (d.poll(1000, out, 0), out[1])
# truncated frame, then a good one: CHECKSUM, and the good frame is found inside
u.feed(pms_frame(words(20))[:17]); u.feed(pms_frame(words(21)))
res["truncate"] = (d.poll(2000, out, 0), out[1])
# garbage with a fake header between frames
u.feed(b"\\x00\\x42\\x4d\\x00\\x1c\\x13\\x37"); u.feed(pms_frame(words(22)))
res["garbage"] = (d.poll(3000, out, 0), out[1])
# length field that is neither 28 nor 4
u.feed(pms_frame([1] * 13, 20)[:24]); u.feed(pms_frame(words(23)))
res["length"] = (d.poll(4000, out, 0), out[1])
# a clean frame: no flags but WARMING
u.feed(pms_frame(words(24))); res["clean"] = d.poll(5000, out, 0)
# stuck: the same frame for 5 s
for t in range(6000, 12000, 1000):
    u.feed(pms_frame(words(25))); f = d.poll(t, out, 0)
res["stuck"] = f
u.feed(pms_frame(words(26))); res["unstuck"] = d.poll(12000, out, 0)
# silence: values dropped and MISSING once 10 s pass without a frame; the mode is re-sent
u.take_tx()
res["quiet"] = d.poll(21000, out, 0)
res["silent"] = (d.poll(22000, out, 0), list(out[:12]), u.take_tx())
# the UART itself fails
u.fail = True
res["bus"] = d.poll(23000, out, 0)
u.fail = False
u.feed(pms_frame(words(27))); res["back"] = (d.poll(24000, out, 0), out[1])
# above the datasheet's maximum range
u.feed(pms_frame([0, 1200, 0, 0, 1200, 0, 0, 0, 0, 0, 0, 0, 0]))
res["range"] = d.poll(40000, out, 0)
res["counters"] = (d.frames, d.bad_frames, d.uart_errors)
print(res)
""")
    warming, checksum, stuck, missing, no_data, rng, bus = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40
    assert r["checksum"] == (warming | checksum | no_data, 12)
    assert r["truncate"] == (warming | checksum, 21)
    assert r["garbage"] == (warming | checksum, 22)
    assert r["length"] == (warming | checksum, 23)
    assert r["clean"] == warming
    assert r["stuck"] == warming | stuck
    assert r["unstuck"] == warming
    assert r["quiet"] == warming | no_data          # 9 s of silence: not yet missing
    flags, values, tx = r["silent"]
    assert flags == warming | no_data | missing and values == [0] * 12 and tx == WAKE + ACTIVE
    assert r["bus"] & bus
    assert r["back"] == (warming, 27)
    assert r["range"] == rng
    frames, bad, uart_errors = r["counters"]
    assert uart_errors == 1 and bad >= 3 and frames == 14


def test_resync_after_garbage_mid_frame_across_polls(mpy):
    # A frame cut by line noise and continued over several reads: the partial frame is kept
    # across polls, the noise skipped, and the next frame found.
    r = run(mpy, """
u = FakeUART()
d = PMS5003(u)
a = pms_frame([5, 6, 7, 5, 6, 7, 500, 100, 20, 2, 1, 0, 0])
b = pms_frame([8, 9, 10, 8, 9, 10, 800, 200, 30, 3, 1, 0, 0])
u.feed(a); d.poll(0, out, 0)
stream = b[:13] + b"\\xff\\x42\\x00\\x4d" + b[:5] + b"\\x42" + b
t = 1000
seen = []
for i in range(0, len(stream), 5):     # five bytes per poll: frames straddle polls
    u.feed(stream[i:i + 5])
    f = d.poll(t, out, 0)
    seen.append((f & 0x12, out[0]))
    t += 100
print(dict(seen=seen, frames=d.frames))
""")
    flags_then_values = r["seen"]
    assert r["frames"] == 2
    assert flags_then_values[-1] == (0, 8)           # the last frame decoded, nothing pending
    assert any(f & 0x02 for f, _ in flags_then_values)   # the noise was reported
    assert all(v == 5 for f, v in flags_then_values[:-1])


def test_acknowledgements_check_the_mode_and_sleep(mpy):
    r = run(mpy, """
u = FakeUART()
d = PMS5003(u, passive=True)
u.feed(pms_ack(0xE1, 1))              # the sensor claims it went active: rejected config
f1 = d.poll(0, out, 0)
d.sleep()
u.feed(pms_ack(0xE4, 0))
f2 = d.poll(1000, out, 0)
print(dict(f1=f1, f2=f2, bad=d.bad_frames))
""")
    assert r["f1"] & 0x80                 # CONFIG
    assert r["f2"] == 0x10                # asleep: NO_DATA, the sleep ack is fine
    assert r["bad"] == 0


def test_warming_until_30_s_after_wake(mpy):
    r = run(mpy, """
u = FakeUART()
d = PMS5003(u)
f = pms_frame([1] * 12 + [0])
u.feed(f); a = d.poll(100000, out, 0)
u.feed(f); b = d.poll(129999, out, 0)
u.feed(f); c = d.poll(130000, out, 0)
d.sleep(); s = d.poll(131000, out, 0)
d.wake(); u.feed(f); w = d.poll(200000, out, 0)
print(dict(a=a, b=b, c=c, s=s, w=w, warmup=d.warmup_ms))
""")
    assert r["warmup"] >= 30000
    assert r["a"] == 0x01 and r["b"] == 0x01 and r["c"] == 0
    assert r["s"] == 0x10
    assert r["w"] == 0x01


def test_poll_allocates_nothing(mpy):
    # 100 polls, each draining and decoding a new frame (with noise and a bad frame now and
    # then), in active and passive mode: the heap does not grow by a single byte.
    r = run(mpy, """
from heapcheck import allocated
frames = [pms_frame([k, k + 1, k + 2, k, k + 1, k + 2, 10 * k, 5 * k, k, 1, 0, 0, 0])
          for k in range(100)]
noise = b"\\x42\\x4d\\x00\\x1c\\x99"
res = {}
for passive in (False, True):
    u = FakeUART()
    d = PMS5003(u, passive=passive)
    def polls():
        for k in range(100):
            if k % 10 == 0:
                u.feed(noise)
            u.feed(frames[k])
            d.poll(k * 1000, out, 0)
    res[passive] = (allocated(polls), d.frames, d.bad_frames, out[0])
print(res)
""")
    assert r[False] == (0, 200, 20, 99) and r[True] == (0, 200, 20, 99)
