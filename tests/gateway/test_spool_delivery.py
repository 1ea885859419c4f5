"""The spool's delivery guarantees: commit batching in a window, a bounded disk with backpressure,
dead letters, ids that never make a cursor skip a row, and the v1 -> v2 migration."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path

import pytest

from gateway_helpers import KEY, NODE, T0, MemoryLink, SimNode, write_registry
from gonggi_gateway.ingest import Ingest
from gonggi_gateway.protocol import Ack, FrameDecoder
from gonggi_gateway.records import senml_json
from gonggi_gateway.registry import Registry
from gonggi_gateway.spool import MIGRATIONS, COMMIT_MAX_PACKETS, DISK_RESERVE_BYTES, NewPacket, Spool
from gonggi_gateway.protocol import decode_data
from gonggi_gateway.state import Pulse

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
PLENTY = 1 << 40  # free bytes on the filesystem, as the tests' spools see it


def packet(seq: int, node: str = "n1", size: int = 10) -> NewPacket:
    return NewPacket(node, 1, seq, 1000.0 + seq, b"c" * size, f'[{{"n":"x","v":{seq},"t":1}}]')


class Disk:
    """The filesystem as the spool sees it: free bytes, and a hook when a commit is about to run."""

    def __init__(self, free: int = PLENTY) -> None:
        self.free = free
        self.commits_started = 0

    def __call__(self, path: Path) -> int:
        self.commits_started += 1
        return self.free


def test_packets_arriving_within_the_commit_window_share_one_transaction(tmp_path: Path) -> None:
    disk = Disk()

    async def main() -> None:
        async with Spool(tmp_path / "spool.sqlite", ["mqtt"], commit_window=30.0, free_bytes=disk) as spool:
            first = asyncio.create_task(spool.commit([packet(0)]))
            for _ in range(5):
                await asyncio.sleep(0)  # the flusher runs: it holds the commit for the window
            assert disk.commits_started == 0 and not first.done()
            # A full batch ends the window at once: all of it, and the first packet, in one commit.
            more = await spool.commit([packet(s) for s in range(1, COMMIT_MAX_PACKETS + 1)])
            assert await first == [True] and more == [True] * COMMIT_MAX_PACKETS
            assert disk.commits_started == 1 and spool.stats().commits == 1
        async with Spool(tmp_path / "spool.sqlite", ["mqtt"], free_bytes=disk) as spool:
            assert spool.depth() == COMMIT_MAX_PACKETS + 1  # durable, as any commit
            assert spool.durability == "synchronous=full commit_window_ms=0"

    asyncio.run(main())


def test_at_the_cap_new_packets_are_refused_counted_and_logged_then_taken_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gonggi_gateway.spool")
    clock = [0.0]

    async def main() -> None:
        path = tmp_path / "spool.sqlite"
        async with Spool(path, ["mqtt"]) as spool:
            empty = spool.stats().used_bytes
        async with Spool(path, ["mqtt"], max_bytes=empty + 40_000, free_bytes=Disk(),
                         monotonic=lambda: clock[0]) as spool:
            flags = await spool.commit([packet(s, size=2000) for s in range(40)])
            stored = flags.count(True)
            assert 5 < stored < 40 and flags == [True] * stored + [None] * (40 - stored)  # oldest first in
            stats = spool.stats()
            assert (stats.refused, stats.full, stats.depth) == (40 - stored, True, stored)
            assert stats.used_bytes <= empty + 40_000 + 8192  # one page over at most
            # A duplicate takes no room: still answered (and so acked) while full.
            assert await spool.commit([packet(0, size=2000), packet(99, size=2000)]) == [False, None]
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1  # one line, then one a minute while it lasts
            assert warnings[0].startswith(f"spool full: refused {40 - stored} new packets, not acked: the nodes keep "
                                          "them and send them again")
            clock[0] = 61.0
            await spool.commit([packet(100, size=2000)])
            assert "spool full: refused 2 new packets" in caplog.records[-1].getMessage()
            # Upstream takes the rows: room again, the refused packets are stored when resent.
            rows = await spool.pending("mqtt", 100)
            await spool.confirm("mqtt", rows[-1].id)
            assert await spool.commit([packet(s, size=2000) for s in range(stored, stored + 3)]) == [True] * 3
            assert not spool.stats().full
            assert caplog.records[-1].levelno == logging.INFO
            assert "spool accepts packets again after 61 s full: 0 refused meanwhile" in caplog.records[-1].getMessage()
            assert spool.stats().refused == 40 - stored + 2

    asyncio.run(main())


def test_the_filesystem_keeps_its_reserve_whatever_the_cap(tmp_path: Path) -> None:
    disk = Disk(free=DISK_RESERVE_BYTES + 3000)

    async def main() -> None:
        async with Spool(tmp_path / "spool.sqlite", ["mqtt"], max_bytes=1 << 30, free_bytes=disk) as spool:
            assert await spool.commit([packet(s, size=1000) for s in range(5)]) == [True, True, None, None, None]

    asyncio.run(main())


def test_refused_packets_are_not_acked_and_the_node_sends_them_again(tmp_path: Path) -> None:
    registry = Registry(write_registry(tmp_path / "nodes.toml", {NODE: KEY}))
    node = SimNode()
    disk = Disk()

    async def main() -> None:
        async with Spool(tmp_path / "spool.sqlite", ["archive"], free_bytes=disk) as spool:
            ingest = Ingest(spool, registry, Pulse(), clock=lambda: T0)
            link = MemoryLink()
            await ingest.handle(link, [node.data_frame(0)])
            disk.free = DISK_RESERVE_BYTES  # the disk filled up with something else
            await ingest.handle(link, [node.data_frame(0), node.data_frame(1), node.data_frame(2)])
            assert [c.acks for c in link.controls()] == [(Ack(1, 0, 0),), (Ack(1, 0, 0),)]  # 1, 2: not acked
            assert spool.depth() == 1 and ingest.nodes[NODE].packets == 1
            disk.free = PLENTY
            await ingest.handle(link, [node.data_frame(1), node.data_frame(2)])  # the node's retransmission
            assert link.controls()[-1].acks == (Ack(1, 1, 2),) and spool.depth() == 3

    asyncio.run(main())


def test_dead_letters_keep_what_an_uplink_refused_and_let_it_go_on(tmp_path: Path) -> None:
    async def main() -> None:
        async with Spool(tmp_path / "spool.sqlite", ["http", "archive"]) as spool:
            await spool.commit([packet(s) for s in range(5)])
            rows = await spool.pending("http", 2)
            assert await spool.dead_letter("http", rows, "POST http://x: HTTP 400: 'bad unit'") == 0  # archive has them
            assert [r.seq for r in await spool.pending("http")] == [2, 3, 4]
            assert [r.seq for r in await spool.pending("archive")] == [0, 1, 2, 3, 4]
            await spool.confirm("archive", (await spool.pending("archive"))[-1].id)
            assert spool.depth() == 3
            letters = await spool.dead_letters()
            assert [(d.uplink, d.node, d.seq, d.reason) for d in letters] == [
                ("http", "n1", 0, "POST http://x: HTTP 400: 'bad unit'"), ("http", "n1", 1, "POST http://x: HTTP 400: 'bad unit'")]
            assert letters[0].records == rows[0].records
            assert spool.stats().dead_letters == {"http": 2, "archive": 0}
        async with Spool(tmp_path / "spool.sqlite", ["http", "archive"]) as spool:
            assert len(await spool.dead_letters("http")) == 2  # kept on disk for an operator

    asyncio.run(main())


def test_ids_start_over_with_an_empty_spool_and_no_cursor_skips_a_row(tmp_path: Path) -> None:
    async def main() -> None:
        path = tmp_path / "spool.sqlite"
        async with Spool(path, ["mqtt", "archive"]) as spool:
            await spool.commit([packet(s) for s in range(3)])
            for name in ("mqtt", "archive"):
                await spool.confirm(name, (await spool.pending(name))[-1].id)
            assert spool.depth() == 0
            await spool.commit([packet(3)])
            [row] = await spool.pending("mqtt")
            assert (row.id, row.seq) == (1, 3)  # id 1 again, and still delivered
            await spool.confirm("mqtt", row.id)
        async with Spool(path, ["mqtt", "archive"]) as spool:
            assert [r.seq for r in await spool.pending("mqtt")] == []
            assert [r.seq for r in await spool.pending("archive")] == [3]
            await spool.commit([packet(4)])
            assert [r.seq for r in await spool.pending("mqtt")] == [4]

    asyncio.run(main())


def test_a_row_stored_without_json_is_read_as_the_reference_writes_it(tmp_path: Path) -> None:
    vector = json.loads((VECTORS / "data-multi-unsynced.json").read_text())
    [frame] = FrameDecoder().feed(bytes.fromhex(vector["frame"]))
    reference = decode_data(frame.body, {vector["node_id"]: bytes.fromhex(vector["key"])}.get)

    async def main() -> None:
        async with Spool(tmp_path / "spool.sqlite", ["mqtt"]) as spool:
            await spool.commit([NewPacket(reference.node_id, 1, 0, T0, reference.cose, None, reference.uptime_ms)])
            [row] = await spool.pending("mqtt")
            assert row.records == senml_json(reference, T0)

    asyncio.run(main())


def test_a_v1_spool_is_migrated_with_its_rows_and_replay_state(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    with sqlite3.connect(path) as conn:
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("INSERT INTO packets (node, boot, seq, received_at, cose, records) VALUES "
                     "('n1', 1, 5, 1.5, x'00', '[{\"n\":\"x\",\"v\":5,\"t\":1}]')")
        conn.execute("INSERT INTO uplinks VALUES ('mqtt', 0)")
        conn.execute("INSERT INTO replay VALUES ('n1', 1, 6, x'')")
        conn.execute("PRAGMA user_version = 1")

    async def main() -> None:
        async with Spool(path, ["mqtt"]) as spool:
            [row] = await spool.pending("mqtt")
            assert (row.seq, row.records) == (5, '[{"n":"x","v":5,"t":1}]')
            assert await spool.commit([packet(5), packet(6)]) == [False, True]
    asyncio.run(main())
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 3
