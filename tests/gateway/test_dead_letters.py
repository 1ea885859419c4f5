"""``gonggi gateway dead-letters list|resend|drop`` against a gateway whose HTTP upstream (a real
aiohttp server) refuses a batch with 422 and later takes it: the refused rows are listed, sent
again by the uplink that refused them (gateway running or not), kept with the new reason when
refused again, and dropped only with --yes; a spool of the previous schema keeps its dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway_helpers import KEY, NODE, write_registry
from ops_helpers import running
from gonggi_gateway.config import load_config
from gonggi_gateway.db import Database
from gonggi_gateway.service import Gateway
from gonggi_gateway.spool import MIGRATIONS, NewPacket, Spool, SpooledPacket
from gonggi_gateway.state import Snapshot
from gonggi_gateway.uplinks.http import senml_pack
from test_cli import gonggi
from test_http_uplink import Endpoint, free_port, packet

REFUSED = (422, "unknown unit 'V'", {})


def write_config(tmp_path: Path, url: str) -> Path:
    """A gateway with the HTTP uplink and the local archive, both in batches of 4, at once."""
    write_registry(tmp_path / "nodes.toml", {NODE: KEY})
    path = tmp_path / "gateway.toml"
    path.write_text(f'[gateway]\nid = "gw-test"\n\n[http_uplink]\nurl = "{url}"\nbatch_size = 4\n'
                    'flush_interval_s = 0\nflush_jitter_s = 0\n\n[archive]\nbatch_size = 4\n')
    return path


@contextlib.asynccontextmanager
async def running_gateway(config: Path) -> AsyncIterator[Gateway]:
    async with Gateway(load_config(config)) as gateway:
        for drainer in gateway.drainers:
            drainer.resend_poll_s = 0.05  # an idle drainer looks for marks this often (5 s in service)
        async with running(gateway):
            yield gateway


async def cli(*argv: str) -> int:
    """The command, on a thread of its own with its own connection, as from another process."""
    return await asyncio.to_thread(gonggi, "gateway", "dead-letters", *argv)


def pack(rows: list[NewPacket]) -> bytes:
    """The body the HTTP uplink POSTs for these rows."""
    return senml_pack([SpooledPacket(0, *row[:6]) for row in rows])


def statuses(endpoint: Endpoint) -> list[int]:
    return [status for status, _, _, _ in endpoint.requests]


def test_refused_rows_are_listed_resent_once_and_refused_again_keep_the_new_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gonggi_gateway.uplinks.base")

    async def main() -> None:
        endpoint = Endpoint(free_port())
        await endpoint.start()
        config = str(write_config(tmp_path, endpoint.url))
        endpoint.script = [REFUSED]
        rows = [packet(NODE, seq) for seq in range(3)]
        try:
            async with running_gateway(Path(config)) as gateway:
                await gateway.spool.commit(rows)
                await gateway.wait_until(lambda s: s.spool is not None and s.spool.dead_letters["http"] == 3
                                         and s.spool_depth == 0)  # the archive has them: the rows are gone

                assert await cli("list", "--config", config) == 0
                lines = capsys.readouterr().out.splitlines()
                assert lines[0].split() == ["id", "uplink", "node", "boot", "seq", "received", "rejected",
                                            "resend", "reason"]
                assert [line.split()[:5] for line in lines[1:4]] == [[str(i + 1), "http", NODE, "1", str(i)]
                                                                     for i in range(3)]
                assert lines[1].split()[5] == "2025-11-24T16:00:00Z"  # received_at of seq 0, in UTC
                assert lines[1].split()[7] == "-"  # not marked for resending
                assert lines[1].endswith(f"  POST {endpoint.url}: HTTP 422: \"unknown unit 'V'\"")
                assert lines[4] == f"3 dead letter(s) in {tmp_path / 'spool.sqlite'}"

                # Sent again, refused again: kept, with the new reason, no longer marked.
                endpoint.script = [(422, "still no unit 'V'", {})]
                assert await cli("resend", "--all", "--config", config) == 0
                assert "marked 3 dead letter(s) for resending (3 of uplink http)" in capsys.readouterr().out
                await gateway.wait_until(lambda s: s.spool is not None and s.spool.resend_rejected["http"] == 3)
                letters = await gateway.spool.dead_letters()
                assert [(d.id, d.seq, d.resend_requested_at) for d in letters] == [(1, 0, None), (2, 1, None),
                                                                                   (3, 2, None)]
                assert {d.reason for d in letters} == {f"POST {endpoint.url}: HTTP 422: \"still no unit 'V'\""}

                # Sent again, taken: delivered once, gone from the dead letters.
                assert await cli("resend", "--uplink", "http", "--id", "1", "2", "--id", "3", "--config", config) == 0
                capsys.readouterr()
                snap: Snapshot = await gateway.wait_until(lambda s: s.spool is not None and s.spool.resent["http"] == 3)
                assert snap.spool is not None and snap.spool.resent == {"http": 3, "archive": 0}  # not the archive's
                assert not await gateway.spool.dead_letters()
                assert await cli("list", "--config", config) == 0
                assert capsys.readouterr().out == f"no dead letters in {tmp_path / 'spool.sqlite'}\n"

                # A new row goes next: had the mark survived, the old rows would have gone again first.
                await gateway.spool.commit([packet(NODE, 3)])
                await endpoint.wait_requests(4)
                await gateway.wait_until(lambda s: s.spool_depth == 0)
        finally:
            await endpoint.stop()
        assert statuses(endpoint) == [422, 422, 200, 200]
        bodies = [body for _, _, _, body in endpoint.requests]
        assert bodies[:3] == [pack(rows)] * 3  # byte for byte the refused batch
        assert bodies[3] == pack([packet(NODE, 3)])

    asyncio.run(asyncio.wait_for(main(), 60))
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if "resent dead letters" in r.getMessage()]
    assert [(level, text.split(" (")[0]) for level, text in messages] == [
        ("ERROR", "uplink http rejected 3 resent dead letters again"),
        ("INFO", "uplink http delivered 3 resent dead letters"),
    ]


def test_a_resend_asked_while_the_gateway_is_stopped_goes_when_it_starts_and_survives_a_failure(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> None:
        endpoint = Endpoint(free_port())
        await endpoint.start()
        config = write_config(tmp_path, endpoint.url)
        endpoint.script = [REFUSED]
        try:
            async with running_gateway(config) as gateway:
                await gateway.spool.commit([packet(NODE, seq) for seq in range(2)])
                await gateway.wait_until(lambda s: s.spool is not None and s.spool.dead_letters["http"] == 2)
            assert await cli("resend", "--uplink", "http", "--config", str(config)) == 0  # nothing runs now
            assert "marked 2 dead letter(s)" in capsys.readouterr().out

            endpoint.script = [(503, "busy", {})] * 100  # until the test clears it
            async with running_gateway(config) as gateway:
                await gateway.wait_until(lambda s: s.uplinks[0].failures >= 1)
                assert await cli("list", "--config", str(config)) == 0
                out = capsys.readouterr().out
                assert out.endswith("2 dead letter(s) in " + str(tmp_path / "spool.sqlite") +
                                    ", 2 marked for resending\n")  # a failure for now keeps the mark
                endpoint.script.clear()
                await gateway.wait_until(lambda s: s.spool is not None and s.spool.resent["http"] == 2)
                assert not await gateway.spool.dead_letters()
        finally:
            await endpoint.stop()
        got = statuses(endpoint)
        assert got[0] == 422 and set(got[1:-1]) == {503} and got[-1] == 200  # retried with backoff
        assert {body for _, _, _, body in endpoint.requests} == {endpoint.requests[0][3]}

    asyncio.run(asyncio.wait_for(main(), 60))


async def make_dead_letters(tmp_path: Path, count: int) -> Path:
    """A configuration whose spool holds ``count`` dead letters of the HTTP uplink (no gateway runs)."""
    config = write_config(tmp_path, "http://127.0.0.1:9/ingest")
    async with Spool(tmp_path / "spool.sqlite", ["http", "archive"]) as spool:
        await spool.commit([packet(NODE, seq) for seq in range(count)])
        await spool.dead_letter("http", await spool.pending("http"), "POST x: HTTP 413: 'too large'")
    return config


def test_drop_deletes_only_with_yes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(asyncio.run(make_dead_letters(tmp_path, 3)))
    spool = tmp_path / "spool.sqlite"

    def ids() -> list[int]:
        with contextlib.closing(sqlite3.connect(spool)) as conn:
            return [i for (i,) in conn.execute("SELECT id FROM dead_letters ORDER BY id")]

    # As a script would run it: the installed command, without --yes, deletes nothing and fails.
    gonggi_bin = Path(sys.executable).with_name("gonggi")
    done = subprocess.run([str(gonggi_bin), "gateway", "dead-letters", "drop", "--all", "--config", config],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and ids() == [1, 2, 3]
    assert len(done.stdout.splitlines()) == 4  # the header and the three rows it would delete
    assert done.stderr == (f"gonggi gateway: would drop 3 dead letter(s) (3 of uplink http) from {spool}; "
                           "nothing deleted: run again with --yes to delete them\n")

    assert gonggi("gateway", "dead-letters", "drop", "--id", "2", "--yes", "--config", config) == 0
    assert capsys.readouterr().out == f"dropped 1 dead letter(s) (1 of uplink http) from {spool}\n"
    assert ids() == [1, 3]
    assert gonggi("gateway", "dead-letters", "drop", "--id", "1", "2", "--yes", "--config", config) == 2
    assert capsys.readouterr().err == (f"gonggi gateway: {spool}: no dead letter with id 2 "
                                       "(gonggi gateway dead-letters list shows them)\n")
    assert ids() == [1, 3]  # all or nothing
    assert gonggi("gateway", "dead-letters", "drop", "--uplink", "http", "--all", "--yes", "--config", config) == 0
    assert ids() == []
    capsys.readouterr()
    assert gonggi("gateway", "dead-letters", "drop", "--all", "--config", config) == 0
    assert capsys.readouterr().out == f"no dead letters to drop in {spool}\n"


def test_errors_are_one_line_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write_config(tmp_path, "http://127.0.0.1:9/ingest"))
    spool = tmp_path / "spool.sqlite"

    def error(*argv: str) -> str:
        assert gonggi("gateway", "dead-letters", *argv, "--config", config) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        return err

    assert error("list") == (f"gonggi gateway: {spool}: no spool there ([gateway] spool of {config}); "
                             "the gateway makes it when it first starts\n")
    assert not spool.exists()  # not made by looking
    spool.write_bytes(b"not a database, just bytes " * 100)
    assert error("list") == f"gonggi gateway: {spool}: spool: file is not a database\n"
    spool.unlink()
    with contextlib.closing(sqlite3.connect(spool)) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    assert error("resend", "--all") == (f"gonggi gateway: {spool}: spool schema version {len(MIGRATIONS) + 1} is "
                                        f"newer than this gonggi understands ({len(MIGRATIONS)}): upgrade gonggi\n")
    spool.unlink()
    asyncio.run(make_dead_letters(tmp_path, 1))
    assert error("resend", "--id", "7") == (f"gonggi gateway: {spool}: no dead letter with id 7 "
                                            "(gonggi gateway dead-letters list shows them)\n")
    assert error("list", "--uplink", "mqt") == (f"gonggi gateway: {spool}: no dead letters of uplink mqt, which "
                                                f"{config} does not configure (its uplinks: http, archive)\n")
    assert error("resend") == "gonggi gateway: dead-letters resend: say which: --id N ..., --uplink NAME or --all\n"
    # The HTTP uplink is no longer configured: nothing would send its dead letters.
    Path(config).write_text('[gateway]\nid = "gw-test"\n')
    assert error("resend", "--all") == (f"gonggi gateway: {spool}: the dead letters of uplink http, which {config} "
                                        "does not configure, cannot be resent: nothing marked (choose others with "
                                        "--uplink or --id)\n")


def test_a_spool_of_the_previous_schema_keeps_its_dead_letters(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write_config(tmp_path, "http://127.0.0.1:9/ingest"))
    spool = tmp_path / "spool.sqlite"

    async def previous_version() -> None:
        async with Database(spool, MIGRATIONS[:2], what="spool") as db:
            await db.run(lambda conn: conn.executemany(
                "INSERT INTO dead_letters (id, uplink, node, boot, seq, received_at, records, reason, rejected_at) "
                "VALUES (?, 'http', ?, 1, ?, 1764000000.0, '[]', 'HTTP 400', 1764000100.0)",
                [(4, NODE, 0), (7, NODE, 1)]))

    asyncio.run(previous_version())
    assert gonggi("gateway", "dead-letters", "list", "--config", config) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:5] for line in out[1:3]] == [["4", "http", NODE, "1", "0"], ["7", "http", NODE, "1", "1"]]
    with contextlib.closing(sqlite3.connect(spool)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)

    async def after() -> None:
        async with Spool(spool, ["http", "archive"]) as s:
            assert [(d.id, d.reason, d.resend_requested_at) for d in await s.dead_letters()] == [
                (4, "HTTP 400", None), (7, "HTTP 400", None)]
            await s.commit([packet(NODE, 5)])
            await s.dead_letter("http", await s.pending("http"), "HTTP 422")
            assert [d.id for d in await s.dead_letters()] == [4, 7, 8]

    asyncio.run(after())
    assert gonggi("gateway", "dead-letters", "drop", "--id", "8", "--yes", "--config", config) == 0
    asyncio.run(make_dead_letters(tmp_path, 1))  # an id is never handed out twice, even after a drop
    with contextlib.closing(sqlite3.connect(spool)) as conn:
        assert [i for (i,) in conn.execute("SELECT id FROM dead_letters ORDER BY id")] == [4, 7, 9]
