"""The status page's sparkline history survives a restart: kept in ``history.sqlite`` beside the
spool, trimmed to ``size`` points per series, written at most once per ``min_interval``, and a
broken file is moved aside instead of stopping the gateway."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from gateway_helpers import NODE, MemoryLink, SimNode
from gonggi_gateway.ops.history import History
from gonggi_gateway.ops.history_store import HISTORY_FILE, HistoryStore, Point
from gonggi_gateway.ops.operations import Operations
from gonggi_gateway.ops.sdnotify import Notifier
from gonggi_gateway.protocol import Frame
from gonggi_gateway.service import Gateway
from gonggi_gateway.state import NodeStatus, Reading, Snapshot
from ops_helpers import fetch, ops_config, running

BT = 1_764_000_000


def stored(count: int) -> Callable[[Snapshot], bool]:
    return lambda snap: snap.nodes[NODE].packets == count


def snapshot(t: float, node_id: str = NODE, **values: float) -> Snapshot:
    """A gateway's view with one node whose channels read ``values`` at time ``t``."""
    readings = tuple(Reading(name.replace("_", "."), "ug/m3", v, t) for name, v in sorted(values.items()))
    node = NodeStatus(node_id, "", "", None, 1, t, 1, 0, {}, readings)
    return Snapshot("gw", t, {node_id: node}, (), (), {}, 0)


def rows(path: Path) -> list[tuple[str, str, float, float]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT node, channel, time, value FROM points ORDER BY node, channel, time").fetchall()


class WatchedStore(HistoryStore):
    """A HistoryStore that tells the test when a transaction was committed."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.saved = asyncio.Event()

    async def save(self, points: Sequence[Point], keep: int) -> bool:
        ok = await super().save(points, keep)
        self.saved.set()
        return ok


def test_a_restarted_gateway_serves_the_stored_sparklines_before_any_packet(tmp_path: Path) -> None:
    config = ops_config(tmp_path)
    node = SimNode()

    async def first_run() -> None:
        async with Gateway(config) as gateway, running(gateway), Operations(gateway, notifier=Notifier(None)) as ops:
            link = MemoryLink()
            served = asyncio.create_task(gateway.serve_link(link))
            for seq, pm25 in enumerate((10.0, 17.5, 12.25)):
                link.deliver(node.data_frame(seq, bt=BT + 60 * seq, readings=[("pms.pm25", "ug/m3", pm25),
                                                                                ("bat.v", "V", 3.9)]))
                ops.history.record(await asyncio.wait_for(gateway.wait_until(stored(seq + 1)), 10))
            link.end()
            await served

    async def second_run() -> dict[str, Any]:
        async with Gateway(config) as gateway, running(gateway), Operations(gateway, notifier=Notifier(None)) as ops:
            assert ops.http is not None
            status, body = await fetch(f"http://127.0.0.1:{ops.http.port}/api/status")
            assert status == 200
            doc = json.loads(body)
            return next(n for n in doc["nodes"] if n["id"] == NODE)

    asyncio.run(first_run())
    assert (tmp_path / HISTORY_FILE).exists()  # beside the spool
    shown = asyncio.run(second_run())
    assert shown["packets"] == 0 and shown["last_seen"] is None  # nothing heard since the restart
    readings = {r["name"]: r for r in shown["readings"]}
    pm = readings["pms.pm25"]
    assert pm["history"] == [[BT, 10.0], [BT + 60, 17.5], [BT + 120, 12.25]]
    assert (pm["value"], pm["unit"], pm["time"]) == (12.25, "ug/m3", BT + 120)
    assert readings["bat.v"]["history"] == [[BT, 3.9], [BT + 60, 3.9], [BT + 120, 3.9]]


def test_series_are_trimmed_to_size_on_disk_and_on_reload(tmp_path: Path) -> None:
    path = tmp_path / HISTORY_FILE

    async def main() -> None:
        store = HistoryStore(path)
        async with History(size=3, store=store) as history:
            for i in range(5):
                history.record(snapshot(BT + i, pms_pm25=float(i), pms_pm10=10.0 + i))
                await history.flush()
            assert history.series(NODE, "pms.pm25") == [(BT + 2, 2.0), (BT + 3, 3.0), (BT + 4, 4.0)]
            assert store.transactions == 5  # one per flush, both channels together
        assert rows(path) == [*((NODE, "pms.pm10", BT + t, 10.0 + t) for t in (2, 3, 4)),
                              *((NODE, "pms.pm25", BT + t, float(t)) for t in (2, 3, 4))]
        async with History(size=2, store=HistoryStore(path)) as smaller:  # the size went down since
            assert smaller.series(NODE, "pms.pm25") == [(BT + 3, 3.0), (BT + 4, 4.0)]
        assert len(rows(path)) == 4

    asyncio.run(main())


def test_series_not_heard_for_long_are_forgotten_at_start(tmp_path: Path) -> None:
    path = tmp_path / HISTORY_FILE

    async def main() -> None:
        async with History(store=HistoryStore(path)) as history:
            history.record(snapshot(BT, "gg-removed", pms_pm25=1.0))
            history.record(snapshot(BT + 3000, "gg-live", pms_pm25=2.0))
            history.record(snapshot(BT + 7200, "gg-live", pms_pm25=3.0))
        async with History(store=HistoryStore(path, forget_after=3600)) as history:
            assert history.series("gg-removed", "pms.pm25") == []
            assert history.series("gg-live", "pms.pm25") == [(BT + 3000, 2.0), (BT + 7200, 3.0)]
        assert {row[0] for row in rows(path)} == {"gg-live"}

    asyncio.run(main())


GARBAGE = b"not an SQLite file, but a torn write " * 200


def garbage(path: Path) -> Callable[[Path], bool]:
    path.write_bytes(GARBAGE)
    return lambda aside: aside.read_bytes() == GARBAGE


def newer_schema(path: Path) -> Callable[[Path], bool]:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")

    def kept(aside: Path) -> bool:
        with sqlite3.connect(aside) as conn:
            return bool(conn.execute("PRAGMA user_version").fetchone()[0] == 99)
    return kept


@pytest.mark.parametrize("damage", [garbage, newer_schema])
def test_a_broken_file_is_moved_aside_and_a_fresh_history_works(
        tmp_path: Path, damage: Callable[[Path], Callable[[Path], bool]], caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / HISTORY_FILE
    kept = damage(path)

    async def main() -> None:
        store = HistoryStore(path)
        async with History(store=store) as history:
            assert history.series(NODE, "pms.pm25") == []
            history.record(snapshot(BT, pms_pm25=5.0))
            await history.flush()
            assert store.transactions == 1
        async with History(store=HistoryStore(path)) as history:
            assert history.series(NODE, "pms.pm25") == [(BT, 5.0)]

    asyncio.run(main())
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and str(path) in errors[0] and "moved it aside" in errors[0], errors
    [aside] = tmp_path.glob(f"{HISTORY_FILE}.corrupt-*")
    assert kept(aside) and aside.name in errors[0]  # the file, for a post-mortem


def test_a_failing_write_is_logged_once_and_memory_carries_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / HISTORY_FILE

    async def main() -> None:
        store = HistoryStore(path)
        async with History(store=store) as history:
            with sqlite3.connect(path) as conn:  # the file breaks under the running gateway
                conn.execute("ALTER TABLE points RENAME TO lost")
            for i in range(3):
                history.record(snapshot(BT + i, pms_pm25=float(i)))
                await history.flush()
            assert history.series(NODE, "pms.pm25") == [(BT, 0.0), (BT + 1, 1.0), (BT + 2, 2.0)]
            assert store.transactions == 0
            errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
            assert len(errors) == 1 and str(path) in errors[0], errors

            with sqlite3.connect(path) as conn:  # the disk is back
                conn.execute("ALTER TABLE lost RENAME TO points")
            history.record(snapshot(BT + 3, pms_pm25=3.0))
            await history.flush()
            assert store.transactions == 1  # the points that failed go in the same transaction
            assert "writes work again" in caplog.records[-1].getMessage()
        assert [row[2] for row in rows(path)] == [BT, BT + 1, BT + 2, BT + 3]

    asyncio.run(main())


def test_follow_writes_at_most_once_per_min_interval(tmp_path: Path) -> None:
    config = ops_config(tmp_path)
    node = SimNode()

    def frame(seq: int) -> Frame:
        return node.data_frame(seq, bt=BT + 60 * seq, readings=[("pms.pm25", "ug/m3", float(seq)),
                                                                ("bat.v", "V", 3.9)])

    async def main() -> None:
        store = WatchedStore(tmp_path / HISTORY_FILE)
        async with Gateway(config) as gateway, running(gateway), History(store=store) as history:
            follow = asyncio.create_task(history.follow(gateway.wait_until, min_interval=3600))
            link = MemoryLink()
            served = asyncio.create_task(gateway.serve_link(link))
            link.deliver(frame(0))
            await asyncio.wait_for(store.saved.wait(), 10)
            assert store.transactions == 1

            for seq in range(1, 5):  # a burst while follow waits out its interval
                link.deliver(frame(seq))
            snap = await asyncio.wait_for(gateway.wait_until(stored(5)), 10)
            assert store.transactions == 1
            assert history.series(NODE, "pms.pm25") == [(BT, 0.0)]

            follow.cancel()
            await asyncio.gather(follow, return_exceptions=True)
            history.record(snap)  # what follow does once the interval is over
            await history.flush()
            assert store.transactions == 2  # the burst cost one transaction, with its newest values
            assert history.series(NODE, "pms.pm25") == [(BT, 0.0), (BT + 240, 4.0)]
            link.end()
            await served

    asyncio.run(main())
