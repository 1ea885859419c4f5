# A clock for running the node's asyncio tasks faster than real time: sleep_ms() waits for virtual
# time, and run_for() advances it in steps while the tasks run.
import asyncio

from clock import Clock


class VirtualClock(Clock):
    def __init__(self, step_ms=5):
        self.now = 0
        self.step = step_ms
        Clock.__init__(self)

    def ticks_ms(self):
        return self.now

    async def sleep_ms(self, ms):
        until = self.now + ms
        while self.now < until:
            await asyncio.sleep_ms(0)

    async def run_for(self, ms):
        end = self.now + ms
        while self.now < end:
            await asyncio.sleep_ms(0)
            self.now += self.step


class CaptureLink:
    # A link that records what the node sends; tests inject frames with deliver().
    def __init__(self):
        self.sent = []
        self.up = True
        self._on_frame = None

    def send(self, ftype, *parts):
        b = bytearray()
        for p in parts:
            b.extend(p)
        self.sent.append((ftype, bytes(b)))

    async def run(self, on_frame):
        self._on_frame = on_frame
        while True:
            await asyncio.sleep_ms(1000)

    def deliver(self, frame):
        self._on_frame(memoryview(frame))


from sensor import Sensor


class ScriptedSensor(Sensor):
    # Returns the next (values, flags) of a script at each poll; the last entry repeats.
    def __init__(self, name, channels, script, warmup_ms=0):
        self.name = name
        self.channels = channels
        self.script = script
        self.warmup_ms = warmup_ms
        self.polls = 0
        self.wakes = 0
        self.sleeps = 0

    def wake(self):
        self.wakes += 1

    def sleep(self):
        self.sleeps += 1

    def poll(self, now_ms, out, off):
        values, flags = self.script[min(self.polls, len(self.script) - 1)]
        self.polls += 1
        for i in range(len(values)):
            out[off + i] = values[i]
        return flags


class WarmingSensor(ScriptedSensor):
    # Reports WARMING until warmup_ms after wake(), then the script's values; nothing while asleep.
    def __init__(self, name, channels, script, warmup_ms, window_ms):
        ScriptedSensor.__init__(self, name, channels, script, warmup_ms)
        self.window_ms = window_ms
        self.woke_at = None
        self.asleep_polls = 0

    def wake(self):
        ScriptedSensor.wake(self)
        self.woke_at = None

    def sleep(self):
        ScriptedSensor.sleep(self)
        self.woke_at = -1

    def poll(self, now_ms, out, off):
        from sensor import NO_DATA, WARMING
        if self.woke_at == -1:
            self.asleep_polls += 1
            return NO_DATA
        if self.woke_at is None:
            self.woke_at = now_ms
        if now_ms - self.woke_at < self.warmup_ms:
            self.polls += 1
            return WARMING
        return ScriptedSensor.poll(self, now_ms, out, off)
