"""SQLite the litequeue way, on a thread of its own: shared by the spool and the archive.

* WAL journal, connection in autocommit (``isolation_level=None``); every write goes through
  ``transaction()``: ``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on any error.
* Schema version in ``PRAGMA user_version``; ``migrate()`` applies the missing steps, each in
  its own transaction together with the version bump.
* ``synchronous=FULL`` by default: in WAL mode each commit waits until the WAL is on disk, so a
  committed row survives a power cut. ``NORMAL`` survives a crash of the process, not of the
  machine (the last commits may roll back).
* One dedicated thread owns the connection. A FULL commit waits for fsync: ~0.5 ms on this
  development VM, but 5–30 ms on a Raspberry Pi's SD card, which in the event loop's thread would
  stall every serial link and MQTT keepalive for that long.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from gonggi_gateway.errors import StorageError

__all__ = ["Database", "Migration", "transaction"]

T = TypeVar("T")
Migration = Sequence[str]  # the statements of one schema step


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; ``ROLLBACK`` if the block raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class Database:
    """An SQLite file whose connection lives on one worker thread; ``await db.run(fn)`` calls
    ``fn(conn)`` there. sqlite3 errors come back as StorageError naming the file."""

    def __init__(self, path: str | Path, migrations: Sequence[Migration], *, synchronous: str = "full",
                 what: str = "database") -> None:
        self.path = Path(path)
        self.what = what
        self._migrations = migrations
        self._synchronous = synchronous.upper()
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def __aenter__(self) -> Database:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"gonggi-{self.what}")
        try:
            self._conn = await self._call(self._open)
        except BaseException:
            self._executor.shutdown(wait=True)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._executor is not None
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
        # Waits for a statement still running for a cancelled caller; it is on its own thread.
        self._executor.shutdown(wait=True)
        self._conn = None

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise sqlite3.OperationalError(f"cannot enable WAL (journal_mode is {mode})")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(self._migrations):
            raise StorageError(
                f"{self.path}: {self.what} schema version {version} is newer than this gonggi "
                f"understands ({len(self._migrations)}): upgrade gonggi"
            )
        for step in range(version, len(self._migrations)):
            with transaction(conn):
                for statement in self._migrations[step]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {step + 1}")

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise StorageError(f"{self.path}: {self.what} is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"{self.path}: {self.what}: {exc}") from exc

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` on the database thread."""
        conn = self._conn
        if conn is None:
            raise StorageError(f"{self.path}: {self.what} is not open")
        return await self._call(partial(fn, conn, *args))
