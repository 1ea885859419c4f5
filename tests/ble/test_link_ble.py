"""firmware/link_ble.py on the MicroPython VM, through the radio, seen by bleak's own API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from bleak import BleakClient, BleakScanner

from gonggi_emu.bleak_backend import radio_backends
from gonggi_emu.radio import Timing, VirtualRadio
from gonggi_gateway.links.ble_fragments import GO, RX_UUID, SERVICE_UUID, TX_UUID, Reassembler, fragments, parse_advert

from ble_helpers import read_line, start_vm

# The node echoes every frame it receives back as type "E" and starts with a 300-byte "D" frame.
NODE = """
import asyncio
import bluetooth
from link_ble import BleLink
link = BleLink("gg-frag01", backlog=lambda: 7)
MTU
try:
    bluetooth.BLE().gap_advertise(100000, bytes(32))
except OSError as e:
    print("adv32", e.errno)
link._advertise()
def on_frame(mv):
    print("got", mv[0], len(mv))
    link.send(0x45, mv[1:])
link.send(0x44, bytes(range(256)) + bytes(44))
print("ready")
asyncio.run(link.run(on_frame))
"""


@pytest.mark.parametrize("node_mtu,expected_mtu", [(23, 23), (247, 247)])
def test_frames_fragment_and_reassemble_both_ways(tmp_path: Path, node_mtu: int, expected_mtu: int) -> None:
    async def main() -> None:
        async with VirtualRadio(tmp_path / "r.sock", timing=Timing(time_scale=20.0)) as radio:
            scanner_cls, client_cls = radio_backends(radio.path)
            code = NODE.replace("MTU", f"bluetooth.BLE().config(mtu={node_mtu})")
            vm = await start_vm(tmp_path, code, radio.path)
            try:
                assert await read_line(vm, "adv32") == "adv32 5"  # NimBLE's EIO for a 32-byte advert
                found: asyncio.Future = asyncio.get_running_loop().create_future()

                def seen(device, adv) -> None:
                    if not found.done():
                        found.set_result((device, adv))

                async with BleakScanner(seen, [SERVICE_UUID], backend=scanner_cls):
                    device, adv = await asyncio.wait_for(found, 10)
                assert adv.local_name == "gg-frag01"
                assert parse_advert(adv.manufacturer_data).backlog == 7
                frames: asyncio.Queue = asyncio.Queue()
                reassembler = Reassembler()

                def on_notify(_char, data: bytearray) -> None:
                    assert len(data) <= expected_mtu - 3
                    frame = reassembler.feed(bytes(data))
                    if frame is not None:
                        frames.put_nowait(frame)

                async with BleakClient(device, backend=client_cls) as client:
                    assert client.mtu_size == expected_mtu
                    await client.start_notify(TX_UUID, on_notify)
                    await client.write_gatt_char(RX_UUID, GO, response=True)
                    first = await asyncio.wait_for(frames.get(), 10)
                    assert (first.type, first.body) == (0x44, bytes(range(256)) + bytes(44))
                    body = bytes(range(200, 256)) * 2
                    for frag in fragments(b"C" + body, client.mtu_size - 3, 1):
                        await client.write_gatt_char(RX_UUID, frag, response=True)
                    assert await read_line(vm, "got") == f"got 67 {1 + len(body)}"
                    echo = await asyncio.wait_for(frames.get(), 10)
                    assert (echo.type, echo.body) == (0x45, body)
                assert reassembler.errors == {"sequence": 0, "too_long": 0, "runt": 0}
            finally:
                vm.kill()
                await vm.wait()

    asyncio.run(main())
