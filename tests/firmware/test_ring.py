"""The flash ring buffer keeps unacked packets across reboots and power cuts, on the MicroPython VM."""

from __future__ import annotations


def test_packets_survive_reboot_in_order_and_acks_forget_them(mpy) -> None:
    out = mpy.run("""
        from ring import Ring
        r = Ring("ring.bin", slots=8, slot_size=64)
        for seq in range(5):
            r.put(3, seq, b"packet-%d" % seq)
        print("acked", r.ack(3, 0, 1))
        r.close()
        r = Ring("ring.bin", slots=8, slot_size=64)       # reboot
        order = []
        while True:
            i = r.oldest()
            if i < 0:
                break
            order.append(bytes(r.read(i)))
            r.sent_ms[i] = 1
        print("count", r.count())
        print("order", b",".join(order).decode())
    """)
    assert "acked 2" in out
    assert "count 3" in out
    assert "order packet-2,packet-3,packet-4" in out


def test_oldest_first_across_boots_and_overwrite_when_full(mpy) -> None:
    out = mpy.run("""
        from ring import Ring
        r = Ring("ring.bin", slots=4, slot_size=64)
        r.put(2, 7, b"b2s7")
        r.put(1, 9, b"b1s9")
        r.put(2, 0, b"b2s0")
        r.put(2, 1, b"b2s1")
        r.put(3, 0, b"b3s0")          # full: the oldest (boot 1) goes
        print("dropped", r.dropped)
        seen = []
        while r.oldest() >= 0:
            i = r.oldest()
            seen.append(bytes(r.read(i)).decode())
            r.sent_ms[i] = 1
        print(" ".join(seen))
    """)
    assert "dropped 1" in out
    assert "b2s0 b2s1 b2s7 b3s0" in out


def test_power_cut_at_every_byte_of_a_write_loses_nothing_acknowledged(mpy) -> None:
    # For each cut point in the write of packet 3 and in the ack of packet 0: after the "reboot"
    # the ring holds exactly the packets it held before, plus packet 3 only if its write completed.
    out = mpy.run("""
        import os
        from ring import Ring
        from torn_file import TornFile, PowerCut

        def fresh():
            try:
                os.remove("ring.bin")
            except OSError:
                pass
            r = Ring("ring.bin", slots=6, slot_size=64)
            for seq in range(3):
                r.put(5, seq, b"pkt%d" % seq)
            return r

        def contents():
            r = Ring("ring.bin", slots=6, slot_size=64)
            got = []
            for i in range(r.slots):
                if r.state[i]:
                    got.append((r.seq[i], bytes(r.read(i))))
            r.close()
            return sorted(got)

        bad = 0
        n = 16 + 4
        for keep in range(n + 1):
            r = fresh()
            r._f = TornFile(r._f, 1, keep)
            try:
                r.put(5, 3, b"pkt3")
            except PowerCut:
                pass
            got = contents()
            before = [(0, b"pkt0"), (1, b"pkt1"), (2, b"pkt2")]
            if got != before and got != before + [(3, b"pkt3")]:
                bad += 1
                print("put cut", keep, got)
        for keep in range(3):
            r = fresh()
            r._f = TornFile(r._f, 1, keep)
            try:
                r.ack(5, 0, 0)
            except PowerCut:
                pass
            got = contents()
            rest = [(1, b"pkt1"), (2, b"pkt2")]
            if got != rest and got != [(0, b"pkt0")] + rest:
                bad += 1
                print("ack cut", keep, got)
        print("bad", bad)
    """)
    assert out.strip().endswith("bad 0"), out


def test_boot_counter_increments_durably(mpy) -> None:
    out = mpy.run("""
        import bootcount
        print(bootcount.next_boot(), bootcount.next_boot(), bootcount.next_boot())
    """)
    assert out.split() == ["1", "2", "3"]
