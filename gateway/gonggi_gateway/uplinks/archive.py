"""The embedded upstream: a local SQLite archive, so a gateway with no broker keeps everything.

Delivered packets are appended durably (same WAL/synchronous rules as the spool). Inserting is
idempotent on (node, boot, seq), so a batch sent again after a crash is stored once. A second
table keeps the latest value of every channel of every node for the live view.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from gonggi_gateway.config import ArchiveConfig, Batching
from gonggi_gateway.db import Database, transaction
from gonggi_gateway.errors import StorageError, UplinkError
from gonggi_gateway.spool import SpooledPacket
from gonggi_gateway.state import Reading, reading_from_senml
from gonggi_gateway.uplinks.base import Uplink

__all__ = ["ArchiveUplink"]

_MIGRATIONS = [
    (
        """CREATE TABLE packets (
            id INTEGER PRIMARY KEY,
            node TEXT NOT NULL,
            boot INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            received_at REAL NOT NULL,
            records TEXT NOT NULL,
            UNIQUE (node, boot, seq)
        )""",
        """CREATE TABLE latest (
            node TEXT NOT NULL,
            name TEXT NOT NULL,
            time REAL NOT NULL,
            record TEXT NOT NULL,
            PRIMARY KEY (node, name)
        ) WITHOUT ROWID""",
    ),
]


def _append(conn: sqlite3.Connection, batch: Sequence[SpooledPacket]) -> None:
    with transaction(conn):
        for p in batch:
            cur = conn.execute(
                "INSERT OR IGNORE INTO packets (node, boot, seq, received_at, records) "
                "VALUES (:node, :boot, :seq, :received_at, :records)",
                {"node": p.node, "boot": p.boot, "seq": p.seq, "received_at": p.received_at, "records": p.records},
            )
            if cur.rowcount == 0:
                continue  # already archived
            conn.executemany(
                "INSERT INTO latest (node, name, time, record) VALUES (:node, :name, :time, :record) "
                "ON CONFLICT (node, name) DO UPDATE SET time = excluded.time, record = excluded.record "
                "WHERE excluded.time >= latest.time",
                [{"node": p.node, "name": r["n"], "time": r["t"], "record": json.dumps(r)}
                 for r in json.loads(p.records) if "n" in r],
            )


def _latest(conn: sqlite3.Connection, node: str | None) -> dict[str, list[Reading]]:
    rows = conn.execute(
        "SELECT node, record FROM latest WHERE :node IS NULL OR node = :node ORDER BY node, name",
        {"node": node},
    ).fetchall()
    out: dict[str, list[Reading]] = {}
    for node_id, record in rows:
        out.setdefault(node_id, []).append(reading_from_senml(json.loads(record)))
    return out


def _count(conn: sqlite3.Connection, node: str | None) -> int:
    return int(conn.execute("SELECT count(*) FROM packets WHERE :node IS NULL OR node = :node",
                            {"node": node}).fetchone()[0])


def _packets(conn: sqlite3.Connection, node: str, limit: int) -> list[list[dict[str, object]]]:
    rows = conn.execute(
        "SELECT records FROM packets WHERE node = :node ORDER BY id DESC LIMIT :limit",
        {"node": node, "limit": limit},
    ).fetchall()
    return [json.loads(r) for (r,) in reversed(rows)]


class ArchiveUplink(Uplink):
    """``async with ArchiveUplink(path) as archive:`` — an Uplink plus a small query API."""

    name = "archive"

    def __init__(self, path: str | Path, *, synchronous: str = "full", batching: Batching = ArchiveConfig.batch) -> None:
        self.path = Path(path)
        self.batching = batching
        self._db = Database(path, _MIGRATIONS, synchronous=synchronous, what="archive")

    async def __aenter__(self) -> Self:
        await self._db.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._db.__aexit__(exc_type, exc, tb)

    async def send(self, batch: Sequence[SpooledPacket]) -> None:
        try:
            await self._db.run(_append, batch)
        except StorageError as exc:
            raise UplinkError(str(exc)) from exc

    async def latest(self, node: str | None = None) -> dict[str, list[Reading]]:
        """The newest reading of every channel, per node (or of one node)."""
        return await self._db.run(_latest, node)

    async def count(self, node: str | None = None) -> int:
        """Packets archived (of one node, or of all)."""
        return await self._db.run(_count, node)

    async def packets(self, node: str, limit: int = 100) -> list[list[dict[str, object]]]:
        """The last ``limit`` packets of ``node`` as SenML JSON arrays, oldest first."""
        return await self._db.run(_packets, node, limit)
