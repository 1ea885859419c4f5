"""A BLE bench from the command line, as a CI job or a developer without BLE hardware runs it
(docs/ble.md): ``gonggi emu radio``, an emulated board advertising on it, and ``gonggi gateway run``
with ``[ble] radio`` connecting through it; readings reach the gateway's archive. A gateway
started before its radio waits for it as for an adapter that is not ready."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import sys
from pathlib import Path

from gonggi_tools.fleet import EmulatedNode, NodeSpec, registry_toml
from gonggi_tools.firmware_image import provision_flash

from ble_nodes import ble_spec
from cli_process import CliProcess
from cli_runner import run_logged

GONGGI = str(Path(sys.executable).with_name("gonggi"))
NODE = "hil-ble-cli-01"
READINGS = 3  # a reading per second: a few show the link works, without a long test
POLL_S = 0.2  # how often the archive is looked at while waiting for rows
ROWS_TIMEOUT_S = 25.0

GATEWAY_TOML = f"""\
[gateway]
id = "gw-ble-cli"
spool = "spool.sqlite"
registry = "nodes.toml"

[ble]
radio = "radio.sock"  # relative to this file, as every path in it
slots = 2
idle_s = 0.3
connect_timeout_s = 1.0
retry_initial_s = 0.2
retry_max_s = 1.0

[archive]
path = "archive.sqlite"

[http]
enabled = false
"""


def gateway_files(tmp_path: Path, spec: NodeSpec) -> Path:
    (tmp_path / "nodes.toml").write_text(registry_toml([spec]))
    config = tmp_path / "gw.toml"
    config.write_text(GATEWAY_TOML)
    return config


def archived(path: Path) -> list[tuple[int, int, str]]:
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(path)) as db:
        try:
            return db.execute("SELECT boot, seq, records FROM packets WHERE node = ? ORDER BY boot, seq",
                              (NODE,)).fetchall()
        except sqlite3.OperationalError:
            return []  # the gateway is still creating it


async def archived_at_least(path: Path, count: int) -> list[tuple[int, int, str]]:
    """The node's archived packets once there are ``count``; the gateway commits them at its own pace."""
    async with asyncio.timeout(ROWS_TIMEOUT_S):
        while len(rows := archived(path)) < count:
            await asyncio.sleep(POLL_S)
    return rows


def assert_readings(rows: list[tuple[int, int, str]]) -> None:
    keys = [(boot, seq) for boot, seq, _ in rows]
    assert len(keys) == len(set(keys))  # each stored once
    assert [seq for _, seq in keys] == list(range(len(keys)))  # none missing: the node's first boot, in order
    assert all('"n":"bat.v"' in records for _, _, records in rows)


async def test_radio_board_and_gateway_started_from_the_command_line(tmp_path: Path, hil_log_dir: Path) -> None:
    spec = ble_spec(NODE)
    config = gateway_files(tmp_path, spec)
    flash = tmp_path / "flash"
    provision_flash(flash, spec.firmware_config())
    bench, scenario = tmp_path / "bench.toml", tmp_path / "scenario.toml"
    bench.write_text('[[device]]\nkind = "battery"\nbus = "adc35"\n')
    scenario.write_text("[values]\nbattery_v = 3.9\n")
    sock = tmp_path / "radio.sock"
    at = re.escape(str(sock))
    log = hil_log_dir / "commands.log"

    # 1. the radio (4x: its link-layer timings, the supervision timeout among them, a quarter of real)
    async with CliProcess([GONGGI, "emu", "radio", "--socket", sock, "--time-scale", "4"], log) as radio:
        await radio.expect(f"^RADIO {at}$")
        # 2. a board whose config.json says link.kind = "ble"
        async with CliProcess([GONGGI, "emu", "board", "--flash", flash, "--bench", bench, "--scenario", scenario,
                               "--log-dir", hil_log_dir / "board", "--radio", sock], log) as board:
            await board.expect("^REPL /dev/")
            # 3. the gateway, on that radio instead of BlueZ
            async with CliProcess([GONGGI, "gateway", "run", "--config", config], log) as gateway:
                await gateway.expect(f"gateway gw-ble-cli ready: .* ble=radio:{at} ")
                rows = await archived_at_least(tmp_path / "archive.sqlite", READINGS)
                assert await gateway.stop() == 0
            assert not any("Traceback" in line for line in gateway.lines), gateway.lines
            assert await board.stop() == 0
        assert await radio.stop() == 0

    assert_readings(rows)
    (summary,) = await radio.expect(r"^radio stopped: 1 peripheral seen, (\d+) connections \((\d+) failed\), 0 lost$")
    assert int(summary[1]) >= 1


async def test_a_gateway_started_before_its_radio_connects_once_the_radio_listens(
        tmp_path: Path, hil_log_dir: Path) -> None:
    spec = ble_spec(NODE)
    config = gateway_files(tmp_path, spec)
    sock = tmp_path / "radio.sock"
    at = re.escape(str(sock))
    log = hil_log_dir / "commands.log"

    async with CliProcess([GONGGI, "gateway", "run", "--config", config], log) as gateway:
        await gateway.expect(f"ble virtual radio {at} is not there")
        # As for an adapter that is not ready: retried with backoff, the service keeps running.
        await gateway.expect(f"ble scan cannot start .*NotReady.* virtual radio {at}: .*; retrying", count=2)
        assert gateway.running

        async with CliProcess([GONGGI, "emu", "radio", "--socket", sock, "--time-scale", "4"], log) as radio:
            await radio.expect(f"^RADIO {at}$")
            async with EmulatedNode(spec, tmp_path, env={"GONGGI_RADIO": str(sock)}) as node:
                await node.board.expect("gonggi node " + NODE)
                rows = await archived_at_least(tmp_path / "archive.sqlite", READINGS)
                assert gateway.running
                assert await gateway.stop() == 0
    assert not any("Traceback" in line for line in gateway.lines), gateway.lines

    assert_readings(rows)


async def test_a_second_radio_on_a_live_socket_and_a_board_without_its_radio_are_refused(
        tmp_path: Path, hil_log_dir: Path) -> None:
    sock = tmp_path / "radio.sock"
    at = re.escape(str(sock))
    log = hil_log_dir / "commands.log"
    board = [GONGGI, "emu", "board", "--flash", str(tmp_path / "flash"), "--radio", str(sock)]
    rc, out = await run_logged(board, log, 30, "gonggi emu board --radio (nobody there)")
    assert rc == 2 and f"no virtual radio at {sock}: start 'gonggi emu radio --socket {sock}' first" in out
    async with CliProcess([GONGGI, "emu", "radio", "--socket", sock], log) as radio:
        await radio.expect(f"^RADIO {at}$")
        rc, out = await run_logged([GONGGI, "emu", "radio", "--socket", str(sock)], log, 30, "gonggi emu radio (again)")
        assert rc == 2 and f"another virtual radio is listening on {sock}" in out
        assert radio.running  # the first one keeps its boards
        assert await radio.stop() == 0
    assert not sock.exists()
