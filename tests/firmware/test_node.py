"""The node's scheduler on the MicroPython VM, in virtual time: sample -> report -> ring -> send,
retransmission until acked, acks and time sync from the gateway, health flags in the packets."""

from __future__ import annotations

import statistics

from gonggi_gateway.protocol import Ack, Control, FrameDecoder, FrameType, decode_data, encode_control, encode_frame
from gonggi_gateway.protocol.senml import RELATIVE_TIME_LIMIT

KEY = bytes(range(32))
NODE = "node-t1"
BOOT = 4


def run_node(mpy, control_frames: dict[int, bytes], seconds: int) -> dict[str, str]:
    """Run a node for `seconds` of virtual time, delivering control frames at given ms."""
    out = mpy.run(f"""
        import asyncio
        from binascii import hexlify, unhexlify
        import config
        from node import Node
        from ring import Ring
        from sensor import MISSING
        from virtual_time import VirtualClock, CaptureLink, ScriptedSensor

        cfg = config.validate({{"node_id": "{NODE}", "key": "{KEY.hex()}", "sample_s": 1, "report_s": 10,
                               "ring_slots": 8, "window": 2, "rto_ms": 3000}})
        temps = [([2000 + 10 * i], 0) for i in range(40)]
        bat = [([3900], 0)] * 12 + [([0], MISSING)] * 3 + [([3800], 0)]
        sensors = [ScriptedSensor("env", (("t", "Cel", -2),), temps),
                   ScriptedSensor("bat", (("v", "V", -3),), bat)]
        clock = VirtualClock()
        link = CaptureLink()
        node = Node(cfg, link, sensors, Ring("ring.bin", 8, 512), {BOOT}, clock)
        controls = {{{", ".join(f"{t}: unhexlify('{f.hex()}')" for t, f in control_frames.items())}}}

        async def main():
            task = asyncio.create_task(node.run())
            for t in range({seconds * 10}):
                await clock.run_for(100)
                frame = controls.get(clock.now)
                if frame:
                    link.deliver(frame[1:-5])   # the link hands over type + body, FCS checked
            task.cancel()

        asyncio.run(main())
        for ftype, body in link.sent:
            print("sent", chr(ftype), hexlify(body).decode())
        print("ring", node.ring.count())
        print("synced", clock.synced())
        print("linked", node.linked)
        print("retransmits", node.retransmits)
        print("bad_control", node.bad_control)
    """)
    return out


def data_packets(out: str) -> list:
    keys = {NODE: KEY}.get
    pkts = []
    for line in out.splitlines():
        if line.startswith("sent D "):
            pkts.append(decode_data(bytes.fromhex(line.split()[2]), keys))
    return pkts


def control(acks: list[tuple[int, int, int]], time_ms: int | None) -> bytes:
    # The test decoder strips FCS and flags the way the node's link does.
    ctl = Control(NODE, BOOT, tuple(Ack(*a) for a in acks), time_ms)
    frame = encode_frame(FrameType.CONTROL, encode_control(KEY, ctl))
    frames = FrameDecoder().feed(frame)
    assert len(frames) == 1
    return bytes([0x7E, frames[0].type]) + frames[0].body + b"\0\0\0\0\x7e"


def test_reports_are_sent_until_acked_with_the_aggregated_values(mpy) -> None:
    out = run_node(mpy, {}, 25)
    pkts = data_packets(out)
    by_seq = {}
    for p in pkts:
        by_seq.setdefault(p.seq, []).append(p)
    assert sorted(by_seq) == [0, 1]  # two reports in 25 s at report_s=10
    assert len(by_seq[0]) >= 2  # no ack: sent again (the timeout doubles each time)
    first = by_seq[0][0]
    assert first.boot == BOOT and first.node_id == NODE
    rec = {r.name: r for r in first.records}
    # Samples at 0..10 s: 11 temperatures 20.00..21.00; the trimmed mean drops min and max.
    temps = [20.00 + 0.10 * i for i in range(11)]
    assert rec["env.t"].unit == "Cel"
    assert abs(rec["env.t"].value - statistics.mean(sorted(temps)[1:-1])) < 1e-4
    assert rec["env.n"].value == 11
    assert rec["bat.v"].value == 3.9 or abs(rec["bat.v"].value - 3.9) < 1e-6
    assert "env.health" not in rec
    # Before time sync the packet carries seconds since boot.
    assert first.records[0].time == 10
    second = {r.name: r for r in by_seq[1][0].records}
    assert second["bat.health"].value == 0x08  # MISSING polls in that interval
    assert second["bat.n"].value == 7          # 10 polls, 3 of them missing
    assert "ring 2" in out and "linked False" in out


def test_ack_frees_the_ring_and_time_sync_makes_packets_absolute(mpy) -> None:
    wall_ms = 1_764_000_000_000
    out = run_node(mpy, {21000: control([(BOOT, 0, 1)], wall_ms)}, 32)
    assert "linked True" in out and "synced True" in out and "bad_control 0" in out
    pkts = data_packets(out)
    third = [p for p in pkts if p.seq == 2]
    assert third, out
    # Synced at virtual 21 s to wall_ms; the third report is at 30 s.
    assert third[0].records[0].time >= RELATIVE_TIME_LIMIT
    assert third[0].records[0].time == (wall_ms + 9000) // 1000
    assert "ring 1" in out  # packets 0 and 1 acked; 2 still waits for its ack


def test_control_for_another_boot_or_key_is_ignored(mpy) -> None:
    other_boot = Control(NODE, BOOT + 1, (Ack(BOOT, 0, 1),), None)
    frame = encode_frame(FrameType.CONTROL, encode_control(KEY, other_boot))
    wrong_key = encode_frame(FrameType.CONTROL, encode_control(b"k" * 32, Control(NODE, BOOT, (Ack(BOOT, 0, 1),))))
    frames = {}
    for t, f in ((21000, frame), (22000, wrong_key)):
        (dec,) = FrameDecoder().feed(f)
        frames[t] = bytes([0x7E, dec.type]) + dec.body + b"\0\0\0\0\x7e"
    out = run_node(mpy, frames, 25)
    assert "bad_control 2" in out and "ring 2" in out and "linked False" in out


def test_duty_cycled_sensor_is_woken_before_each_report_and_slept_after(mpy) -> None:
    out = mpy.run(f"""
        import asyncio
        import config
        from node import Node
        from ring import Ring
        from virtual_time import VirtualClock, CaptureLink, WarmingSensor

        cfg = config.validate({{"node_id": "{NODE}", "key": "{KEY.hex()}", "sample_s": 1, "report_s": 20}})
        pm = WarmingSensor("pm", (("pm25", "ug/m3", 0),), [([7], 0)], warmup_ms=5000, window_ms=4000)
        clock = VirtualClock()
        node = Node(cfg, CaptureLink(), [pm], Ring("ring.bin", 8, 512), {BOOT}, clock)

        async def main():
            task = asyncio.create_task(node.run())
            await clock.run_for(61000)
            task.cancel()

        asyncio.run(main())
        print("wakes", pm.wakes, "sleeps", pm.sleeps, "asleep_polls", pm.asleep_polls, "reports", node.reports)
        from binascii import hexlify
        for ftype, body in node.link.sent:
            if ftype == 0x44:
                print("data", hexlify(body).decode())
    """)
    head = out.splitlines()[0].split()
    stats = dict(zip(head[::2], map(int, head[1::2])))
    assert stats["reports"] == 3
    # Slept at start-up and after each report; woken 9 s (5 s warm-up + 4 s window) before each.
    assert stats["wakes"] == 3 and stats["sleeps"] == 4
    assert stats["asleep_polls"] == 0  # never polled while asleep
    pkts = {}
    for line in out.splitlines()[1:]:
        p = decode_data(bytes.fromhex(line.split()[1]), {NODE: KEY}.get)
        pkts[p.seq] = {r.name: r.value for r in p.records}
    # Only the window's samples count: polls at 15..20 s after the 5 s warm-up (11..15 warming).
    assert pkts[0]["pm.n"] == 5 and pkts[0]["pm.pm25"] == 7
    assert "pm.health" not in pkts[0]


def test_climate_sensor_compensates_co2_and_voc_sensors(mpy) -> None:
    out = mpy.run(f"""
        import asyncio
        import config
        from node import Node
        from ring import Ring
        from virtual_time import VirtualClock, CaptureLink, ScriptedSensor

        class Sink(ScriptedSensor):
            def __init__(self):
                ScriptedSensor.__init__(self, "sink", (("x", "", 0),), [([1], 0)])
                self.got = []
            def set_ambient_pressure(self, pa):
                self.got.append(("p", pa))
            def set_compensation(self, t, rh):
                self.got.append(("th", t, rh))

        from sensor import MISSING
        cfg = config.validate({{"node_id": "{NODE}", "key": "{KEY.hex()}", "sample_s": 1, "report_s": 10}})
        bme = ScriptedSensor("bme", (("t", "Cel", -2), ("rh", "%RH", -2), ("p", "Pa", 0)),
                             [([2150, 4010, 100900], 0), ([0, 0, 0], MISSING), ([2200, 4100, 101000], 0)])
        sink = Sink()
        clock = VirtualClock()
        node = Node(cfg, CaptureLink(), [sink, bme], Ring("ring.bin", 8, 512), {BOOT}, clock)

        async def main():
            task = asyncio.create_task(node.run())
            await clock.run_for(2500)
            task.cancel()

        asyncio.run(main())
        print(sink.got)
    """)
    # Three polls of the BME280: the MISSING one feeds nothing.
    assert out.strip() == "[('p', 100900), ('th', 2150, 4010), ('p', 101000), ('th', 2200, 4100)]"


def test_a_per_report_sensor_is_polled_once_per_report_and_runs_its_task(mpy) -> None:
    # The noise meter's contract: its levels cover the whole report interval, so the node polls it
    # once when the report is due (never between) and runs its background task all along.
    out = mpy.run(f"""
        import asyncio
        import config
        from node import Node
        from ring import Ring
        from virtual_time import VirtualClock, CaptureLink, ScriptedSensor

        class Levels(ScriptedSensor):
            per_report = True
            warmup_ms = 900
            ran = 0

            async def run(self):
                while True:
                    Levels.ran += 1
                    await asyncio.sleep_ms(1)

        cfg = config.validate({{"node_id": "{NODE}", "key": "{KEY.hex()}", "sample_s": 1, "report_s": 10}})
        levels = Levels("noise", (("laeq", "dB", -2),), [([6012 + i], 0) for i in range(10)])
        clock = VirtualClock()
        node = Node(cfg, CaptureLink(), [levels], Ring("ring.bin", 8, 1024), {BOOT}, clock)

        async def main():
            task = asyncio.create_task(node.run())
            await clock.run_for(35000)
            task.cancel()

        asyncio.run(main())
        print("polls", levels.polls, "reports", node.reports, "sleeps", levels.sleeps, "ran", Levels.ran > 0)
    """)
    assert "polls 3 reports 3 sleeps 0 ran True" in out, out


def test_a_node_without_sensors_says_hello_and_sends_no_empty_packs(mpy) -> None:
    out = mpy.run(f"""
        import asyncio
        import config
        from node import Node
        from ring import Ring
        from virtual_time import VirtualClock, CaptureLink

        cfg = config.validate({{"node_id": "{NODE}", "key": "{KEY.hex()}", "sample_s": 1, "report_s": 2}})
        clock = VirtualClock()
        link = CaptureLink()
        node = Node(cfg, link, [], Ring("ring.bin", 8, 1024), {BOOT}, clock)

        async def main():
            task = asyncio.create_task(node.run())
            await clock.run_for(7000)
            task.cancel()

        asyncio.run(main())
        print("sent", sorted(set(chr(t) for t, _ in link.sent)), "ring", node.ring.count())
    """)
    assert "sent ['H'] ring 0" in out, out
