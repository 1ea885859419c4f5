"""/metrics and /healthz of a running gateway fed with real packets, scraped over HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from gateway_helpers import NODE, OTHER_KEY, T0, MemoryLink, SimNode
from gonggi_gateway.ops.metrics import SnapshotCollector
from gonggi_gateway.ops.operations import Operations
from gonggi_gateway.ops.sdnotify import Notifier
from gonggi_gateway.service import Gateway
from gonggi_gateway.spool import SpoolStats
from gonggi_gateway.state import LinkStatus, Snapshot
from ops_helpers import fetch, ops_config, running, sample, samples

NO_SYSTEMD = Notifier(None)


class RadioLink(MemoryLink):
    """A link that reports a signal strength, as a BLE connection does."""

    @property
    def frame_errors(self) -> dict[str, int]:
        return {"crc": 2}

    def status(self) -> LinkStatus:
        return LinkStatus(self.name, self.is_open, self.node_id, self.frame_errors, rssi=-67)


def test_metrics_count_packets_nodes_links_spool_and_uplinks(tmp_path: Path) -> None:
    config = ops_config(tmp_path / "a")
    node = SimNode()

    async def main() -> None:
        async with (Gateway(config, clock=lambda: T0) as gateway, running(gateway),
                    Operations(gateway, notifier=NO_SYSTEMD) as ops):
            link = RadioLink(name="ble:AA:BB")
            served = asyncio.create_task(gateway.serve_link(link))
            battery = [("bat.v", "V", 3.71), ("pms.pm25", "ug/m3", 12.0)]
            link.deliver(node.data_frame(0, readings=battery), node.data_frame(1, readings=battery),
                         node.data_frame(3, readings=battery))  # seq 2 is missing
            link.deliver(node.data_frame(1, readings=battery))  # a duplicate
            link.deliver(node.data_frame(4, key=OTHER_KEY))  # bad MAC
            link.deliver(SimNode(node_id="gg-stranger").data_frame(0))  # unknown node

            def settled(snap: Snapshot) -> bool:
                return snap.rejected.get("unknown_node") == 1 and snap.uplinks[0].delivered == 3

            await asyncio.wait_for(gateway.wait_until(settled), 10)
            await ops.monitor.check()  # the spool probe behind seq_missing and the ages
            assert ops.http is not None
            status, text = await fetch(f"http://127.0.0.1:{ops.http.port}/metrics")
            assert status == 200
            m = samples(text)
            assert sample(m, "gonggi_packets_received_total") == 8  # 2 damaged frames too
            assert sample(m, "gonggi_packets_verified_total") == 4
            assert sample(m, "gonggi_packets_stored_total") == 3
            for reason in ("duplicate", "bad_mac", "unknown_node"):
                assert sample(m, "gonggi_packets_rejected_total", reason=reason) == 1
            assert sample(m, "gonggi_packets_rejected_total", reason="frame") == 2  # the link's CRC errors
            assert sample(m, "gonggi_node_packets_total", node=NODE) == 3
            assert sample(m, "gonggi_node_rejected_total", node=NODE, reason="bad_mac") == 1
            assert sample(m, "gonggi_node_last_seen_timestamp_seconds", node=NODE) == T0
            assert sample(m, "gonggi_node_battery_volts", node=NODE) == 3.71
            assert sample(m, "gonggi_node_reading", node=NODE, channel="pms.pm25", unit="ug/m3") == 12.0
            assert sample(m, "gonggi_node_seq_missing", node=NODE) == 1
            assert sample(m, "gonggi_link_rssi_dbm", link="ble:AA:BB") == -67
            assert sample(m, "gonggi_link_frame_errors_total", link="ble:AA:BB", reason="crc") == 2
            assert sample(m, "gonggi_link_up", link="ble:AA:BB") == 1
            assert sample(m, "gonggi_spool_depth") == 0
            assert (sample(m, "gonggi_spool_refused_total"), sample(m, "gonggi_spool_full")) == (0, 0)
            assert sample(m, "gonggi_uplink_dead_letters_total", uplink="archive") == 0
            assert sample(m, "gonggi_spool_oldest_age_seconds") == 0
            assert sample(m, "gonggi_uplink_delivered_total", uplink="archive") == 3
            assert sample(m, "gonggi_uplink_errors_total", uplink="archive") == 0
            assert sample(m, "gonggi_uplink_send_seconds_count", uplink="archive") >= 1
            assert sample(m, "gonggi_healthy") == 1

            # The seq 2 packet arrives late (from the node's flash): nothing is missing any more.
            link.deliver(node.data_frame(2, readings=battery))
            await asyncio.wait_for(gateway.wait_until(lambda s: s.nodes[NODE].packets == 4), 10)
            await ops.monitor.check()
            _, text = await fetch(f"http://127.0.0.1:{ops.http.port}/metrics")
            assert sample(samples(text), "gonggi_node_seq_missing", node=NODE) == 0
            link.end()
            await served

    asyncio.run(main())


def test_each_gateway_has_its_own_registry(tmp_path: Path) -> None:
    async def main() -> None:
        async with (Gateway(ops_config(tmp_path / "a")) as a, running(a), Operations(a, notifier=NO_SYSTEMD),
                    Gateway(ops_config(tmp_path / "b")) as b, running(b), Operations(b, notifier=NO_SYSTEMD)):
            link = MemoryLink()
            served = asyncio.create_task(a.serve_link(link))
            link.deliver(SimNode().data_frame(0))
            await asyncio.wait_for(a.wait_until(lambda s: s.nodes[NODE].packets == 1), 10)
            assert sample(samples(a.metrics.render().decode()), "gonggi_packets_stored_total") == 1
            assert sample(samples(b.metrics.render().decode()), "gonggi_packets_stored_total") == 0
            assert not any(name.startswith("gonggi_") for name in REGISTRY._names_to_collectors)
            link.end()
            await served

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_healthz_is_503_when_an_uplink_is_down_or_the_spool_is_locked(tmp_path: Path) -> None:
    # A broker nobody listens on; the archive keeps working.
    config = ops_config(tmp_path, f'[mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\n\n[archive]\n',
                        health="[health]\ninterval = 0.05\nstall_after = 0.5\nuplink_down_after = 0.3\n")

    async def main() -> None:
        async with Gateway(config) as gateway, running(gateway), Operations(gateway, notifier=NO_SYSTEMD) as ops:
            assert ops.http is not None
            url = f"http://127.0.0.1:{ops.http.port}/healthz"
            status, body = await fetch(url)
            assert status == 200 and json.loads(body)["status"] == "ok"

            link = MemoryLink()
            served = asyncio.create_task(gateway.serve_link(link))
            link.deliver(SimNode().data_frame(0))
            while ops.monitor.report is None or ops.monitor.report.checks["uplink:mqtt"].ok:
                await ops.monitor.reported.wait()
            status, body = await fetch(url)
            doc = json.loads(body)
            assert status == 503 and doc["status"] == "unhealthy"
            assert doc["checks"]["uplink:archive"]["ok"] and not doc["checks"]["uplink:mqtt"]["ok"]
            assert "1 rows waiting, none confirmed" in doc["checks"]["uplink:mqtt"]["detail"]
            assert "cannot connect" in doc["checks"]["uplink:mqtt"]["detail"]
            assert doc["checks"]["spool"]["ok"] and doc["checks"]["loop"]["ok"]

            # Another process holds the spool's write lock: commits would wait, then fail.
            locker = sqlite3.connect(config.gateway.spool, isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")
            while ops.monitor.report.checks["spool"].ok:
                await ops.monitor.reported.wait()
            _, body = await fetch(url)
            assert "database is locked" in json.loads(body)["checks"]["spool"]["detail"]
            locker.execute("ROLLBACK")
            locker.close()
            while not ops.monitor.report.checks["spool"].ok:
                await ops.monitor.reported.wait()
            link.end()
            await served

    asyncio.run(main())


def test_a_taken_http_port_is_logged_and_the_gateway_carries_on(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = ops_config(tmp_path)
        config = replace(config, http=replace(config.http, port=port))

        async def main() -> None:
            async with Gateway(config) as gateway, running(gateway), Operations(gateway, notifier=NO_SYSTEMD) as ops:
                assert ops.http is None
                link = MemoryLink()
                served = asyncio.create_task(gateway.serve_link(link))
                link.deliver(SimNode().data_frame(0))  # readings are still collected
                await asyncio.wait_for(gateway.wait_until(lambda s: s.nodes[NODE].packets == 1), 10)
                link.end()
                await served

        asyncio.run(main())
    assert f"http: cannot listen on 127.0.0.1:{port}" in caplog.text
    assert "carrying on without /metrics, /healthz and the status page" in caplog.text


def test_a_full_spool_and_dead_letters_are_counted_in_metrics() -> None:
    # What the disk bound's policy did and what upstream refused for good: never a silent drop.
    stats = SpoolStats(depth=7, pending={"http": 7}, stored=100, duplicates=0, refused=5, full=True,
                       used_bytes=4096, max_bytes=1 << 20, dead_letters={"http": 3}, resent={"http": 2},
                       resend_rejected={"http": 1}, commits=10)
    snap = Snapshot("gw", T0, {}, (), (), {}, 7, stats)
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: snap, lambda: None))
    m = samples(generate_latest(registry).decode())
    assert sample(m, "gonggi_spool_refused_total") == 5
    assert sample(m, "gonggi_spool_full") == 1
    assert sample(m, "gonggi_spool_used_bytes") == 4096
    assert sample(m, "gonggi_spool_max_bytes") == 1 << 20
    assert sample(m, "gonggi_uplink_dead_letters_total", uplink="http") == 3
    assert sample(m, "gonggi_uplink_resent_total", uplink="http") == 2
    assert sample(m, "gonggi_uplink_resend_rejected_total", uplink="http") == 1
