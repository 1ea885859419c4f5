"""SDS011 driver on the MicroPython VM, fed the control protocol's example frames."""

from __future__ import annotations

import ast

# Examples of "Laser Dust Sensor Control Protocol V1.3", sensor ID A1 60. Checksums are the low
# byte of the sum of the bytes between the command byte and the checksum:
# query reply: D4+04+3A+0A+A1+60 = 0x21D -> 1D; PM2.5 = 0x04D4 = 1236 -> 123.6 ug/m3,
# PM10 = 0x0A3A = 2618 -> 261.8 ug/m3.
DATA = "aac0d4043a0aa1601dab"
# commands: DATA1..DATA15 summed, e.g. set query mode 02+01+01+FF+FF = 0x202 -> 02
SET_QUERY = "aab402010100000000000000000000ffff02ab"
SET_ACTIVE = "aab402010000000000000000000000ffff01ab"
QUERY = "aab404000000000000000000000000ffff02ab"
SLEEP = "aab406010000000000000000000000ffff05ab"
WORK = "aab406010100000000000000000000ffff06ab"
CONTINUOUS = "aab408010000000000000000000000ffff07ab"
# replies: 02+01+01+A1+60 = 0x105 -> 05; 06+01+A1+60 = 0x108 -> 08
QUERY_SET_REPLY = "aac5020101 00a16005ab".replace(" ", "")
SLEEP_REPLY = "aac5060100 00a16008ab".replace(" ", "")

PRELUDE = """
from array import array
from fake_uart import FakeUART
from pm_frames import sds_frame
from drivers.sds011 import SDS011
out = array("i", bytes(4 * 3))
"""


def run(mpy, code: str) -> dict:
    """Run PRELUDE + code on the VM; its last output line is a dict literal of results."""
    return ast.literal_eval(mpy.run(PRELUDE + code).strip().splitlines()[-1])


def test_datasheet_frame_decodes(mpy):
    r = run(mpy, f"""
u = FakeUART()
d = SDS011(u)
u.feed(bytes.fromhex("{DATA}"))
flags = d.poll(0, out, 1)
print(dict(built=sds_frame(1236, 2618).hex(), flags=flags, out=list(out), id=d.device_id,
           channels=list(d.channels)))
""")
    assert r["built"] == DATA
    assert r["out"] == [0, 1236, 2618]                 # exponent -1: 123.6 and 261.8 ug/m3
    assert r["channels"] == [("pm25", "ug/m3", -1), ("pm10", "ug/m3", -1)]
    assert r["id"] == 0xA160
    assert r["flags"] == 0x01                          # WARMING after power-up


def test_commands_are_the_protocol_bytes(mpy):
    r = run(mpy, """
res = {}
u = FakeUART()
d = SDS011(u, query=True)
res["init"] = u.take_tx()
d.poll(0, out, 0)
res["poll"] = u.take_tx()
d.sleep()
res["sleep"] = u.take_tx()
d.wake()
res["wake"] = u.take_tx()
u2 = FakeUART()
SDS011(u2)
res["active"] = u2.take_tx()
print(res)
""")
    # construction wakes the sensor too: the node may have rebooted while it slept
    assert r == {"init": WORK + CONTINUOUS + SET_QUERY, "poll": QUERY, "sleep": SLEEP,
                 "wake": WORK + CONTINUOUS + SET_QUERY, "active": WORK + CONTINUOUS + SET_ACTIVE}


def test_replies_are_checked_against_the_request(mpy):
    r = run(mpy, f"""
u = FakeUART()
d = SDS011(u, query=True)
u.feed(bytes.fromhex("{QUERY_SET_REPLY}"))
ok = d.poll(0, out, 0)
u.feed(bytes.fromhex("{DATA}"))
data = d.poll(1000, out, 0)
d.sleep()
u.feed(bytes.fromhex("{SLEEP_REPLY}"))
asleep = d.poll(2000, out, 0)
d.wake()
u.feed(sds_frame(0, 0, kind=0xC5, payload=(2, 1, 0, 0)))   # "active mode": not what we asked
rejected = d.poll(3000, out, 0)
print(dict(ok=ok, data=data, asleep=asleep, rejected=rejected, bad=d.bad_frames))
""")
    assert r["ok"] == 0x01 | 0x10        # WARMING | NO_DATA: the reply is no data, no error
    assert r["data"] == 0x01
    assert r["asleep"] == 0x10
    assert r["rejected"] & 0x80          # CONFIG
    assert r["bad"] == 0


def test_faults_become_flags_and_the_driver_keeps_going(mpy):
    r = run(mpy, """
u = FakeUART()
d = SDS011(u, missing_ms=5000, stuck_ms=4000)
res = {}
u.feed(sds_frame(100, 200)); d.poll(0, out, 0)
bad = sds_frame(101, 201); bad[8] ^= 0x10
u.feed(bad); res["checksum"] = (d.poll(1000, out, 0), out[0])
tail = sds_frame(102, 202); tail[9] = 0xAC
u.feed(tail); u.feed(sds_frame(103, 203)); res["tail"] = (d.poll(2000, out, 0), out[0])
u.feed(sds_frame(104, 204)[:6]); u.feed(sds_frame(105, 205))
res["truncate"] = (d.poll(3000, out, 0), out[0])
u.feed(b"\\xaa\\xc0\\x01\\xaa\\x17"); u.feed(sds_frame(106, 206))
res["garbage"] = (d.poll(4000, out, 0), out[0])
for t in range(5000, 10000, 1000):
    u.feed(sds_frame(107, 207)); f = d.poll(t, out, 0)
res["stuck"] = f
res["silent"] = (d.poll(15000, out, 0), list(out[:2]))
u.fail = True
res["bus"] = d.poll(16000, out, 0)
u.fail = False
u.feed(sds_frame(9999, 300)); res["range"] = (d.poll(40000, out, 0), list(out[:2]))
print(res)
""")
    warming, checksum, stuck, missing, no_data, rng, bus = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40
    assert r["checksum"] == (warming | checksum | no_data, 100)
    assert r["tail"] == (warming | checksum, 103)
    assert r["truncate"] == (warming | checksum, 105)
    assert r["garbage"] == (warming | checksum, 106)
    assert r["stuck"] == warming | stuck
    assert r["silent"] == (warming | no_data | missing, [0, 0])
    assert r["bus"] & bus
    assert r["range"] == (rng, [9999, 300])


def test_poll_allocates_nothing(mpy):
    r = run(mpy, """
from heapcheck import allocated
frames = [sds_frame(10 * k, 20 * k + 5) for k in range(100)]
res = {}
for query in (False, True):
    u = FakeUART()
    d = SDS011(u, query=query)
    def polls():
        for k in range(100):
            if k % 10 == 0:
                u.feed(b"\\xaa\\x00\\xaa\\xc0")
            u.feed(frames[k])
            d.poll(k * 1000, out, 0)
    res[query] = (allocated(polls), d.frames, d.bad_frames, out[1])
print(res)
""")
    assert r[False] == (0, 200, 20, 1985) and r[True] == (0, 200, 20, 1985)
