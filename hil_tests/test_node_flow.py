"""A field tech's session with ``gonggi node``: list the board, provision it in one command,
reflash it, watch its packets, check it before climbing down, and survive a pulled cable."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from test_node_support import (  # noqa: F401  (fixtures)
    Gonggi,
    bench,
    data_port,
    firmware_tree,
    gonggi,
    provisioned,
    registry,
    site,
)

from gonggi_emu.supervisor import EmulatedBoard
from gonggi_gateway.config import parse_config
from gonggi_gateway.registry import Registry
from gonggi_gateway.service import Gateway

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from conftest import RealBoard

    Board = EmulatedBoard | RealBoard
    Mpremote = Callable[..., Awaitable[str]]


async def test_list_shows_the_attached_board(board: Board, gonggi: Gonggi) -> None:
    run = await gonggi("node", "list")
    assert run.rc == 0
    assert board.repl_path in run.out


async def test_provision_registers_flashes_and_hears_the_node_in_one_command(
    board: Board, gonggi: Gonggi, site: Path, registry: Path, data_port: str, mpremote: Mpremote
) -> None:
    run = await gonggi("node", "provision", "--port", board.repl_path, "--site", str(site),
                       "--registry", str(registry), "--data-port", data_port, "--name", "Jongno-gu 3")
    assert run.rc == 0, run.out
    (node,) = Registry(registry).nodes.values()
    assert node.node_id.startswith("gg-") and node.name == "Jongno-gu 3"
    assert "bme: answers at 0x76 on I2C0" in run.out
    assert f"node {node.node_id} registered in {registry}" in run.out
    assert re.search(r"copying \d+ changed file\(s\), [\d.]+ KB; 0 unchanged", run.out)
    assert re.search(r"all \d+ files verified on the board \(SHA-256\)", run.out)
    assert f"node {node.node_id} started: firmware 0.1.0, boot 1" in run.out
    assert re.search(rf"first packet on {re.escape(data_port)}: (HELLO|DATA) seq \d+, verified with the node's key", run.out)
    assert node.key.hex() not in run.out  # the key is never shown
    config = json.loads(await mpremote("resume", "fs", "cat", ":config.json"))
    assert config["node_id"] == node.node_id and config["key"] == node.key.hex()
    assert config["sensors"] == [{"driver": "bme280", "name": "bme"}] and config["report_s"] == 2


async def test_reflashing_copies_only_what_changed(
    board: Board, gonggi: Gonggi, site: Path, registry: Path, data_port: str, tmp_path: Path
) -> None:
    node = await provisioned(gonggi, board, site, registry, data_port)
    run = await gonggi("node", "flash", "--port", board.repl_path, "--data-port", data_port)
    assert run.rc == 0, run.out
    assert "the board already runs this build: nothing to copy" in run.out
    assert f"node {node.node_id} started: firmware 0.1.0, boot 2" in run.out

    newer = tmp_path / "newer"
    newer.mkdir()
    tree = firmware_tree(newer, "0.1.1")
    for src in tree.rglob("*.py"):  # only node.py differs from what the board has
        if src.name != "node.py":
            src.write_text(src.read_text().split("\n", 1)[1])
    run = await gonggi("node", "flash", "--port", board.repl_path, "--data-port", data_port, "--firmware", str(tree))
    assert run.rc == 0, run.out
    assert "copying 2 changed file(s)" in run.out  # node.mpy and the manifest
    assert f"node {node.node_id} started: firmware 0.1.1, boot 3" in run.out
    assert "verified with the node's key" in run.out


async def test_monitor_shows_each_packet_with_its_verification(
    board: Board, gonggi: Gonggi, site: Path, registry: Path, data_port: str, tmp_path: Path
) -> None:
    node = await provisioned(gonggi, board, site, registry, data_port)
    run = await gonggi("node", "monitor", "--data-port", data_port, "--registry", str(registry), "--count", "2")
    assert run.rc == 0, run.out
    lines = [line for line in run.out.splitlines() if node.node_id in line]
    assert len(lines) == 2 and all("verified" in line or "repeat" in line for line in lines)
    assert any(re.search(r"DATA boot 1 seq \d+ (verified|repeat) bme\.t [\d.]+ Cel, bme\.rh [\d.]+ %RH", line)
               for line in lines), run.out

    stranger = tmp_path / "other-gateway.toml"
    stranger.write_text("")
    run = await gonggi("node", "monitor", "--data-port", data_port, "--registry", str(stranger), "--count", "1")
    assert run.rc == 1
    assert f"{node.node_id}" in run.out and "unknown node not in the registry" in run.out
    assert "error: no valid packet on" in run.out


async def test_check_fails_the_link_until_a_gateway_answers(
    board: Board, gonggi: Gonggi, site: Path, registry: Path, data_port: str, tmp_path: Path
) -> None:
    node = await provisioned(gonggi, board, site, registry, data_port)
    run = await gonggi("node", "check", "--port", board.repl_path, "--registry", str(registry))
    assert run.rc == 1, run.out
    assert _row(run.out, "board", "PASS") and _row(run.out, "firmware", "PASS")
    assert _row(run.out, "config", "PASS", f"node {node.node_id}, serial link")
    assert _row(run.out, "node", "PASS", "running firmware 0.1.0: boot 1")
    assert _row(run.out, "sensor bme", "PASS", "bme280; answers at 0x76 on I2C0")
    assert _row(run.out, "link", "FAIL", "serial: no gateway has answered since the node started")
    assert "5 of 6 passed; failed: link" in run.out

    config = parse_config({"gateway": {"id": "gw-field", "registry": str(registry), "spool": "spool.sqlite"},
                           "serial": [{"port": data_port}], "http": {"enabled": False}}, "gateway.toml", tmp_path)
    async with Gateway(config) as gateway:
        serving = asyncio.create_task(gateway.run())
        # The node restarted after the check (boot 2); two stored packets: the first one's ack
        # has reached the node by the time the second is stored.
        await gateway.wait_until(lambda s: node.node_id in s.nodes and s.nodes[node.node_id].boot == 2
                                 and s.nodes[node.node_id].packets >= 2)
        run = await gonggi("node", "check", "--port", board.repl_path, "--registry", str(registry))
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
    assert run.rc == 0, run.out
    assert _row(run.out, "link", "PASS", "serial: a gateway answers")
    assert "6 of 6 passed" in run.out


async def test_a_cable_pulled_mid_copy_leaves_the_old_firmware_whole_and_a_rerun_finishes(
    emulated_board: EmulatedBoard, gonggi: Gonggi, site: Path, registry: Path, data_port: str, tmp_path: Path
) -> None:
    board = emulated_board
    node = await provisioned(gonggi, board, site, registry, data_port, "--firmware", str(firmware_tree(tmp_path, "0.0.9")))
    await board.expect_typed("machine.reset()")  # the end of the provisioning
    flashing = asyncio.create_task(gonggi("node", "flash", "--port", board.repl_path, "--data-port", data_port))
    await board.expect_typed("open('.gonggi-staging/noise/")  # half-way through the copy
    await board.unplug()
    run = await flashing
    assert run.rc == 1
    assert f"error: lost the board on {board.repl_path}" in run.out
    assert "reconnect the board and run the same command again" in run.out
    assert (board.flash_dir / ".gonggi-staging" / "node.mpy").exists()
    assert not (board.flash_dir / "gonggi.update").exists()

    await board.plug()
    await board.expect(f"gonggi node {node.node_id} firmware 0.0.9")  # the old firmware, whole
    run = await gonggi("node", "flash", "--port", board.repl_path, "--data-port", data_port)
    assert run.rc == 0, run.out
    assert re.search(r"resuming: \d+ file\(s\) already copied by an earlier run", run.out)
    assert f"node {node.node_id} started: firmware 0.1.0" in run.out
    assert "verified with the node's key" in run.out
    assert not (board.flash_dir / ".gonggi-staging").exists()


async def test_a_cable_pulled_mid_switch_keeps_the_node_stopped_until_a_rerun_finishes(
    emulated_board: EmulatedBoard, gonggi: Gonggi, site: Path, registry: Path, data_port: str, tmp_path: Path
) -> None:
    board = emulated_board
    node = await provisioned(gonggi, board, site, registry, data_port, "--firmware", str(firmware_tree(tmp_path, "0.0.9")))
    await board.expect_typed("machine.reset()")  # the end of the provisioning
    flashing = asyncio.create_task(gonggi("node", "flash", "--port", board.repl_path, "--data-port", data_port))
    await board.expect_typed("_gg_mv('.gonggi-staging/node.mpy'")  # main.py and a few modules are new
    await board.unplug()
    run = await flashing
    assert run.rc == 1 and "error: lost the board" in run.out
    assert (board.flash_dir / "gonggi.update").exists()

    await board.plug()
    await board.expect("gonggi: firmware update incomplete: run gonggi node flash again")
    run = await gonggi("node", "check", "--port", board.repl_path)
    assert run.rc == 1
    assert _row(run.out, "firmware", "FAIL", "an update was cut off half-way: the node does not start")
    run = await gonggi("node", "flash", "--port", board.repl_path, "--data-port", data_port)
    assert run.rc == 0, run.out
    assert "finishing an update that was cut off" in run.out
    assert f"node {node.node_id} started: firmware 0.1.0" in run.out
    assert not (board.flash_dir / "gonggi.update").exists()


def _row(out: str, item: str, result: str, detail: str = "") -> bool:
    """A row of the check table: │ item │ result │ detail … │."""
    pattern = rf"│ {re.escape(item)} +│ {result} +│ {re.escape(detail)}"
    return re.search(pattern, out) is not None
