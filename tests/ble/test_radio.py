"""The virtual radio enforces what a real one does: advert size, ATT MTU, connection slots."""

from __future__ import annotations

import asyncio
import errno
import re
from pathlib import Path

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError

from gonggi_emu.bleak_backend import _RadioSocket, radio_backends
from gonggi_emu.radio import Timing, VirtualRadio, rssi_at
from gonggi_emu.radio.wire import Op
from gonggi_emu.vm import BOARD_SUPPORT_DIR

from ble_helpers import RawPeripheral

FAST = Timing(time_scale=100.0)
FLAGS_AND_NAME = b"\x02\x01\x06" + bytes((27, 0x09)) + b"n" * 26  # 3 + 28 = 31 bytes


def test_wire_op_codes_match_the_vm_module() -> None:
    text = (BOARD_SUPPORT_DIR / "bluetooth.py").read_text()
    names = {"HELLO": Op.HELLO_PERIPHERAL, "ADVERTISE": Op.ADVERTISE, "NOTIFY": Op.NOTIFY,
             "DISCONNECT": Op.DISCONNECT, "GATT_TABLE": Op.GATT_TABLE, "PREFERRED_MTU": Op.PREFERRED_MTU,
             "VALUE": Op.VALUE}
    for name, op in names.items():
        assert re.search(rf"_OP_{name} = const\(0x{op:02X}\)", text), name
    for name in ("CONNECT", "DISCONNECT", "WRITE", "MTU"):
        assert re.search(rf"_EV_{name} = const\(0x{Op['EV_' + name]:02X}\)", text), name


def test_advert_over_31_bytes_is_refused_with_eio(tmp_path: Path) -> None:
    async def main() -> None:
        async with VirtualRadio(tmp_path / "r.sock", timing=FAST) as radio:
            p = RawPeripheral(bytes.fromhex("a4cf12000010"))
            await p.open(radio.path)
            assert await p.advertise(FLAGS_AND_NAME) == 0
            assert await p.advertise(FLAGS_AND_NAME + b"x") == errno.EIO
            assert await p.advertise(FLAGS_AND_NAME, resp=bytes(32)) == errno.EIO
            assert radio.stats.adverts_rejected == 2
            await p.close()

    asyncio.run(main())


async def _connected(radio: VirtualRadio, address: str) -> tuple[_RadioSocket, int, asyncio.Queue[bytes]]:
    got: asyncio.Queue[bytes] = asyncio.Queue()

    def on_event(op: int, obj: dict) -> None:
        if op == Op.NOTIFICATION:
            got.put_nowait(bytes.fromhex(obj["data"]))

    sock = _RadioSocket(str(radio.path), "hci0", on_event)
    await sock.open()
    reply = await sock.call("connect", address=address, timeout=5)
    return sock, reply["conn"], got


def test_att_mtu_is_23_until_exchanged(tmp_path: Path) -> None:
    async def main() -> None:
        async with VirtualRadio(tmp_path / "r.sock", timing=FAST) as radio:
            p = RawPeripheral(bytes.fromhex("a4cf12000011"))
            await p.open(radio.path)
            await p.advertise(FLAGS_AND_NAME)
            sock, conn, got = await _connected(radio, p.address)
            op, payload = await p.events.get()
            assert op == Op.EV_CONNECT
            assert await p.notify(conn, 12, bytes(range(30))) == 0
            assert await got.get() == bytes(range(20))  # MTU 23: 20 bytes of value, the rest lost
            assert radio.stats.truncated == 1
            assert (await sock.call("exchange_mtu", conn=conn, mtu=517))["mtu"] == 247
            op, payload = await p.events.get()
            assert op == Op.EV_MTU and int.from_bytes(payload[2:4], "little") == 247
            assert await p.notify(conn, 12, bytes(range(30))) == 0
            assert await got.get() == bytes(range(30))
            await sock.close()
            await p.close()

    asyncio.run(main())


def test_adapter_connection_slots_are_limited(tmp_path: Path) -> None:
    async def main() -> None:
        async with VirtualRadio(tmp_path / "r.sock", timing=FAST, max_connections=2) as radio:
            _, client_cls = radio_backends(radio.path)
            peripherals = [RawPeripheral(bytes.fromhex(f"a4cf120000{20 + i:02x}")) for i in range(3)]
            for p in peripherals:
                await p.open(radio.path)
                await p.advertise(FLAGS_AND_NAME)
            clients = [BleakClient(p.address, backend=client_cls, timeout=2) for p in peripherals]
            await clients[0].connect()
            await clients[1].connect()
            with pytest.raises(BleakError, match="Limited Resources"):
                await clients[2].connect()
            await clients[0].disconnect()
            await clients[2].connect()
            assert clients[2].is_connected and clients[2].mtu_size == 247
            assert radio.stats.max_concurrent["hci0"] == 2
            for c in clients[1:]:
                await c.disconnect()
            for p in peripherals:
                await p.close()

    asyncio.run(main())


def test_failed_connect_and_in_progress_surface_as_bleak_errors(tmp_path: Path) -> None:
    async def main() -> None:
        async with VirtualRadio(tmp_path / "r.sock", timing=FAST) as radio:
            _, client_cls = radio_backends(radio.path)
            p = RawPeripheral(bytes.fromhex("a4cf12000030"))
            await p.open(radio.path)
            await p.advertise(FLAGS_AND_NAME)
            radio.fail_connects(p.address, 1, "abort")
            with pytest.raises(BleakError, match="le-connection-abort-by-local"):
                await BleakClient(p.address, backend=client_cls, timeout=2).connect()
            first = BleakClient(p.address, backend=client_cls, timeout=2)
            second = BleakClient(p.address, backend=client_cls, timeout=2)
            results = await asyncio.gather(first.connect(), second.connect(), return_exceptions=True)
            assert sum(r is None for r in results) == 1
            assert any(isinstance(r, BleakError) and "InProgress" in str(r) for r in results)
            radio.place(p.address, 5000.0)  # out of range: nobody answers
            await first.disconnect()
            await second.disconnect()
            await p.advertise(FLAGS_AND_NAME)
            with pytest.raises(TimeoutError):
                await BleakClient(p.address, backend=client_cls, timeout=0.2).connect()
            await p.close()

    asyncio.run(main())


def test_rssi_falls_with_distance_and_out_of_range_nobody_hears(tmp_path: Path) -> None:
    async def main() -> None:
        async with VirtualRadio(tmp_path / "r.sock", timing=FAST) as radio:
            scanner_cls, _ = radio_backends(radio.path)
            p = RawPeripheral(bytes.fromhex("a4cf12000040"))
            await p.open(radio.path)
            heard: asyncio.Queue[int] = asyncio.Queue()
            async with BleakScanner(lambda _d, adv: heard.put_nowait(adv.rssi), backend=scanner_cls):
                for meters, rssi in ((1.0, -59), (10.0, -84), (200.0, None), (1.0, -59)):
                    radio.place(p.address, meters)
                    await p.advertise(FLAGS_AND_NAME)  # reported at once to every scanner in range
                    if rssi is not None:
                        assert await heard.get() == rssi == rssi_at(meters)
            assert heard.empty()  # nothing was heard from 200 m (-117 dBm is below the floor)
            await p.close()

    asyncio.run(main())


def test_a_link_carries_no_more_than_a_1m_phy_connection_and_pushes_back_when_full(tmp_path: Path) -> None:
    # 1M PHY, 30 ms connection interval, 6 LL PDUs per event and direction: at best one PDU every
    # 5 ms. A notification of up to 20 bytes (MTU 23) or 244 (MTU 247 with data length extension)
    # is one PDU, so 12 of them take at least 60 ms; slowed down 2x here, 120 ms.
    slow = Timing(time_scale=0.5)
    async def main() -> None:
        async with VirtualRadio(tmp_path / "r.sock", timing=slow) as radio:
            p = RawPeripheral(bytes.fromhex("a4cf12000041"))
            await p.open(radio.path)
            await p.advertise(FLAGS_AND_NAME)
            sock, conn, got = await _connected(radio, p.address)
            loop = asyncio.get_running_loop()
            for mtu, size in ((23, 20), (247, 244)):
                if mtu == 247:
                    await sock.call("exchange_mtu", conn=conn, mtu=517)
                start = loop.time()
                for _ in range(slow.notify_buffers):
                    assert await p.notify(conn, 12, bytes(size)) == 0
                # The stack's buffers are full: NimBLE answers ENOMEM until the air takes some.
                assert await p.notify(conn, 12, bytes(size)) == errno.ENOMEM
                for _ in range(slow.notify_buffers):
                    assert len(await got.get()) == size
                assert loop.time() - start >= slow.notify_buffers * 0.005 / slow.time_scale
            assert radio.stats.notify_enomem == 2
            await sock.close()
            await p.close()

    asyncio.run(main())


def test_a_call_after_the_radio_went_away_fails_at_once(tmp_path: Path) -> None:
    # As BlueZ once the adapter is gone: an error, not a request nobody will ever answer.
    async def main() -> None:
        events: list[int] = []
        gone = asyncio.Event()

        def on_event(op: int, _: dict[str, object]) -> None:
            events.append(op)
            if op == Op.DISCONNECTED:
                gone.set()

        async with VirtualRadio(tmp_path / "r.sock", timing=FAST):
            sock = _RadioSocket(str(tmp_path / "r.sock"), "hci0", on_event)
            await sock.open()
            await sock.call("scan")  # answered: the radio has this central
        await gone.wait()
        with pytest.raises(BleakError, match="not connected to the virtual radio"):
            await asyncio.wait_for(sock.call("stop_scan"), 5)
        await sock.close()

    asyncio.run(main())
