"""The spool: verified packets on disk until every configured uplink has confirmed them.

* ``commit(packets)`` stores a batch in one transaction and answers, per packet, whether it was
  new. It returns only after the commit is durable: the gateway acks a packet after this, never
  before. Concurrent calls (several links) are merged into one transaction: one fsync for all.
* Duplicates are recognised exactly, even for packets delivered and deleted long ago: the replay
  state of each (node, boot) outlives the rows (see replay.py). UNIQUE(node, boot, seq) backs it.
* Each uplink has a delivery cursor (the highest row id it confirmed). Rows are read in id order,
  which is commit order, so every node's packets go upstream in the order they were stored. A row
  is deleted once the cursor of every configured uplink has passed it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gonggi_gateway.db import Database, transaction
from gonggi_gateway.errors import StorageError
from gonggi_gateway.replay import SeqSet

__all__ = ["NewPacket", "SpooledPacket", "SpoolStats", "Spool"]

log = logging.getLogger(__name__)

_MIGRATIONS = [
    (
        # AUTOINCREMENT: ids are never reused, so a delivery cursor never skips a new row.
        """CREATE TABLE packets (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            node TEXT NOT NULL,
            boot INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            received_at REAL NOT NULL,
            cose BLOB NOT NULL,
            records TEXT NOT NULL,
            UNIQUE (node, boot, seq)
        )""",
        """CREATE TABLE uplinks (
            name TEXT PRIMARY KEY,
            cursor INTEGER NOT NULL
        )""",
        """CREATE TABLE replay (
            node TEXT NOT NULL,
            boot INTEGER NOT NULL,
            low INTEGER NOT NULL,
            ranges BLOB NOT NULL,
            PRIMARY KEY (node, boot)
        ) WITHOUT ROWID""",
    ),
]


@dataclass(frozen=True)
class NewPacket:
    """A verified packet to store; ``records`` is its SenML JSON with wall times."""

    node: str
    boot: int
    seq: int
    received_at: float
    cose: bytes
    records: str


@dataclass(frozen=True)
class SpooledPacket:
    id: int
    node: str
    boot: int
    seq: int
    received_at: float
    cose: bytes
    records: str


@dataclass(frozen=True)
class SpoolStats:
    depth: int  # rows on disk
    pending: dict[str, int]  # rows each uplink has not confirmed yet
    stored: int  # new packets committed since start
    duplicates: int  # packets recognised as already received since start


_COLUMNS = "id, node, boot, seq, received_at, cose, records"


def _commit(conn: sqlite3.Connection, packets: Sequence[NewPacket]) -> list[bool]:
    with transaction(conn):
        states: dict[tuple[str, int], SeqSet] = {}
        new: list[bool] = []
        rows: list[dict[str, object]] = []
        for p in packets:
            key = (p.node, p.boot)
            state = states.get(key)
            if state is None:
                row = conn.execute(
                    "SELECT low, ranges FROM replay WHERE node = :node AND boot = :boot",
                    {"node": p.node, "boot": p.boot},
                ).fetchone()
                state = states[key] = SeqSet() if row is None else SeqSet.from_row(*row)
            fresh = state.add(p.seq)
            new.append(fresh)
            if fresh:
                rows.append({"node": p.node, "boot": p.boot, "seq": p.seq, "received_at": p.received_at,
                             "cose": p.cose, "records": p.records})
        conn.executemany(
            "INSERT INTO packets (node, boot, seq, received_at, cose, records) "
            "VALUES (:node, :boot, :seq, :received_at, :cose, :records)",
            rows,
        )
        conn.executemany(
            "INSERT INTO replay (node, boot, low, ranges) VALUES (:node, :boot, :low, :ranges) "
            "ON CONFLICT (node, boot) DO UPDATE SET low = excluded.low, ranges = excluded.ranges",
            [{"node": n, "boot": b, "low": s.low, "ranges": s.ranges_blob()} for (n, b), s in states.items()],
        )
    return new


def _pending(conn: sqlite3.Connection, uplink: str, limit: int) -> list[SpooledPacket]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM packets WHERE id > (SELECT cursor FROM uplinks WHERE name = :uplink) "
        "ORDER BY id LIMIT :limit",
        {"uplink": uplink, "limit": limit},
    ).fetchall()
    return [SpooledPacket(*row) for row in rows]


def _confirm(conn: sqlite3.Connection, uplink: str, through: int) -> tuple[int, int]:
    with transaction(conn):
        params = {"uplink": uplink, "through": through}
        confirmed = conn.execute(
            "SELECT count(*) FROM packets WHERE id <= :through "
            "AND id > (SELECT cursor FROM uplinks WHERE name = :uplink)",
            params,
        ).fetchone()[0]
        conn.execute("UPDATE uplinks SET cursor = :through WHERE name = :uplink AND cursor < :through", params)
        deleted = conn.execute("DELETE FROM packets WHERE id <= (SELECT min(cursor) FROM uplinks)").rowcount
    return confirmed, deleted


def _prepare(conn: sqlite3.Connection, uplinks: Sequence[str]) -> tuple[int, dict[str, int], dict[str, int]]:
    """Align the uplinks table with the configuration; return depth, pending counts, latest boots."""
    with transaction(conn):
        for (gone,) in conn.execute("SELECT name FROM uplinks").fetchall():
            if gone not in uplinks:
                log.warning("spool: uplink %r is no longer configured; its cursor is dropped", gone)
                conn.execute("DELETE FROM uplinks WHERE name = :name", {"name": gone})
        # A newly configured uplink starts at the oldest row still spooled.
        conn.executemany("INSERT OR IGNORE INTO uplinks (name, cursor) VALUES (:name, 0)",
                         [{"name": n} for n in uplinks])
        conn.execute("DELETE FROM packets WHERE id <= (SELECT min(cursor) FROM uplinks)")
        depth = conn.execute("SELECT count(*) FROM packets").fetchone()[0]
        pending = dict(conn.execute(
            "SELECT u.name, (SELECT count(*) FROM packets p WHERE p.id > u.cursor) FROM uplinks u"
        ).fetchall())
        boots = dict(conn.execute("SELECT node, max(boot) FROM replay GROUP BY node").fetchall())
    return depth, pending, boots


def _fail(batch: list[tuple[list[NewPacket], asyncio.Future[list[bool]]]], exc: Exception) -> None:
    for _, waiter in batch:
        if not waiter.done():
            waiter.set_exception(exc)


class Spool:
    """``async with Spool(path, uplinks=("mqtt",)) as spool:`` — see the module docstring."""

    def __init__(self, path: str | Path, uplinks: Sequence[str], *, synchronous: str = "full") -> None:
        self.path = Path(path)
        self.uplinks = tuple(uplinks)
        self._db = Database(path, _MIGRATIONS, synchronous=synchronous, what="spool")
        self._depth = 0
        self._pending: dict[str, int] = {}
        self._stored = 0
        self._duplicates = 0
        self._boots: dict[str, int] = {}
        self._wakeups = {name: asyncio.Event() for name in self.uplinks}
        self._queued: list[tuple[list[NewPacket], asyncio.Future[list[bool]]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Spool:
        await self._db.__aenter__()
        try:
            self._depth, self._pending, self._boots = await self._db.run(_prepare, self.uplinks)
        except BaseException:
            await self._db.__aexit__(None, None, None)
            raise
        for name, count in self._pending.items():
            if count:
                self._wakeups[name].set()
        log.info("spool open path=%s depth=%d pending=%s", self.path, self._depth, self._pending)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._db.__aexit__(*exc)

    @property
    def latest_boots(self) -> dict[str, int]:
        """The highest boot seen per node when the spool was opened (a node's current boot)."""
        return dict(self._boots)

    async def commit(self, packets: Sequence[NewPacket]) -> list[bool]:
        """Durably store ``packets``; per packet, True if new, False if a duplicate.

        Raises StorageError if the commit failed: then nothing of this batch may be acked.
        """
        if not packets:
            return []
        waiter: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self._queued.append((list(packets), waiter))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await waiter

    async def _flush(self) -> None:
        batch: list[tuple[list[NewPacket], asyncio.Future[list[bool]]]] = []
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                try:
                    flags = await self._db.run(_commit, [p for ps, _ in batch for p in ps])
                except Exception as exc:  # handed to every waiter, who decides; the flusher goes on
                    _fail(batch, exc)
                    continue
                self._committed(flags)
                start = 0
                for ps, waiter in batch:
                    if not waiter.done():
                        waiter.set_result(flags[start:start + len(ps)])
                    start += len(ps)
        except asyncio.CancelledError:
            _fail(batch + self._queued, StorageError(f"{self.path}: spool closed before the commit finished"))
            raise
        finally:
            self._flusher = None

    def _committed(self, flags: list[bool]) -> None:
        new = sum(flags)
        self._stored += new
        self._duplicates += len(flags) - new
        if new:
            self._depth += new
            for name in self.uplinks:
                self._pending[name] += new
                self._wakeups[name].set()

    async def pending(self, uplink: str, limit: int = 100) -> list[SpooledPacket]:
        """The oldest rows ``uplink`` has not confirmed, in commit order."""
        return await self._db.run(_pending, uplink, limit)

    async def wait_pending(self, uplink: str, limit: int = 100) -> list[SpooledPacket]:
        """Like ``pending`` but waits until there is at least one row."""
        wakeup = self._wakeups[uplink]
        while True:
            wakeup.clear()  # before the query: a commit during it sets the event again
            rows = await self.pending(uplink, limit)
            if rows:
                return rows
            await wakeup.wait()

    async def confirm(self, uplink: str, through_id: int) -> int:
        """``uplink`` delivered every row up to ``through_id``; returns how many rows were deleted."""
        confirmed, deleted = await self._db.run(_confirm, uplink, through_id)
        self._pending[uplink] -= confirmed
        self._depth -= deleted
        return deleted

    def depth(self) -> int:
        return self._depth

    def stats(self) -> SpoolStats:
        return SpoolStats(self._depth, dict(self._pending), self._stored, self._duplicates)
