"""What the gateway has seen, for the live view and tests: immutable snapshots of mutable counters.

``Gateway.snapshot()`` assembles a ``Snapshot``; ``Gateway.wait_until(predicate)`` re-checks a
predicate on a fresh snapshot each time something changed (the ``Pulse``), so a view or a test
waits on events, never on a timer.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gonggi_gateway.spool import SpoolStats

__all__ = [
    "LinkStatus",
    "NodeState",
    "NodeStatus",
    "Pulse",
    "Reading",
    "Snapshot",
    "UplinkStatus",
    "reading_from_senml",
]


@dataclass(frozen=True)
class Reading:
    """One value as the live view shows it: name within the node, unit, value, Unix time."""

    name: str
    unit: str | None
    value: float | str | bool
    time: float


def reading_from_senml(record: dict[str, Any]) -> Reading:
    """A reading from one record of the gateway's own SenML JSON (``n`` relative to ``bn``)."""
    value = next(record[k] for k in ("v", "vs", "vb", "vd") if k in record)
    return Reading(record["n"], record.get("u"), value, record["t"])


@dataclass(frozen=True)
class NodeStatus:
    node_id: str
    name: str
    location: str
    link: str | None  # the link it was last heard on
    boot: int | None  # its current boot as far as the gateway knows
    last_seen: float | None  # Unix time of its last valid message
    packets: int  # new packets stored
    duplicates: int  # packets received again (re-acked, not stored)
    rejected: dict[str, int]  # by ProtocolError.reason, for messages that named this node
    readings: tuple[Reading, ...]  # the latest value of each channel
    firmware: str = ""
    backlog: int = 0  # unacked packets in the node's flash, from its last HELLO
    dropped: int = 0  # packets the node's full ring buffer overwrote, from its last HELLO
    flags: int = 0  # health flags, from its last HELLO


@dataclass(frozen=True)
class LinkStatus:
    name: str
    open: bool
    node_id: str | None
    frame_errors: dict[str, int]
    rssi: int | None = None  # dBm, for radio links (BLE); None for wired ones


@dataclass(frozen=True)
class UplinkStatus:
    name: str
    pending: int  # spooled rows not yet confirmed by this uplink
    delivered: int  # rows confirmed since start
    failures: int  # failed send attempts since start
    last_error: str | None  # None while it works
    rejected: int = 0  # rows upstream refused for good (kept in the spool's dead_letters) since start


@dataclass(frozen=True)
class Snapshot:
    gateway_id: str
    taken_at: float
    nodes: dict[str, NodeStatus]
    links: tuple[LinkStatus, ...]
    uplinks: tuple[UplinkStatus, ...]
    rejected: dict[str, int]  # every rejected message by reason, nodes known or not
    spool_depth: int
    spool: SpoolStats | None = None  # refused at the cap, dead letters, bytes used, commits (docs/gateway.md)


_UNREAD_MAX = 16  # packets kept undecoded per node before their readings are taken anyway


@dataclass
class NodeState:
    """The gateway's mutable view of one node (ingest writes it).

    ``readings`` are decoded when asked, not when packets arrive: a backlog of thousands of
    packets costs one decode per shape of packet, and nothing while nobody looks.
    """

    node_id: str
    boot: int | None = None
    link: str | None = None
    last_seen: float | None = None
    packets: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    firmware: str = ""
    backlog: int = 0
    dropped: int = 0
    flags: int = 0
    time_sent: float | None = None  # monotonic time the node was last sent the clock
    _readings: dict[str, Reading] = field(default_factory=dict, init=False, repr=False)
    _unread: dict[int, Callable[[], Iterable[Reading]]] = field(default_factory=dict, init=False, repr=False)

    def later(self, kind: int, decode: Callable[[], Iterable[Reading]]) -> None:
        """Keep a new packet's readings (``decode`` makes them) to take when asked. Packets of
        one ``kind`` carry the same channels: only the newest of each kind is kept."""
        self._unread.pop(kind, None)
        self._unread[kind] = decode
        if len(self._unread) > _UNREAD_MAX:
            self._take()

    @property
    def readings(self) -> dict[str, Reading]:
        """The latest value of each channel, by name."""
        if self._unread:
            self._take()
        return self._readings

    def _take(self) -> None:
        for decode in self._unread.values():  # oldest first: the newest value of a channel wins
            for r in decode():
                self._readings[r.name] = r
        self._unread.clear()

    def status(self, name: str = "", location: str = "") -> NodeStatus:
        return NodeStatus(
            node_id=self.node_id, name=name, location=location, link=self.link, boot=self.boot,
            last_seen=self.last_seen, packets=self.packets, duplicates=self.duplicates,
            rejected=dict(self.rejected), readings=tuple(self.readings[k] for k in sorted(self.readings)),
            firmware=self.firmware, backlog=self.backlog, dropped=self.dropped, flags=self.flags,
        )


class Pulse:
    """Wakes every waiter whenever something changed."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def wait(self) -> Coroutine[Any, Any, bool]:
        """Wait for the next ``fire`` after this call. The event is taken now, not when the
        coroutine first runs: wrapped in a task, that is a turn of the loop later, and a fire in
        between would go unseen (``Gateway.wait_until`` checks, then waits)."""
        return self._event.wait()
