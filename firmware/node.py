# The node: sample -> aggregate -> encode (SenML-CBOR in COSE_Mac0) -> flash ring -> send, with
# acks, retransmission, time sync and a watchdog fed only while the loops make progress.
# Everything runs in asyncio tasks; nothing in the sampling loop allocates.
import asyncio
import struct
from array import array
from time import ticks_add, ticks_diff

from micropython import const

import framing
from aggregate import Aggregator
from cbor import Reader, Writer
from cose import Mac0
from sensor import NO_DATA, NO_SAMPLE, WARMING

FIRMWARE = "0.1.0"
current = None  # the running Node; status.py reports on it after Ctrl-C (gonggi node check)

_RTO_MAX_MS = const(30000)
_HELLO_UNLINKED_MS = const(5000)  # until a gateway answers, say hello this often
_SEND_POLL_MS = const(20)
_COSE_OVERHEAD = const(64)        # COSE_Mac0 around a payload: headers, kid, boot/seq, 8-byte tag
_SLOT_HEADER = const(16)          # ring.py's per-slot header
# SenML labels (RFC 8428)
_BT = const(-3)
_N = const(0)
_U = const(1)
_V = const(2)


def _tlen(b):
    # Encoded size of a CBOR text string of these bytes (names and units are short).
    return len(b) + (1 if len(b) < 24 else 2)


class Node:
    def __init__(self, cfg, link, sensors, ring, boot, clock, wdt=None):
        self.cfg = cfg
        self.link = link
        self.sensors = sensors
        self.ring = ring
        self.boot = boot
        self.clock = clock
        self.wdt = wdt
        self.mac = Mac0(cfg["key"], cfg["node_id"].encode())
        self.seq = 0
        self.linked = False
        self.flags = 0
        self.reports = 0
        self.retransmits = 0
        self.bad_control = 0
        self._rto = cfg["rto_ms"]
        room = cfg["slot_size"] - 16
        self._payload = bytearray(room)
        self._pw = Writer(self._payload)
        self._packet = bytearray(room)
        self._kw = Writer(self._packet)
        self._hello = bytearray(64)
        self._hw = Writer(self._hello)
        self._up4 = bytearray(4)
        self._fw = FIRMWARE.encode()
        self._beat_sample = self._beat_send = clock.ticks_ms()  # when each loop last ran
        self._layout()

    def _layout(self):
        # Offsets of each sensor's channels in one shared values array; names as bytes, once.
        self._offs = []
        self._aggs = []
        self._names = []
        n = 0
        for s in self.sensors:
            self._offs.append(n)
            self._aggs.append(Aggregator(len(s.channels)))
            self._names.append(
                ([(s.name + "." + ch[0]).encode() for ch in s.channels],
                 [ch[1].encode() for ch in s.channels],
                 (s.name + ".n").encode(), (s.name + ".health").encode()))
            n += len(s.channels)
        need = self._worst_report() + _COSE_OVERHEAD
        if need > len(self._payload):
            raise ValueError("config.json: slot_size %d is too small for these sensors: a report "
                             "takes up to %d bytes (set slot_size >= %d)"
                             % (self.cfg["slot_size"], need, need + _SLOT_HEADER))
        self._vals = array("i", bytes(4 * max(n, 1)))
        self._means = array("i", bytes(4 * max(n, 1)))
        self._sflags = bytearray(len(self.sensors))
        self._awake = bytearray(len(self.sensors))
        # Climate compensation: the first sensor with t (0.01 Cel), rh (0.01 %RH) and p (Pa)
        # channels feeds the SCD4x's pressure and the SGP40's T/RH after each of its samples.
        # Bound methods are made here, once: looking one up per sample would allocate.
        self._climate = -1
        self._p_sinks = [s.set_ambient_pressure for s in self.sensors if hasattr(s, "set_ambient_pressure")]
        self._th_sinks = [s.set_compensation for s in self.sensors if hasattr(s, "set_compensation")]
        for i, s in enumerate(self.sensors):
            names = [ch[0] for ch in s.channels]
            if "t" in names and "rh" in names and "p" in names:
                off = self._offs[i]
                self._climate = i
                self._climate_at = (off + names.index("t"), off + names.index("rh"), off + names.index("p"))
                break
        for i, s in enumerate(self.sensors):
            # Sensors that run between reports are woken by sample(); the others stay on.
            if self._duty_cycled(s):
                s.sleep()
            elif s.warmup_ms:
                s.wake()
                self._awake[i] = 1

    def _worst_report(self):
        # The largest SenML pack report() can write: every channel, count and health record at
        # its longest (a float32 or 32-bit int value), plus the array head and the base time.
        total = 3 + 1 + 5
        for names, units, n_name, h_name in self._names:
            for i in range(len(names)):
                total += 3 + _tlen(names[i]) + (1 + _tlen(units[i]) if units[i] else 0) + 5
            total += 2 * (3 + 5) + _tlen(n_name) + _tlen(h_name)
        return total

    # -- sampling and reports -----------------------------------------------------------------

    def _swap_replacements(self):
        # A sensor that was absent at boot and now answers takes its place (rare: allocation ok).
        changed = False
        for i, s in enumerate(self.sensors):
            r = getattr(s, "replacement", None)
            if r is not None:
                self.sensors[i] = r
                changed = True
        if changed:
            self._layout()

    def sample(self, now, next_report):
        # now and next_report are ticks_ms (small ints, compared with ticks_diff): uptimes pass
        # 2**30 ms after 12 days, and every operation on them would allocate from then on.
        report_ms = self.cfg["report_s"] * 1000
        due = ticks_diff(next_report, now)
        for i in range(len(self.sensors)):
            s = self.sensors[i]
            if s.per_report:
                continue
            if s.warmup_ms and not self._awake[i]:
                if due > s.warmup_ms + s.window_ms:
                    continue
                s.wake()
                self._awake[i] = 1
            off = self._offs[i]
            f = s.poll(now, self._vals, off)
            if not f & (NO_SAMPLE | WARMING):
                self._aggs[i].add(self._vals, off)
                if i == self._climate:
                    self._compensate()
            self._sflags[i] |= f & ~NO_DATA
        if report_ms and due <= 0:
            return True
        return False

    def _compensate(self):
        t, rh, p = self._climate_at
        v = self._vals
        for sink in self._p_sinks:
            sink(v[p])
        for sink in self._th_sinks:
            sink(v[t], v[rh])

    def _duty_cycled(self, s):
        return not s.per_report and s.warmup_ms and (s.warmup_ms + s.window_ms + self.cfg["sample_s"] * 1000
                                < self.cfg["report_s"] * 1000)

    def report(self, now):
        # Encode the interval's aggregates as one SenML pack in a COSE_Mac0 and store it.
        if not self.sensors:
            return  # a node without sensors (a link check) says hello, but has nothing to report
        ticks = self.clock.ticks_ms()
        for i in range(len(self.sensors)):
            s = self.sensors[i]
            if s.per_report:
                # One poll over the whole interval: its levels are the interval's own.
                off = self._offs[i]
                f = s.poll(ticks, self._vals, off)
                if not f & (NO_SAMPLE | WARMING):
                    self._aggs[i].add(self._vals, off)
                self._sflags[i] |= f & ~NO_DATA
        w = self._pw
        w.reset()
        nrec = 0
        for i in range(len(self.sensors)):
            if self._aggs[i].count:
                # Warm-up polls before the window are the duty cycle, not a fault.
                self._sflags[i] &= ~WARMING
                nrec += len(self.sensors[i].channels)
            nrec += 1 + (1 if self._sflags[i] else 0)
        bt = self.clock.node_time_ms(now) // 1000
        w.array(nrec)
        first = True
        total = 0
        for i in range(len(self.sensors)):
            s = self.sensors[i]
            agg = self._aggs[i]
            names, units, n_name, h_name = self._names[i]
            off = self._offs[i]
            count = agg.count
            if count:
                agg.mean(self._means, off)
                for c in range(len(s.channels)):
                    self._record(first, bt, names[c], units[c], self._means[off + c], s.channels[c][2])
                    first = False
            self._record(first, bt, n_name, b"", count, 0)
            first = False
            if self._sflags[i]:
                self._record(False, bt, h_name, b"", self._sflags[i], 0)
            total |= self._sflags[i]
            agg.reset()
            self._sflags[i] = 0
            if self._duty_cycled(s):
                s.sleep()
                self._awake[i] = 0
        self.flags = total
        k = self._kw
        k.reset()
        self.mac.seal(k, self.boot, self.seq, memoryview(self._payload)[:w.pos])
        self.ring.put(self.boot, self.seq, memoryview(self._packet)[:k.pos])
        self.seq += 1
        self.reports += 1

    def _record(self, first, bt, name, unit, m, exp):
        # Keys in deterministic order (RFC 8949 4.2.1): n 0, u 1, v 2, then bt -3.
        w = self._pw
        w.map((1 if first else 0) + (2 if unit else 1) + 1)
        w.int(_N)
        w.tstr(name)
        if unit:
            w.int(_U)
            w.tstr(unit)
        w.int(_V)
        w.fixed(m, exp)
        if first:
            w.int(_BT)
            w.int(bt)

    async def _sampler(self):
        clock = self.clock
        report_ms = self.cfg["report_s"] * 1000
        now = clock.ticks_ms()
        next_report = ticks_add(now, report_ms)
        while True:
            self._beat_sample = now
            self._swap_replacements()
            if self.sample(now, next_report):
                self.report(clock.uptime_ms())
                next_report = ticks_add(next_report, report_ms)
                if ticks_diff(next_report, now) <= 0:  # a long stall: no burst of empty reports
                    next_report = ticks_add(now, report_ms)
            period = self.cfg["sample_s"] * 1000
            await clock.sleep_ms(min(period, max(0, ticks_diff(next_report, now))) or period)
            now = clock.ticks_ms()

    # -- link --------------------------------------------------------------------------------

    def _send_data(self, i, now, up):
        # now: ticks_ms, kept to time the retransmission; up: the uptime the frame carries.
        struct.pack_into(">I", self._up4, 0, up & 0xFFFFFFFF)
        self.link.send(framing.DATA, self._up4, self.ring.read(i))
        self.ring.sent_ms[i] = now | 1

    def send_hello(self, up):
        w = self._hw
        w.reset()
        w.map(6)
        w.int(1)
        w.tstr(self._fw)
        w.int(2)
        w.int(self.ring.count())
        w.int(3)
        w.int(up)
        w.int(4)
        w.int(self.flags)
        w.int(5)
        w.bool(self.clock.synced())
        w.int(6)
        w.int(self.ring.dropped)
        k = self._kw
        k.reset()
        self.mac.seal(k, self.boot, self.seq, memoryview(self._hello)[:w.pos])
        self.link.send(framing.HELLO, memoryview(self._packet)[:k.pos])

    def pump(self, now):
        # One round of the sender (now: ticks_ms): expire unacked sends, fill the window, oldest
        # first. The uptime the frames carry is read only when one goes out.
        ring = self.ring
        inflight = 0
        up = -1
        for i in range(ring.slots):
            t = ring.sent_ms[i]
            if t:
                if ticks_diff(now, t) > self._rto:
                    ring.sent_ms[i] = 0
                    self.retransmits += 1
                    self._rto = min(2 * self._rto, _RTO_MAX_MS)
                else:
                    inflight += 1
        while inflight < self.cfg["window"]:
            i = ring.oldest(True)
            if i < 0:
                break
            if up < 0:
                up = self.clock.uptime_ms()
            self._send_data(i, now, up)
            inflight += 1

    def link_up(self):
        # A gateway is listening again (a BLE connection): what was in flight on the last one
        # went down with it, so send it again now rather than after a backed-off timeout.
        sent = self.ring.sent_ms
        for i in range(len(sent)):
            sent[i] = 0
        self._rto = self.cfg["rto_ms"]

    async def _sender(self):
        clock = self.clock
        link = self.link
        hello_at = None
        was_up = False
        while True:
            now = clock.ticks_ms()
            self._beat_send = now
            if link.up != was_up:
                was_up = link.up
                if was_up:
                    self.link_up()
                    hello_at = None
                else:
                    self.linked = False  # until a gateway answers on the next connection
            if was_up:
                # Nothing is sent while the link is down: the ring keeps it, the next link gets it.
                every = self.cfg["hello_s"] * 1000 if self.linked else _HELLO_UNLINKED_MS
                if hello_at is None or ticks_diff(now, hello_at) >= every:
                    hello_at = now
                    self.send_hello(clock.uptime_ms())
                self.pump(now)
            await clock.sleep_ms(_SEND_POLL_MS)

    def on_frame(self, mv):
        if mv[0] != framing.CONTROL:
            return
        res = self.mac.verify(mv[1:])
        if res is None or res[0] != self.boot:
            # Not for this boot or not from a gateway holding our key: ignore, count.
            self.bad_control += 1
            return
        try:
            self._apply(Reader(res[1]))
        except (ValueError, IndexError):
            self.bad_control += 1
            return
        self.linked = True
        self._rto = self.cfg["rto_ms"]

    def _apply(self, r):
        major, n = r.head()
        if major != 5:
            raise ValueError
        for _ in range(n):
            key = r.int()
            if key == 1:
                major, acks = r.head()
                for _ in range(acks):
                    if r.head() != (4, 3):
                        raise ValueError
                    self.ring.ack(r.int(), r.int(), r.int())
            elif key == 2:
                self.clock.sync(r.int())
            elif key == 3:
                self._configure(r)
            else:
                r.skip()

    def _configure(self, r):
        # Runtime settings the gateway may push; applied until the next boot.
        major, n = r.head()
        if major != 5:
            raise ValueError
        for _ in range(n):
            name = r.bytes()
            if name == b"report_s" or name == b"sample_s" or name == b"hello_s":
                v = r.int()
                if v > 0:
                    self.cfg[str(name, "utf-8")] = v
            else:
                r.skip()

    # -- watchdog ----------------------------------------------------------------------------

    async def _watchdog(self):
        # Feed only while both loops ran recently: a hung task resets the board.
        timeout = self.cfg["wdt_ms"]
        while True:
            await self.clock.sleep_ms(timeout // 4)
            now = self.clock.ticks_ms()
            sample_ms = self.cfg["sample_s"] * 1000
            if (ticks_diff(now, self._beat_sample) <= sample_ms + timeout // 2
                    and ticks_diff(now, self._beat_send) <= timeout // 2):
                self.wdt.feed()

    async def run(self):
        tasks = [asyncio.create_task(self._sampler()), asyncio.create_task(self._sender()),
                 asyncio.create_task(self.link.run(self.on_frame))]
        if self.wdt is not None:
            tasks.append(asyncio.create_task(self._watchdog()))
        for s in self.sensors:
            if hasattr(s, "run"):
                tasks.append(asyncio.create_task(s.run()))  # a sensor working between polls (audio)
        await asyncio.gather(*tasks)


def main():
    # Entry point from main.py on the board.
    import gc

    import machine

    import bootcount
    import config
    from clock import Clock
    from ring import Ring
    from sensors import build, uart_for

    try:
        cfg = config.load()
    except ValueError as e:
        print("gonggi: cannot start:", e)
        return
    boot = bootcount.next_boot()
    # The big buffers first (ring slot, link queue), while the heap is one free stretch: after
    # the drivers' many small objects, a few KB in one piece may no longer exist.
    gc.collect()
    ring = Ring("ring.bin", cfg["ring_slots"], cfg["slot_size"])
    lk = cfg["link"]
    if lk["kind"] == "ble":
        # Only the configured link's module is imported: the other would only take RAM.
        from link_ble import BleLink
        # Its send queue holds a HELLO and a full window: all go out the moment a gateway connects.
        link = BleLink(cfg["node_id"], backlog=ring.count, queue=(cfg["window"] + 1) * cfg["slot_size"])
    else:
        from link_serial import SerialLink
        link = SerialLink(uart_for(lk, lk.get("baudrate", 115200)), max_frame=cfg["slot_size"])
    try:
        sensors = build(cfg["sensors"])
        node = Node(cfg, link, sensors, ring, boot, Clock())
    except ValueError as e:
        print("gonggi: cannot start:", e)
        return
    # Started last: a node that cannot start leaves the REPL to the field tech, not a reset loop.
    node.wdt = machine.WDT(timeout=cfg["wdt_ms"])
    global current
    current = node
    print("gonggi node", cfg["node_id"], "firmware", FIRMWARE, "boot", boot, "backlog", ring.count())
    try:
        asyncio.run(node.run())
    except KeyboardInterrupt:
        # A field tech interrupted to reach the REPL: a running watchdog cannot be stopped, so
        # give the REPL an hour before it resets the board.
        machine.WDT(timeout=3600000)
        print("gonggi: stopped; watchdog relaxed to 1 h for the REPL")
        raise
