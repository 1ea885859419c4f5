"""Recent values of every channel for the status page's sparklines: in memory, and through a
``HistoryStore`` on disk so that a restart keeps them."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from gonggi_gateway.ops.history_store import HistoryStore, Point
from gonggi_gateway.state import Reading, Snapshot

__all__ = ["History"]


@dataclass
class _Series:
    unit: str | None
    points: deque[tuple[float, float]]  # (time, value), oldest first
    saved: float = -math.inf  # time of the newest point the store has


class History:
    """The last ``size`` values of each (node, channel): (time, value) pairs, oldest first.

    Filled from snapshots, so it sees the newest reading of each channel whenever it looks;
    a node reports about once a minute, far slower than ``follow`` looks. With a ``store``,
    ``async with history`` loads the stored series first and saves what is left on the way out.
    """

    def __init__(self, size: int = 60, *, store: HistoryStore | None = None) -> None:
        self.size = size
        self.store = store
        self._nodes: dict[str, dict[str, _Series]] = {}

    async def __aenter__(self) -> Self:
        if self.store is not None:
            for p in await self.store.open(self.size):
                series = self._series_of(p.node, p.channel, p.unit)
                series.points.append((p.time, p.value))
                series.saved = p.time
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self.store is not None:
            try:
                await self.flush()
            finally:
                await self.store.close()

    def _series_of(self, node_id: str, channel: str, unit: str | None) -> _Series:
        channels = self._nodes.setdefault(node_id, {})
        series = channels.get(channel)
        if series is None:
            series = channels[channel] = _Series(unit, deque(maxlen=self.size))
        series.unit = unit
        return series

    def _new(self, snap: Snapshot) -> list[tuple[str, Reading]]:
        new = []
        for node_id, node in snap.nodes.items():
            channels = self._nodes.get(node_id, {})
            for r in node.readings:
                if isinstance(r.value, bool) or not isinstance(r.value, (int, float)):
                    continue  # text and flags have no line to draw
                series = channels.get(r.name)
                if series is None or r.time > series.points[-1][0]:
                    new.append((node_id, r))
        return new

    def has_new(self, snap: Snapshot) -> bool:
        return bool(self._new(snap))

    def record(self, snap: Snapshot) -> None:
        for node_id, r in self._new(snap):
            self._series_of(node_id, r.name, r.unit).points.append((r.time, float(r.value)))

    def series(self, node_id: str, channel: str) -> list[tuple[float, float]]:
        series = self._nodes.get(node_id, {}).get(channel)
        return list(series.points) if series is not None else []

    def latest(self, node_id: str) -> list[Reading]:
        """The newest point of each of the node's channels, as readings: after a restart, what
        the page shows for channels not heard since."""
        return [Reading(name, s.unit, s.points[-1][1], s.points[-1][0])
                for name, s in self._nodes.get(node_id, {}).items()]

    async def flush(self) -> None:
        """Save the points the store does not have yet, in one transaction. If that fails they
        stay unsaved, for the next flush (memory is bounded by ``size`` as ever)."""
        if self.store is None:
            return
        new = [Point(node_id, name, s.unit, t, v)
               for node_id, channels in self._nodes.items() for name, s in channels.items()
               if s.points[-1][0] > s.saved
               for t, v in s.points if t > s.saved]
        if await self.store.save(new, self.size):
            for p in new:  # oldest first within a series: ends at its newest saved point
                self._nodes[p.node][p.channel].saved = p.time

    async def follow(self, wait_until: Callable[[Callable[[Snapshot], bool]], Awaitable[Snapshot]], *,
                     min_interval: float = 1.0) -> None:
        """Record new values until cancelled; ``wait_until`` is ``Gateway.wait_until``. At most one
        snapshot and one store transaction per ``min_interval`` seconds, so a burst of packets
        costs the page and the disk nothing."""
        while True:
            self.record(await wait_until(self.has_new))
            await self.flush()
            await asyncio.sleep(min_interval)
