"""A node on BLE, end to end: an emulated board running the real firmware advertises on the virtual
radio; the gateway's BLE central (the code that runs on BlueZ, through bleak's ``backend=``)
connects, drains its backlog and acks. Every reading arrives exactly once, across a connection
lost in the middle of the backlog, a walk out of range and a reboot of the node."""

from __future__ import annotations

import asyncio
import binascii
import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path

from gonggi_emu.bleak_backend import parse_advertisement, radio_backends
from gonggi_emu.radio import Timing, VirtualRadio
from gonggi_gateway.config import parse_config
from gonggi_gateway.links.ble_fragments import parse_advert
from gonggi_gateway.service import Gateway
from gonggi_gateway.state import Snapshot
from gonggi_tools.fleet import EmulatedNode, registry_toml

from ble_nodes import ble_spec

NODE = "hil-ble-01"
SLOT = 1024  # the firmware's default ring slot size (firmware/config.py)
FAR_M = 1000.0  # out of range: the radio hears nothing below -100 dBm


def backlog(radio: VirtualRadio, address: str) -> int:
    """What the node's current advert says it holds unacknowledged (-1: not advertising)."""
    p = radio.peripherals.get(address)
    if p is None or not p.adv:
        return -1
    info = parse_advert(parse_advertisement(p.adv, b"", 0).manufacturer_data)
    return -1 if info is None else info.backlog


def ring_packets(flash: Path) -> list[tuple[int, int]]:
    """(boot, seq) of every packet in the node's flash ring (firmware/ring.py's slot format)."""
    data = (flash / "ring.bin").read_bytes()
    out = []
    for off in range(0, len(data) - SLOT + 1, SLOT):
        slot = data[off:off + SLOT]
        if slot[:2] != b"GG":
            continue
        n, boot, seq, crc = struct.unpack_from(">HIII", slot, 2)
        if binascii.crc32(slot[16:16 + n], binascii.crc32(slot[2:12])) == crc:
            out.append((boot, seq))
    return out


def archived(path: Path) -> list[tuple[int, int, str]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT boot, seq, records FROM packets WHERE node = ? ORDER BY boot, seq",
                          (NODE,)).fetchall()


async def test_readings_arrive_exactly_once_over_ble_across_a_lost_link_and_a_reboot(tmp_path: Path) -> None:
    spec = ble_spec(NODE)
    (tmp_path / "nodes.toml").write_text(registry_toml([spec]))
    archive = tmp_path / "archive.sqlite"
    config = parse_config({
        "gateway": {"id": "gw-ble", "spool": "spool.sqlite", "registry": "nodes.toml"},
        "ble": {"slots": 2, "idle_s": 0.3, "connect_timeout_s": 1.0, "retry_initial_s": 0.2, "retry_max_s": 1.0},
        "archive": {"path": str(archive)},
    }, "gateway.toml", tmp_path)
    # A 1 s supervision timeout (the central chooses it): a lost link is noticed within a second.
    async with VirtualRadio(tmp_path / "radio.sock", timing=Timing(supervision_timeout_s=1.0)) as radio, \
            EmulatedNode(spec, tmp_path, env={"GONGGI_RADIO": str(radio.path)}) as node:
        await node.board.expect("gonggi node " + NODE)
        await radio.wait_until(lambda: len(radio.peripherals) == 1)
        (address,) = radio.peripherals

        # No gateway yet: readings wait in the node's flash ring, and its advert says how many.
        await radio.wait_until(lambda: backlog(radio, address) >= 4, timeout=20)
        # The first connection is lost after three notifications: in the middle of the backlog.
        radio.drop_after_notifications(address, 3)
        async with Gateway(config, ble_backends=radio_backends(radio.path)) as gateway:
            assert gateway.central is not None
            central = gateway.central
            serving = asyncio.create_task(gateway.run())

            def node_has(predicate: Callable[[Snapshot], bool]) -> Callable[[Snapshot], bool]:
                return lambda s: NODE in s.nodes and predicate(s)

            await asyncio.wait_for(gateway.wait_until(node_has(lambda s: s.nodes[NODE].packets >= 6)), 30)
            assert radio.stats.lost == 1 and central.stats.sessions >= 2

            # The node walks out of range, takes more readings nobody can ack, and reboots (EN).
            radio.place(address, FAR_M)
            if radio.connected(address):
                radio.drop(address)
            await radio.wait_until(lambda: not radio.connected(address))
            waiting = backlog(radio, address)
            await radio.wait_until(lambda: backlog(radio, address) >= waiting + 2, timeout=10)
            await node.board.reset()
            first_boot = ring_packets(node.flash)
            assert first_boot and {boot for boot, _ in first_boot} == {1}  # kept in flash across the reboot

            # Back in range: the first boot's leftovers and the second boot's readings arrive.
            radio.place(address, 2.0)
            left = {seq for _, seq in first_boot}
            await asyncio.wait_for(gateway.wait_until(node_has(
                lambda s: s.nodes[NODE].boot == 2 and s.spool_depth == 0
                and left <= {seq for boot, seq, _ in archived(archive) if boot == 1}
                and sum(1 for boot, _, _ in archived(archive) if boot == 2) >= 3)), 30)
            snap = gateway.snapshot()
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)

    rows = archived(archive)
    keys = [(boot, seq) for boot, seq, _ in rows]
    # Exactly once: each reading stored once, and none missing: the first boot's run of sequence
    # numbers is complete up to its last reading (which was still in flash at the reboot).
    assert len(keys) == len(set(keys)) == snap.nodes[NODE].packets
    seqs1 = [seq for boot, seq in keys if boot == 1]
    seqs2 = [seq for boot, seq in keys if boot == 2]
    assert seqs1 == list(range(max(left) + 1))
    assert seqs2 == list(range(len(seqs2)))
    assert snap.nodes[NODE].rejected == {}
    assert all('"n":"bat.v"' in records for _, _, records in rows)
    assert radio.stats.max_concurrent["hci0"] == 1
