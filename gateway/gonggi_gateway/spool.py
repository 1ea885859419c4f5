"""The spool: verified packets on disk until every configured uplink has confirmed them.

* ``commit(packets)`` stores a batch in one transaction and answers, per packet, whether it was
  new (True), a duplicate (False) or refused because the spool is full (None). It returns only
  after the commit is durable: the gateway acks a packet after this, never before, and never
  acks a refused one (the node keeps it in its flash ring and sends it again).
* Commits are batched: packets that arrive within ``commit_window`` seconds of the first one
  waiting (or while a commit runs) share one transaction, so one fsync covers them all. The
  window bounds the extra ack latency; ``synchronous`` says what a commit survives
  (docs/gateway.md, "Durability").
* Duplicates are recognised exactly, even for packets delivered and deleted long ago: the replay
  state of each (node, boot) outlives the rows (see replay.py) and is updated in the same
  transaction as the rows it accounts for.
* Each uplink has a delivery cursor (the highest row id it confirmed). Rows are read in id order,
  which is commit order, so every node's packets go upstream in the order they were stored. A row
  is deleted once the cursor of every configured uplink has passed it. Ids only grow: when the
  last row is deleted every cursor goes back to 0 with it, in the same transaction.
* The disk is bounded by ``max_bytes`` (the pages the spool file uses) and by a reserve of free
  space on its filesystem: when either is reached new packets are refused, counted, and logged
  (backpressure: nothing already acked is ever dropped to make room).
* An uplink that rejects rows for good (an HTTP 4xx) moves them to ``dead_letters``, with the
  reason, and moves on; they are kept there for an operator, never retried on their own, never
  silently lost. An operator may mark them for resending (``gonggi gateway dead-letters``): the
  uplink that refused them sends them again (``resend_due``), then ``resent`` deletes them or
  ``rejected_again`` keeps them with the new reason (see dead_letters.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

from gonggi_gateway import dead_letters as letters
from gonggi_gateway.db import Database, transaction
from gonggi_gateway.dead_letters import DeadLetter
from gonggi_gateway.errors import StorageError
from gonggi_gateway.replay import SeqSet
from gonggi_gateway.verify import senml_records

__all__ = ["COMMIT_MAX_PACKETS", "DISK_RESERVE_BYTES", "MIGRATIONS", "DeadLetter", "NewPacket", "PacketRow", "SpooledPacket",
           "SpoolStats", "Spool"]

log = logging.getLogger(__name__)

DISK_RESERVE_BYTES = 64 << 20  # new packets are refused rather than leave less free on the filesystem
COMMIT_MAX_PACKETS = 4096  # a commit starts at once when this many packets wait, window or not
_ROW_OVERHEAD = 48  # bytes a row costs beyond its COSE and JSON (ids, numbers, B-tree cell)
_WAL_LIMIT = 16 << 20  # the WAL file is truncated to this after a checkpoint
_LOG_EVERY = 60.0  # seconds between warnings while the spool refuses packets

MIGRATIONS = [
    (
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
    (
        # v2, for an insert that costs a third of v1's: the replay table is the one exact
        # de-duplication, so UNIQUE(node, boot, seq) was a second index on every insert;
        # AUTOINCREMENT's sqlite_sequence update per row is replaced by resetting the cursors when
        # the table empties (_advance); the SenML JSON (2/3 of a row) is made when a row is read,
        # from the COSE bytes and the frame's uptime (NULL records); v1 rows keep theirs.
        """CREATE TABLE packets_v2 (
            id INTEGER PRIMARY KEY,
            node TEXT NOT NULL,
            boot INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            received_at REAL NOT NULL,
            cose BLOB NOT NULL,
            records TEXT,
            uptime_ms INTEGER NOT NULL DEFAULT 0
        )""",
        "INSERT INTO packets_v2 (id, node, boot, seq, received_at, cose, records) "
        "SELECT id, node, boot, seq, received_at, cose, records FROM packets",
        "DROP TABLE packets",
        "ALTER TABLE packets_v2 RENAME TO packets",
        """CREATE TABLE dead_letters (
            id INTEGER PRIMARY KEY,
            uplink TEXT NOT NULL,
            node TEXT NOT NULL,
            boot INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            received_at REAL NOT NULL,
            records TEXT NOT NULL,
            reason TEXT NOT NULL,
            rejected_at REAL NOT NULL
        )""",
    ),
    (
        # v3, for operators to resend or drop dead letters (gonggi gateway dead-letters): ids that
        # are never reused (AUTOINCREMENT), so an --id names one row even after others were deleted,
        # and a resend mark, found by a partial index that holds only the marked rows.
        """CREATE TABLE dead_letters_v3 (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            uplink TEXT NOT NULL,
            node TEXT NOT NULL,
            boot INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            received_at REAL NOT NULL,
            records TEXT NOT NULL,
            reason TEXT NOT NULL,
            rejected_at REAL NOT NULL,
            resend_requested_at REAL
        )""",
        "INSERT INTO dead_letters_v3 (id, uplink, node, boot, seq, received_at, records, reason, rejected_at) "
        "SELECT id, uplink, node, boot, seq, received_at, records, reason, rejected_at FROM dead_letters",
        "DROP TABLE dead_letters",
        "ALTER TABLE dead_letters_v3 RENAME TO dead_letters",
        "CREATE INDEX dead_letters_resend ON dead_letters (uplink, id) WHERE resend_requested_at IS NOT NULL",
    ),
]


class NewPacket(NamedTuple):
    """A verified packet to store. ``records``: its SenML JSON with wall times, or None to have
    it made from ``cose`` and ``uptime_ms`` when the row is read (``verify.senml_records``).

    A tuple in the column order of the insert: rows are bound as they are, no dict per row.
    ``Spool.commit`` takes plain tuples of these fields too (what ingest has), which sqlite3
    binds faster than a NamedTuple.
    """

    node: str
    boot: int
    seq: int
    received_at: float
    cose: bytes
    records: str | None = None
    uptime_ms: int = 0


PacketRow = tuple[str, int, int, float, bytes, "str | None", int]  # a NewPacket's fields, as a plain tuple


class SpooledPacket(NamedTuple):
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
    refused: int  # new packets not taken (and not acked) because the spool was full, since start
    full: bool  # refusing new packets right now
    used_bytes: int  # pages the spool file uses (rows, replay state, dead letters)
    max_bytes: int | None  # the configured cap
    dead_letters: dict[str, int]  # rows each uplink rejected for good, since start
    resent: dict[str, int]  # dead letters each uplink delivered when an operator resent them, since start
    resend_rejected: dict[str, int]  # resent dead letters upstream refused again, since start
    commits: int  # transactions that stored packets, since start (packets per fsync = stored / commits)


_INSERT = ("INSERT INTO packets (node, boot, seq, received_at, cose, records, uptime_ms) "
           "VALUES (?, ?, ?, ?, ?, ?, ?)")  # positional: binds the rows as they are, no dict per row
_NODE_BOOT = itemgetter(0, 1)
_SEQ = itemgetter(2)
_COSE = itemgetter(4)
_RECORDS = itemgetter(5)


def _used_bytes(conn: sqlite3.Connection) -> int:
    pages = conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int(pages * conn.execute("PRAGMA page_size").fetchone()[0])


def _load_state(conn: sqlite3.Connection, node: str, boot: int) -> SeqSet:
    row = conn.execute("SELECT low, ranges FROM replay WHERE node = :node AND boot = :boot",
                       {"node": node, "boot": boot}).fetchone()
    return SeqSet() if row is None else SeqSet.from_row(*row)


def _commit(conn: sqlite3.Connection, batches: Sequence[Sequence[PacketRow]], cap: float,
            free: float) -> tuple[list[list[bool | None]], int]:
    """Store the new packets that fit under ``cap`` used bytes and in ``free`` more bytes of the
    filesystem; returns the flags of each batch and the bytes used after the commit."""
    with transaction(conn):
        room = min(cap - _used_bytes(conn), free)
        packets = list(chain.from_iterable(batches))
        need = sum(map(len, map(_COSE, packets))) + sum(len(r) for r in map(_RECORDS, packets) if r)
        check = need + _ROW_OVERHEAD * len(packets) > room  # else everything fits: no check per packet
        states: dict[tuple[str, int], SeqSet] = {}
        rows: list[PacketRow] = []
        flags: list[list[bool | None]] = []
        for batch in batches:
            keys = set(map(_NODE_BOOT, batch))
            if len(keys) == 1 and not check:  # one node's packets, as a link delivers them
                key = keys.pop()
                state = states.get(key) or states.setdefault(key, _load_state(conn, *key))
                seqs = list(map(_SEQ, batch))
                if not state.starts and seqs == list(range(state.low, state.low + len(seqs))):
                    state.low += len(seqs)  # the next ones in order: SeqSet.add's common case, at once
                    rows += batch
                    flags.append([True] * len(seqs))
                    continue
            done: list[bool | None] = []
            for p in batch:
                node, boot, seq, _, cose, records, *_ = p
                key = (node, boot)
                state = states.get(key) or states.setdefault(key, _load_state(conn, *key))
                if check:
                    size = len(cose) + len(records or "") + _ROW_OVERHEAD
                    if size > room and seq not in state:
                        done.append(None)  # refused: not stored, not recorded as received
                        continue
                fresh = state.add(seq)
                done.append(fresh)
                if fresh:
                    rows.append(p)
                    if check:
                        room -= size
            flags.append(done)
        conn.executemany(_INSERT, rows)
        conn.executemany(
            "INSERT INTO replay (node, boot, low, ranges) VALUES (:node, :boot, :low, :ranges) "
            "ON CONFLICT (node, boot) DO UPDATE SET low = excluded.low, ranges = excluded.ranges",
            [{"node": n, "boot": b, "low": s.low, "ranges": s.ranges_blob()} for (n, b), s in states.items()],
        )
        used = _used_bytes(conn)
    return flags, used


def _pending(conn: sqlite3.Connection, uplink: str, limit: int) -> list[SpooledPacket]:
    rows = conn.execute(
        "SELECT id, node, boot, seq, received_at, cose, records, uptime_ms FROM packets "
        "WHERE id > (SELECT cursor FROM uplinks WHERE name = :uplink) ORDER BY id LIMIT :limit",
        {"uplink": uplink, "limit": limit},
    ).fetchall()
    return [SpooledPacket(i, node, boot, seq, at, cose, records or _records(i, node, cose, uptime, at))
            for i, node, boot, seq, at, cose, records, uptime in rows]


def _records(row_id: int, node: str, cose: bytes, uptime_ms: int, received_at: float) -> str:
    try:
        return senml_records(node, cose, uptime_ms, received_at)
    except Exception as exc:  # ingest took only packets whose JSON can be made: a bug, but not a crash
        raise StorageError(f"spool row {row_id} cannot be read as SenML JSON: {exc!r}") from exc


def _advance(conn: sqlite3.Connection, uplink: str, through: int) -> tuple[int, int]:
    """Move ``uplink``'s cursor to ``through`` and delete what every uplink has passed.

    Returns (rows newly passed by this uplink, rows deleted). Runs inside a transaction.
    """
    params = {"uplink": uplink, "through": through}
    passed = conn.execute(
        "SELECT count(*) FROM packets WHERE id <= :through AND id > (SELECT cursor FROM uplinks WHERE name = :uplink)",
        params,
    ).fetchone()[0]
    conn.execute("UPDATE uplinks SET cursor = :through WHERE name = :uplink AND cursor < :through", params)
    deleted = conn.execute("DELETE FROM packets WHERE id <= (SELECT min(cursor) FROM uplinks)").rowcount
    if deleted and conn.execute("SELECT NOT EXISTS (SELECT 1 FROM packets)").fetchone()[0]:
        # Without AUTOINCREMENT an empty table hands out id 1 again: the cursors start over with it.
        conn.execute("UPDATE uplinks SET cursor = 0")
    return passed, deleted


def _confirm(conn: sqlite3.Connection, uplink: str, through: int) -> tuple[int, int, int]:
    with transaction(conn):
        passed, deleted = _advance(conn, uplink, through)
        used = _used_bytes(conn)
    return passed, deleted, used


def _dead_letter(conn: sqlite3.Connection, uplink: str, rows: Sequence[SpooledPacket], reason: str,
                 now: float) -> tuple[int, int, int]:
    with transaction(conn):
        conn.executemany(
            "INSERT INTO dead_letters (uplink, node, boot, seq, received_at, records, reason, rejected_at) "
            "VALUES (:uplink, :node, :boot, :seq, :received_at, :records, :reason, :now)",
            [{"uplink": uplink, "node": r.node, "boot": r.boot, "seq": r.seq, "received_at": r.received_at,
              "records": r.records, "reason": reason, "now": now} for r in rows],
        )
        passed, deleted = _advance(conn, uplink, rows[-1].id)
        used = _used_bytes(conn)
    return passed, deleted, used


def _resend_due(conn: sqlite3.Connection, uplink: str, limit: int) -> list[SpooledPacket]:
    # What uplinks send is the SenML JSON, which a dead letter keeps; its COSE message is not kept.
    return [SpooledPacket(d.id, d.node, d.boot, d.seq, d.received_at, b"", d.records)
            for d in letters.marked(conn, uplink, limit)]


def _settle(conn: sqlite3.Connection, ids: Sequence[int], reason: str | None, now: float) -> tuple[int, int]:
    """Resent dead letters delivered (``reason`` None: deleted) or refused again (kept with ``reason``)."""
    with transaction(conn):
        count = letters.delete(conn, ids) if reason is None else letters.reject_again(conn, ids, reason, now)
        used = _used_bytes(conn)
    return count, used


def _prepare(conn: sqlite3.Connection, uplinks: Sequence[str]) -> tuple[int, dict[str, int], dict[str, int], int]:
    """Align the uplinks table with the configuration; return depth, pending counts, latest boots, bytes used."""
    conn.execute(f"PRAGMA journal_size_limit = {_WAL_LIMIT}")
    with transaction(conn):
        for (gone,) in conn.execute("SELECT name FROM uplinks").fetchall():
            if gone not in uplinks:
                log.warning("spool: uplink %r is no longer configured; its cursor is dropped", gone)
                conn.execute("DELETE FROM uplinks WHERE name = :name", {"name": gone})
        # A newly configured uplink starts at the oldest row still spooled.
        conn.executemany("INSERT OR IGNORE INTO uplinks (name, cursor) VALUES (:name, 0)",
                         [{"name": n} for n in uplinks])
        conn.execute("DELETE FROM packets WHERE id <= (SELECT min(cursor) FROM uplinks)")
        if conn.execute("SELECT NOT EXISTS (SELECT 1 FROM packets)").fetchone()[0]:
            conn.execute("UPDATE uplinks SET cursor = 0")
        depth = conn.execute("SELECT count(*) FROM packets").fetchone()[0]
        pending = dict(conn.execute(
            "SELECT u.name, (SELECT count(*) FROM packets p WHERE p.id > u.cursor) FROM uplinks u"
        ).fetchall())
        boots = dict(conn.execute("SELECT node, max(boot) FROM replay GROUP BY node").fetchall())
        used = _used_bytes(conn)
    return depth, pending, boots, used


_Waiter = tuple[Sequence[PacketRow], "asyncio.Future[list[bool | None]]"]


def _fail(batch: list[_Waiter], exc: Exception) -> None:
    for _, waiter in batch:
        if not waiter.done():
            waiter.set_exception(exc)


class Spool:
    """``async with Spool(path, uplinks=("mqtt",)) as spool:`` — see the module docstring.

    ``commit_window``: seconds a packet may wait for others to share its commit (0: commit at
    once; packets arriving during a commit still share the next one). ``max_bytes``: the cap
    on the file's used pages (None: only the filesystem reserve applies). ``free_bytes``: how
    the free space of the spool's filesystem is read (tests fill a disk with it); ``clock``
    stamps dead letters, ``monotonic`` paces the "spool full" warnings.
    """

    def __init__(self, path: str | Path, uplinks: Sequence[str], *, synchronous: str = "full",
                 commit_window: float = 0.0, max_bytes: int | None = None,
                 free_bytes: Callable[[Path], int] | None = None,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.uplinks = tuple(uplinks)
        self.synchronous = synchronous
        self.commit_window = commit_window
        self.max_bytes = max_bytes
        self._free_bytes = free_bytes or _filesystem_free
        self._clock = clock
        self._monotonic = monotonic
        self._db = Database(path, MIGRATIONS, synchronous=synchronous, what="spool")
        self._depth = 0
        self._pending: dict[str, int] = {}
        self._stored = 0
        self._duplicates = 0
        self._refused = 0
        self._commits = 0
        self._used = 0
        self._full_since: float | None = None  # monotonic time the spool started refusing
        self._full_logged = 0.0
        self._refused_unlogged = 0
        self._dead: dict[str, int] = {name: 0 for name in self.uplinks}
        self._resent: dict[str, int] = {name: 0 for name in self.uplinks}
        self._resend_rejected: dict[str, int] = {name: 0 for name in self.uplinks}
        self._boots: dict[str, int] = {}
        self._wakeups = {name: asyncio.Event() for name in self.uplinks}
        self._queued: list[_Waiter] = []
        self._queued_count = 0
        self._queued_since = 0.0  # loop time the oldest queued packet arrived
        self._batch_full = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    @property
    def durability(self) -> str:
        """The commit policy, as the bench and the logs print it."""
        return f"synchronous={self.synchronous} commit_window_ms={self.commit_window * 1000:g}"

    async def __aenter__(self) -> Spool:
        await self._db.__aenter__()
        try:
            self._depth, self._pending, self._boots, self._used = await self._db.run(_prepare, self.uplinks)
        except BaseException:
            await self._db.__aexit__(None, None, None)
            raise
        for name, count in self._pending.items():
            if count:
                self._wakeups[name].set()
        log.info("spool open path=%s depth=%d pending=%s used_mb=%.1f max_mb=%s %s", self.path, self._depth,
                 self._pending, self._used / 2**20, "none" if self.max_bytes is None else f"{self.max_bytes / 2**20:g}",
                 self.durability)
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

    async def commit(self, packets: Sequence[PacketRow]) -> list[bool | None]:
        """Durably store ``packets``; per packet True if new, False if a duplicate, None if refused
        (the spool is full: do not ack it).

        Raises StorageError if the commit failed: then nothing of this batch may be acked.
        """
        if not packets:
            return []
        waiter: asyncio.Future[list[bool | None]] = asyncio.get_running_loop().create_future()
        if not self._queued:
            self._queued_since = asyncio.get_running_loop().time()
        self._queued.append((packets, waiter))
        self._queued_count += len(packets)
        if self._queued_count >= COMMIT_MAX_PACKETS:
            self._batch_full.set()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await waiter

    def _limits(self) -> tuple[float, float]:
        """The cap on used bytes, and how much the filesystem may still give before its reserve."""
        cap = math.inf if self.max_bytes is None else float(self.max_bytes)
        return cap, float(self._free_bytes(self.path) - DISK_RESERVE_BYTES)

    async def _flush(self) -> None:
        batch: list[_Waiter] = []
        try:
            while self._queued:
                wait = self._queued_since + self.commit_window - asyncio.get_running_loop().time()
                if wait > 0 and self._queued_count < COMMIT_MAX_PACKETS:
                    self._batch_full.clear()
                    try:
                        async with asyncio.timeout(wait):
                            await self._batch_full.wait()
                    except TimeoutError:
                        pass
                batch, self._queued, self._queued_count = self._queued, [], 0
                try:
                    flags, self._used = await self._db.run(_commit, [ps for ps, _ in batch], *self._limits())
                except Exception as exc:  # handed to every waiter, who decides; the flusher goes on
                    _fail(batch, exc)
                    continue
                self._committed(list(chain.from_iterable(flags)))
                for (_, waiter), done in zip(batch, flags):
                    if not waiter.done():
                        waiter.set_result(done)
        except asyncio.CancelledError:
            _fail(batch + self._queued, StorageError(f"{self.path}: spool closed before the commit finished"))
            raise
        finally:
            self._flusher = None

    def _committed(self, flags: list[bool | None]) -> None:
        new = flags.count(True)
        refused = flags.count(None)
        self._stored += new
        self._duplicates += flags.count(False)
        if new:
            self._commits += 1
            self._depth += new
            for name in self.uplinks:
                self._pending[name] += new
                self._wakeups[name].set()
        if refused:
            self._refusing(refused)
        elif new and self._full_since is not None:
            log.info("spool accepts packets again after %.0f s full: %d refused meanwhile, used_mb=%.1f",
                        self._monotonic() - self._full_since, self._refused_unlogged, self._used / 2**20)
            self._full_since = None
            self._refused_unlogged = 0

    def _refusing(self, count: int) -> None:
        self._refused += count
        self._refused_unlogged += count
        now = self._monotonic()
        if self._full_since is None:
            self._full_since = now
        elif now - self._full_logged < _LOG_EVERY:
            return
        self._full_logged = now
        cap = "none" if self.max_bytes is None else f"{self.max_bytes / 2**20:g}"
        log.warning("spool full: refused %d new packets, not acked: the nodes keep them and send them again "
                    "(used_mb=%.1f max_mb=%s, free_mb=%d, reserve_mb=%d)", self._refused_unlogged,
                    self._used / 2**20, cap, self._free_bytes(self.path) >> 20, DISK_RESERVE_BYTES >> 20)
        self._refused_unlogged = 0

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

    async def wait_count(self, uplink: str, count: int) -> None:
        """Return once ``uplink`` has at least ``count`` rows pending (woken by commits)."""
        wakeup = self._wakeups[uplink]
        while self._pending[uplink] < count:
            wakeup.clear()
            await wakeup.wait()

    def pending_count(self, uplink: str) -> int:
        return self._pending[uplink]

    async def confirm(self, uplink: str, through_id: int) -> int:
        """``uplink`` delivered every row up to ``through_id``; returns how many rows were deleted."""
        passed, deleted, self._used = await self._db.run(_confirm, uplink, through_id)
        self._pending[uplink] -= passed
        self._depth -= deleted
        return deleted

    async def dead_letter(self, uplink: str, rows: Sequence[SpooledPacket], reason: str) -> int:
        """``uplink`` rejected ``rows`` for good: keep them in ``dead_letters`` and move its cursor
        past them. Returns how many rows left the spool."""
        if not rows:
            return 0
        passed, deleted, self._used = await self._db.run(_dead_letter, uplink, rows, reason, self._clock())
        self._pending[uplink] -= passed
        self._depth -= deleted
        self._dead[uplink] += len(rows)
        return deleted

    async def dead_letters(self, uplink: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The oldest rows uplinks rejected for good (of one uplink, or of all)."""
        return await self._db.run(letters.select, uplink, None, limit)

    async def resend_due(self, uplink: str, limit: int = 100) -> list[SpooledPacket]:
        """The oldest dead letters of ``uplink`` an operator marked for resending, as rows to send:
        ``id`` is the dead letter's, ``records`` its SenML JSON, ``cose`` empty (not kept)."""
        return await self._db.run(_resend_due, uplink, limit)

    async def resent(self, uplink: str, rows: Sequence[SpooledPacket]) -> int:
        """``uplink`` delivered these resent dead letters: delete them. Returns how many were still
        there (an operator may have dropped some meanwhile)."""
        count, self._used = await self._db.run(_settle, [r.id for r in rows], None, self._clock())
        self._resent[uplink] += len(rows)
        return count

    async def rejected_again(self, uplink: str, rows: Sequence[SpooledPacket], reason: str) -> int:
        """Upstream refused these resent dead letters again: keep them, unmarked, with ``reason``."""
        count, self._used = await self._db.run(_settle, [r.id for r in rows], reason, self._clock())
        self._resend_rejected[uplink] += len(rows)
        return count

    def depth(self) -> int:
        return self._depth

    def stats(self) -> SpoolStats:
        return SpoolStats(
            depth=self._depth, pending=dict(self._pending), stored=self._stored, duplicates=self._duplicates,
            refused=self._refused, full=self._full_since is not None, used_bytes=self._used,
            max_bytes=self.max_bytes, dead_letters=dict(self._dead), resent=dict(self._resent),
            resend_rejected=dict(self._resend_rejected), commits=self._commits,
        )


def _filesystem_free(path: Path) -> int:
    st = os.statvfs(path.parent)
    return st.f_bavail * st.f_frsize
