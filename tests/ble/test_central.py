"""The gateway's BLE central serves more nodes than it has slots, through the bleak backend on the radio."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gonggi_emu.bleak_backend import radio_backends
from gonggi_emu.radio import Timing, VirtualRadio
from gonggi_gateway.links.base import Link
from gonggi_gateway.config import BleConfig
from gonggi_gateway.links.ble import BleCentral

from ble_helpers import read_line, start_vm

NODE = """
import asyncio
from link_ble import BleLink
N = COUNT
sent = [0]
link = BleLink("NAME", backlog=lambda: N - sent[0])
for i in range(N):
    link.send(0x44, b"NAME:%d:" % i, bytes(150))
print("ready")
asyncio.run(link.run(lambda mv: None))
"""


def test_one_slot_serves_two_nodes_in_turn_and_survives_a_stalled_scan(tmp_path: Path) -> None:
    async def main() -> None:
        async with VirtualRadio(tmp_path / "r.sock", timing=Timing(time_scale=20.0)) as radio:
            scanner_cls, client_cls = radio_backends(radio.path)
            vms = [await start_vm(tmp_path, NODE.replace("NAME", name).replace("COUNT", str(n)), radio.path, uid)
                   for name, n, uid in (("gg-a", 5, "a4cf12000a00"), ("gg-b", 3, "a4cf12000b00"))]
            got: dict[str, list[bytes]] = {}
            everything = asyncio.Event()

            async def on_link(link: Link) -> None:
                while True:
                    for frame in await link.receive():
                        name = frame.body.split(b":")[0].decode()
                        got.setdefault(name, []).append(frame.body[:frame.body.rindex(b":") + 1])
                        if sum(map(len, got.values())) == 8:
                            everything.set()

            settings = BleConfig(slots=1, idle_s=0.3, connect_timeout_s=2.0, scan_watchdog_s=0.4,
                                   retry_initial_s=0.05, retry_max_s=0.2)
            try:
                for vm in vms:
                    await read_line(vm, "ready")
                async with BleCentral(settings, on_link, scanner_backend=scanner_cls,
                                      client_backend=client_cls) as central:
                    await asyncio.wait_for(everything.wait(), 30)
                    radio.stall_scan()
                    await radio.wait_until(lambda: central.stats.scan_restarts >= 1, timeout=10)
                assert got == {"gg-a": [b"gg-a:%d:" % i for i in range(5)],
                               "gg-b": [b"gg-b:%d:" % i for i in range(3)]}
                assert radio.stats.max_concurrent["hci0"] == 1
                assert central.stats.sessions >= 2
            finally:
                for vm in vms:
                    vm.kill()
                    await vm.wait()

    asyncio.run(main())
