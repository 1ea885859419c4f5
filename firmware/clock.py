# The node's time base. Nodes have no RTC worth trusting: time counts from boot until the gateway
# sends its wall time (CONTROL time_ms), then packets carry Unix time (docs/protocol.md "Time").
# Injectable: tests pass a clock whose ticks they advance, so firmware runs faster than real time.
import asyncio
import time


class Clock:
    def __init__(self):
        self._last = self.ticks_ms()
        self._up_ms = 0
        self._offset_ms = None  # wall time in ms = uptime_ms + offset once synced

    def ticks_ms(self):
        return time.ticks_ms()

    def uptime_ms(self):
        # Milliseconds since boot, without the 2**30 wrap of ticks_ms (call at least daily).
        now = self.ticks_ms()
        self._up_ms += time.ticks_diff(now, self._last)
        self._last = now
        return self._up_ms

    def sleep_ms(self, ms):
        # An awaitable; asyncio's sleep_ms allocates nothing.
        return asyncio.sleep_ms(ms)

    def sync(self, wall_ms):
        self._offset_ms = wall_ms - self.uptime_ms()

    def synced(self):
        return self._offset_ms is not None

    def node_time_ms(self, up_ms):
        # The packet time of an uptime: Unix ms when synced, else ms since boot.
        if self._offset_ms is None:
            return up_ms
        return up_ms + self._offset_ms
