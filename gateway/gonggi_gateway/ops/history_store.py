"""The status page's history on disk, so that a restart keeps the sparklines.

A small SQLite file beside the spool (``history.sqlite``), on a ``Database`` thread of its own.
It is a view, not data: ``synchronous=NORMAL`` (a commit does not wait for fsync, so a power cut
may lose the last few seconds of points but never the spool's packets), and a file that cannot
be used is moved aside rather than stopping the gateway.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from gonggi_gateway.db import Database, Migration, transaction
from gonggi_gateway.errors import StorageError

__all__ = ["HISTORY_FILE", "HistoryStore", "Point"]

log = logging.getLogger(__name__)

HISTORY_FILE = "history.sqlite"  # in the spool's directory

_MIGRATIONS: Sequence[Migration] = [
    [
        "CREATE TABLE points (node TEXT NOT NULL, channel TEXT NOT NULL, time REAL NOT NULL, "
        "value REAL NOT NULL, unit TEXT, PRIMARY KEY (node, channel, time)) WITHOUT ROWID",
    ],
]

_INSERT = "INSERT OR REPLACE INTO points VALUES (:node, :channel, :time, :value, :unit)"
_TRIM = ("DELETE FROM points WHERE node = :node AND channel = :channel AND time < "
         "(SELECT time FROM points WHERE node = :node AND channel = :channel "
         "ORDER BY time DESC LIMIT 1 OFFSET :keep - 1)")  # no such row (short series): NULL, nothing deleted
_FORGET = ("DELETE FROM points WHERE (node, channel) IN (SELECT node, channel FROM points "
           "GROUP BY node, channel HAVING max(time) < (SELECT max(time) FROM points) - :forget_after)")


class Point(NamedTuple):
    """One value of one channel of one node."""

    node: str
    channel: str
    unit: str | None
    time: float
    value: float


def _load(conn: sqlite3.Connection, keep: int, forget_after: float) -> list[Point]:
    with transaction(conn):
        conn.execute(_FORGET, {"forget_after": forget_after})
        series = conn.execute("SELECT DISTINCT node, channel FROM points").fetchall()
        conn.executemany(_TRIM, [{"node": n, "channel": c, "keep": keep} for n, c in series])  # if size shrank
    rows = conn.execute("SELECT node, channel, unit, time, value FROM points ORDER BY node, channel, time")
    return [Point(*row) for row in rows]


def _save(conn: sqlite3.Connection, points: Sequence[Point], keep: int) -> None:
    series = {(p.node, p.channel) for p in points}
    with transaction(conn):
        conn.executemany(_INSERT, [p._asdict() for p in points])  # REPLACE: a retried point is no error
        conn.executemany(_TRIM, [{"node": n, "channel": c, "keep": keep} for n, c in series])


class HistoryStore:
    """The last points of each (node, channel) in an SQLite file: ``open`` returns them, ``save``
    adds new ones in one transaction and trims each series it touched.

    Never raises: a file that cannot be opened or read is logged as an ERROR, moved aside to
    ``<name>.corrupt-<timestamp>`` and replaced by a fresh one; a failed write is logged once per
    outage and the caller keeps its points for the next ``save``. A series whose newest point is
    ``forget_after`` seconds older than the newest point in the file (a node removed from the
    registry, a channel no longer sent) is dropped when the file is opened.
    """

    def __init__(self, path: str | Path, *, forget_after: float = 7 * 86400) -> None:
        self.path = Path(path)
        self.forget_after = forget_after
        self.transactions = 0  # commits made by save()
        self._db: Database | None = None
        self._failing = False

    async def open(self, keep: int) -> list[Point]:
        """Open the file; its points, the newest ``keep`` of each series, by series and time."""
        try:
            return await self._open(keep)
        except StorageError as exc:
            if not self._set_aside(exc):
                return []
        try:
            return await self._open(keep)
        except StorageError as exc:
            log.error("%s; the status history is kept in memory only until the gateway restarts", exc)
            return []

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.__aexit__(None, None, None)

    async def save(self, points: Sequence[Point], keep: int) -> bool:
        """Add ``points`` and trim their series to ``keep`` rows, in one transaction; False if
        they were not written (no file, or a disk error)."""
        if self._db is None or not points:
            return False
        try:
            await self._db.run(_save, points, keep)
        except StorageError as exc:
            if not self._failing:
                log.error("%s; the status history stays in memory until writes work again", exc)
                self._failing = True
            return False
        if self._failing:
            log.info("%s: status history writes work again", self.path)
            self._failing = False
        self.transactions += 1
        return True

    async def _open(self, keep: int) -> list[Point]:
        db = Database(self.path, _MIGRATIONS, synchronous="normal", what="status history")
        await db.__aenter__()
        try:
            points = await db.run(_load, keep, self.forget_after)
        except BaseException:
            await db.__aexit__(None, None, None)
            raise
        self._db = db
        return points

    def _set_aside(self, exc: StorageError) -> bool:
        """Move the unusable file and its WAL aside (kept for a post-mortem); False if there is
        no file to blame or it cannot be moved."""
        if not self.path.exists():
            log.error("%s; the status history is kept in memory only until the gateway restarts", exc)
            return False
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        wal = self.path.with_name(f"{self.path.name}-wal")
        try:
            self.path.rename(aside)
            if wal.exists():  # a stale WAL must not be replayed into the fresh file
                wal.rename(aside.with_name(f"{aside.name}-wal"))
            self.path.with_name(f"{self.path.name}-shm").unlink(missing_ok=True)
        except OSError as err:
            log.error("%s; cannot move it aside (%s): the status history is kept in memory only", exc, err)
            return False
        log.error("%s; moved it aside to %s and started a fresh status history", exc, aside)
        return True
