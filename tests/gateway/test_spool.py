"""The SQLite spool: durable commits, exact de-duplication, per-uplink delivery."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gonggi_gateway.errors import StorageError
from gonggi_gateway.spool import NewPacket, Spool


def packet(seq: int, node: str = "n1", boot: int = 1) -> NewPacket:
    return NewPacket(node, boot, seq, 1000.0 + seq, b"cose%d" % seq, f'[{{"n":"x","v":{seq},"t":1}}]')


def test_commit_reports_new_and_duplicate(tmp_path: Path) -> None:
    async def main() -> None:
        async with Spool(tmp_path / "spool.sqlite", ["mqtt"]) as spool:
            assert await spool.commit([packet(0), packet(1), packet(1), packet(0, boot=2)]) == [True, True, False, True]
            assert await spool.commit([packet(1), packet(2), packet(0, node="n2")]) == [False, True, True]
            assert spool.depth() == 5
            rows = await spool.pending("mqtt")
            assert [(r.node, r.boot, r.seq) for r in rows] == [("n1", 1, 0), ("n1", 1, 1), ("n1", 2, 0),
                                                               ("n1", 1, 2), ("n2", 1, 0)]
            assert rows[0].cose == b"cose0" and rows[0].records == '[{"n":"x","v":0,"t":1}]'
            assert rows[0].received_at == 1000.0
            stats = spool.stats()
            assert (stats.stored, stats.duplicates, stats.pending) == (5, 2, {"mqtt": 5})

    asyncio.run(main())


def test_committed_rows_and_replay_state_survive_reopening(tmp_path: Path) -> None:
    async def main() -> None:
        async with Spool(tmp_path / "spool.sqlite", ["mqtt"]) as spool:
            await spool.commit([packet(s) for s in range(3)] + [packet(7, boot=3)])
        async with Spool(tmp_path / "spool.sqlite", ["mqtt"]) as spool:
            assert spool.depth() == 4
            assert spool.latest_boots == {"n1": 3}
            assert await spool.commit([packet(2), packet(3)]) == [False, True]

    asyncio.run(main())


def test_a_duplicate_is_recognised_after_its_row_was_delivered_and_deleted(tmp_path: Path) -> None:
    async def main() -> None:
        async with Spool(tmp_path / "spool.sqlite", ["mqtt"]) as spool:
            await spool.commit([packet(s) for s in range(5)])
            rows = await spool.pending("mqtt")
            assert await spool.confirm("mqtt", rows[-1].id) == 5
            assert spool.depth() == 0
        async with Spool(tmp_path / "spool.sqlite", ["mqtt"]) as spool:
            assert await spool.commit([packet(3), packet(5)]) == [False, True]
            assert [r.seq for r in await spool.pending("mqtt")] == [5]

    asyncio.run(main())


def test_rows_leave_only_when_every_uplink_confirmed(tmp_path: Path) -> None:
    async def main() -> None:
        async with Spool(tmp_path / "spool.sqlite", ["mqtt", "archive"]) as spool:
            await spool.commit([packet(s) for s in range(4)])
            rows = await spool.pending("mqtt", limit=2)
            assert [r.seq for r in rows] == [0, 1]
            assert await spool.confirm("mqtt", rows[-1].id) == 0  # the archive still needs them
            assert [r.seq for r in await spool.pending("mqtt")] == [2, 3]
            assert [r.seq for r in await spool.pending("archive")] == [0, 1, 2, 3]
            assert spool.stats().pending == {"mqtt": 2, "archive": 4}
            archive_rows = await spool.pending("archive")
            assert await spool.confirm("archive", archive_rows[-1].id) == 2  # mqtt has not got 2, 3
            assert spool.depth() == 2
            assert await spool.confirm("mqtt", archive_rows[-1].id) == 2
            assert spool.depth() == 0 and spool.stats().pending == {"mqtt": 0, "archive": 0}

    asyncio.run(main())


def test_uplinks_added_or_removed_between_runs(tmp_path: Path) -> None:
    async def main() -> None:
        async with Spool(tmp_path / "spool.sqlite", ["mqtt", "archive"]) as spool:
            await spool.commit([packet(s) for s in range(3)])
            await spool.confirm("archive", (await spool.pending("archive"))[-1].id)
        async with Spool(tmp_path / "spool.sqlite", ["archive"]) as spool:  # mqtt removed from the config
            assert spool.depth() == 0
            await spool.commit([packet(3)])
        async with Spool(tmp_path / "spool.sqlite", ["archive", "http"]) as spool:  # a new uplink gets what is left
            assert [r.seq for r in await spool.pending("http")] == [3]

    asyncio.run(main())


def test_wait_pending_wakes_on_commit(tmp_path: Path) -> None:
    async def main() -> None:
        async with Spool(tmp_path / "spool.sqlite", ["mqtt"]) as spool:
            waiter = asyncio.create_task(spool.wait_pending("mqtt"))
            await asyncio.sleep(0)
            assert not waiter.done()
            await spool.commit([packet(0)])
            assert [r.seq for r in await waiter] == [0]

    asyncio.run(main())


def test_concurrent_commits_share_transactions(tmp_path: Path) -> None:
    async def main() -> None:
        async with Spool(tmp_path / "spool.sqlite", ["mqtt"]) as spool:
            results = await asyncio.gather(*(spool.commit([packet(s), packet(s)]) for s in range(20)))
            assert results == [[True, False]] * 20
            assert spool.depth() == 20

    asyncio.run(main())


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")

    async def main() -> None:
        async with Spool(path, ["mqtt"]):
            pass

    with pytest.raises(StorageError, match="schema version 99 is newer"):
        asyncio.run(main())


def test_unwritable_location_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")

    async def main() -> None:
        async with Spool(tmp_path / "file" / "spool.sqlite", ["mqtt"]):
            pass

    with pytest.raises(StorageError, match="spool"):
        asyncio.run(main())


def test_a_commit_survives_a_kill_right_after_it_returned(tmp_path: Path) -> None:
    # The gateway acks after commit() returns; a SIGKILL at that instant must not lose the rows.
    path = tmp_path / "spool.sqlite"
    script = textwrap.dedent(f"""
        import asyncio, sys, time
        from gonggi_gateway.spool import NewPacket, Spool
        async def main():
            async with Spool({str(path)!r}, ["mqtt"]) as spool:
                await spool.commit([NewPacket("n1", 1, s, 0.0, b"c", "[]") for s in range(50)])
                print("committed", flush=True)
                time.sleep(60)  # killed here, before any clean close
        asyncio.run(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"committed\n"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (tmp_path / "spool.sqlite-wal").exists()  # the rows are in the WAL, not yet checkpointed

    async def main() -> None:
        async with Spool(path, ["mqtt"]) as spool:
            assert spool.depth() == 50
            assert [r.seq for r in await spool.pending("mqtt")] == list(range(50))

    asyncio.run(main())
