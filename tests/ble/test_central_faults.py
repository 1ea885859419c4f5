"""The gateway's BLE central survives what BlueZ does, on the virtual radio, without a restart:
connect timeouts (retried with growing backoff), InProgress (retried at once, backoff untouched),
an adapter reset (connections dropped, the scan dead until the watchdog restarts it), and it
serves only the nodes of its registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gonggi_emu.bleak_backend import VirtualClient, radio_backends
from gonggi_emu.radio import Timing, VirtualRadio
from gonggi_gateway.config import BleConfig
from gonggi_gateway.links.base import Link
from gonggi_gateway.links.ble import BleCentral, RegistryFilter
from gonggi_gateway.protocol import Frame
from gonggi_gateway.registry import Registry

from ble_helpers import read_line, start_vm

# A node that always has something to say: on every connection it sends "<name>:<k>".
ANNOUNCE = """
import asyncio
from link_ble import BleLink
link = BleLink("NAME", backlog=lambda: 1)
async def announce():
    k = 0
    was = False
    while True:
        if link.up and not was:
            link.send(0x44, b"NAME:%d" % k)
            k += 1
        was = link.up
        await asyncio.sleep_ms(5)
async def main():
    asyncio.create_task(announce())
    await link.run(lambda mv: None)
print("ready")
asyncio.run(main())
"""
FAST = Timing(time_scale=20.0)


def address_of(uid: str) -> str:
    """The BT address of a board with base MAC ``uid``: the ESP32's is the base MAC + 2."""
    mac = bytearray(bytes.fromhex(uid))
    mac[5] += 2
    return ":".join(f"{b:02X}" for b in mac)


@asynccontextmanager
async def nodes(tmp: Path, radio: VirtualRadio, *names_uids: tuple[str, str]) -> AsyncIterator[None]:
    vms = [await start_vm(tmp, ANNOUNCE.replace("NAME", name), radio.path, uid) for name, uid in names_uids]
    try:
        for vm in vms:
            await read_line(vm, "ready")
        yield
    finally:
        for vm in vms:
            vm.kill()
            await vm.wait()


class Inbox:
    """The central's ``on_link``: collects what the nodes send."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[Frame] = asyncio.Queue()

    async def __call__(self, link: Link) -> None:
        while True:
            for frame in await link.receive():
                self.frames.put_nowait(frame)

    async def next(self, timeout: float = 15.0) -> bytes:
        return (await asyncio.wait_for(self.frames.get(), timeout)).body


def recording_client(base: type[VirtualClient], seen: Callable[[], Any]) -> type[VirtualClient]:
    """``base`` that notes ``seen()`` at the start of every connect attempt."""
    notes: list[Any] = []

    class Recording(base):  # type: ignore[misc, valid-type]
        attempts = notes

        async def connect(self, pair: bool, **kwargs: Any) -> None:
            notes.append(seen())
            await super().connect(pair, **kwargs)

    return Recording


def test_connect_timeouts_are_retried_with_a_growing_backoff(tmp_path: Path) -> None:
    uid = "a4cf12000c00"
    address = address_of(uid)

    async def main() -> None:
        async with VirtualRadio(tmp_path / "r.sock", timing=FAST) as radio, nodes(tmp_path, radio, ("gg-t", uid)):
            scanner_cls, client_cls = radio_backends(radio.path)
            radio.fail_connects(address, 3, "timeout")
            central: BleCentral | None = None
            client = recording_client(client_cls, lambda: central.nodes[address].retry_in if central else None)
            settings = BleConfig(slots=1, idle_s=0.2, connect_timeout_s=0.2, retry_initial_s=0.1, retry_max_s=2.0)
            inbox = Inbox()
            async with BleCentral(settings, inbox, scanner_backend=scanner_cls, client_backend=client) as central:
                assert await inbox.next() == b"gg-t:0"
                assert central.stats.connect_failures == 3
            delays = client.attempts[1:4]  # before each retry: the delay chosen after the failure
            for k, delay in enumerate(delays):
                assert 0.9 * 0.1 * 2**k <= delay <= 1.1 * 0.1 * 2**k, delays

    asyncio.run(main())


def test_in_progress_is_retried_shortly_without_growing_the_backoff(tmp_path: Path) -> None:
    uid = "a4cf12000d00"
    address = address_of(uid)

    async def main() -> None:
        async with VirtualRadio(tmp_path / "r.sock", timing=FAST) as radio, nodes(tmp_path, radio, ("gg-p", uid)):
            scanner_cls, client_cls = radio_backends(radio.path)
            radio.fail_connects(address, 2, "in_progress")
            radio.fail_connects(address, 1, "abort")
            central: BleCentral | None = None
            client = recording_client(client_cls, lambda: central.nodes[address].retry_in if central else None)
            settings = BleConfig(slots=1, idle_s=0.2, connect_timeout_s=1.0, retry_initial_s=0.1, retry_max_s=2.0)
            inbox = Inbox()
            async with BleCentral(settings, inbox, scanner_backend=scanner_cls, client_backend=client) as central:
                assert await inbox.next() == b"gg-p:0"
                assert central.stats.connect_failures == 3
            after_in_progress, after_abort = client.attempts[1:3], client.attempts[3]
            assert after_in_progress == [0.1, 0.1]
            assert 0.09 <= after_abort <= 0.11  # the first step of the backoff: InProgress did not count

    asyncio.run(main())


def test_after_an_adapter_reset_the_watchdog_restarts_the_scan_and_nodes_are_served_again(tmp_path: Path) -> None:
    uid = "a4cf12000e00"
    address = address_of(uid)

    async def main() -> None:
        async with VirtualRadio(tmp_path / "r.sock", timing=FAST) as radio, nodes(tmp_path, radio, ("gg-r", uid)):
            scanner_cls, client_cls = radio_backends(radio.path)
            settings = BleConfig(slots=1, idle_s=0.3, connect_timeout_s=0.5, scan_watchdog_s=0.4,
                                 retry_initial_s=0.05, retry_max_s=0.2)
            inbox = Inbox()
            async with BleCentral(settings, inbox, scanner_backend=scanner_cls, client_backend=client_cls) as central:
                assert await inbox.next() == b"gg-r:0"
                await radio.wait_until(lambda: radio.connected(address))
                radio.reset_adapter("hci0", down_s=10.0)  # 0.5 s at this time scale
                assert not radio.connected(address)
                received = []
                while not received or received[-1] == b"gg-r:0":
                    received.append(await inbox.next())
                assert central.stats.scan_restarts >= 1

    asyncio.run(main())


def test_only_nodes_of_the_registry_are_served_and_a_new_entry_counts_without_a_restart(tmp_path: Path) -> None:
    key = "00" * 32
    registry_file = tmp_path / "nodes.toml"
    registry_file.write_text(f'[nodes."gg-known"]\nkey = "{key}"\n')
    stranger = address_of("a4cf12000f10")
    now = [0.0]

    async def main() -> None:
        async with VirtualRadio(tmp_path / "r.sock", timing=FAST) as radio, \
                nodes(tmp_path, radio, ("gg-known", "a4cf12000f00"), ("gg-stranger", "a4cf12000f10")):
            scanner_cls, client_cls = radio_backends(radio.path)
            settings = BleConfig(slots=2, idle_s=0.2, connect_timeout_s=1.0, retry_initial_s=0.05)
            accept = RegistryFilter(Registry(registry_file), clock=lambda: now[0])
            inbox = Inbox()
            async with BleCentral(settings, inbox, accept=accept, scanner_backend=scanner_cls,
                                  client_backend=client_cls) as central:
                assert [await inbox.next() for _ in range(3)] == [b"gg-known:0", b"gg-known:1", b"gg-known:2"]
                assert stranger not in central.nodes
                registry_file.write_text(registry_file.read_text() + f'[nodes."gg-stranger"]\nkey = "{key}"\n')
                now[0] += 5.0
                while await inbox.next() != b"gg-stranger:0":
                    pass

    asyncio.run(main())
