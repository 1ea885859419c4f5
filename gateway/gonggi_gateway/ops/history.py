"""Recent values of every channel, kept in memory for the status page's sparklines."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from gonggi_gateway.state import Snapshot

__all__ = ["History"]


class History:
    """The last ``size`` values of each (node, channel): (time, value) pairs, oldest first.

    Filled from snapshots, so it sees the newest reading of each channel whenever it looks;
    a node reports about once a minute, far slower than ``follow`` looks.
    """

    def __init__(self, size: int = 60) -> None:
        self.size = size
        self._series: dict[tuple[str, str], deque[tuple[float, float]]] = {}

    def _new(self, snap: Snapshot) -> list[tuple[str, str, float, float]]:
        new = []
        for node_id, node in snap.nodes.items():
            for r in node.readings:
                if isinstance(r.value, bool) or not isinstance(r.value, (int, float)):
                    continue  # text and flags have no line to draw
                series = self._series.get((node_id, r.name))
                if series is None or r.time > series[-1][0]:
                    new.append((node_id, r.name, r.time, float(r.value)))
        return new

    def has_new(self, snap: Snapshot) -> bool:
        return bool(self._new(snap))

    def record(self, snap: Snapshot) -> None:
        for node_id, name, t, value in self._new(snap):
            self._series.setdefault((node_id, name), deque(maxlen=self.size)).append((t, value))

    def series(self, node_id: str, channel: str) -> list[tuple[float, float]]:
        return list(self._series.get((node_id, channel), ()))

    async def follow(self, wait_until: Callable[[Callable[[Snapshot], bool]], Awaitable[Snapshot]], *,
                     min_interval: float = 1.0) -> None:
        """Record new values until cancelled; ``wait_until`` is ``Gateway.wait_until``. At most one
        snapshot per ``min_interval`` seconds, so a burst of packets costs the page nothing."""
        while True:
            self.record(await wait_until(self.has_new))
            await asyncio.sleep(min_interval)
