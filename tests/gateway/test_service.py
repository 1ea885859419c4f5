"""The whole gateway: a node on a pty, through ingest and spool, into the local archive."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from gateway_helpers import KEY, NODE, MemoryLink, PtyNode, SimNode, write_registry
from gonggi_gateway.config import load_config
from gonggi_gateway.service import Gateway
from gonggi_gateway.state import Snapshot


def write_config(tmp_path: Path, port: Path) -> Path:
    write_registry(tmp_path / "nodes.toml", {NODE: KEY, "gg-idle": KEY})
    path = tmp_path / "gateway.toml"
    path.write_text(f'[gateway]\nid = "gw-test"\n\n[[serial]]\nport = "{port}"\n')
    return path


def test_node_to_archive_with_acks_and_a_live_view(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, tmp_path / "ttyNODE"))

    async def main() -> None:
        node = PtyNode(tmp_path / "ttyNODE", SimNode(boot=3))
        node.plug()
        async with Gateway(config) as gateway:
            running = asyncio.create_task(gateway.run())
            await node.send_until([node.sim.hello_frame()], lambda: bool(node.controls))  # answered: the clock
            assert node.controls[0].time_ms is not None and node.controls[0].boot == 3
            frames = [node.sim.data_frame(seq, readings=[("pms.pm25", "ug/m3", 10.5 + seq)]) for seq in range(3)]
            await node.send_until_acked(frames, [0, 1, 2])
            node.write(node.sim.data_frame(1))  # an ack got lost: the node sends it again
            await node.wait_for(lambda: len([c for c in node.controls if c.acks]) >= 2)

            def done(s: Snapshot) -> bool:
                return s.nodes[NODE].duplicates == 1 and s.spool_depth == 0 and s.uplinks[0].delivered == 3

            snap = await asyncio.wait_for(gateway.wait_until(done), 10)
            status = snap.nodes[NODE]
            assert (status.name, status.location, status.boot, status.packets) == (f"{NODE} name", "lab", 3, 3)
            assert status.link == f"serial:{tmp_path / 'ttyNODE'}"
            assert [(r.name, r.unit, r.value) for r in status.readings] == [("pms.pm25", "ug/m3", 12.5)]
            assert snap.nodes["gg-idle"].last_seen is None  # known, never heard
            assert snap.links[0].open and snap.links[0].node_id == NODE
            assert snap.uplinks[0].name == "archive" and snap.uplinks[0].last_error is None
            assert snap.rejected == {"duplicate": 1}

            archive = gateway.archive
            assert archive is not None
            assert await archive.count(NODE) == 3
            latest = await archive.latest()
            assert [(r.name, r.value) for r in latest[NODE]] == [("pms.pm25", 12.5)]
            packets = await archive.packets(NODE)
            assert [p[0]["v"] for p in packets] == [10.5, 11.5, 12.5]
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        node.unplug()

    asyncio.run(main())


def test_a_link_that_comes_up_at_run_time_is_served_until_it_ends(tmp_path: Path) -> None:
    write_registry(tmp_path / "nodes.toml", {NODE: KEY})
    (tmp_path / "gateway.toml").write_text('[gateway]\nid = "gw-test"\n')
    config = load_config(tmp_path / "gateway.toml")
    node = SimNode()

    async def main() -> None:
        async with Gateway(config) as gateway:
            running = asyncio.create_task(gateway.run())  # no configured links: drains only
            link = MemoryLink(name="ble:AA:BB")
            served = asyncio.create_task(gateway.serve_link(link))
            link.deliver(node.data_frame(0))
            snap = await asyncio.wait_for(gateway.wait_until(lambda s: s.nodes[NODE].packets == 1), 10)
            assert [(ls.name, ls.node_id) for ls in snap.links] == [("ble:AA:BB", NODE)]
            assert snap.nodes[NODE].link == "ble:AA:BB"
            link.end()
            await served
            assert gateway.snapshot().links == ()
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)

    asyncio.run(main())


def test_sigterm_stops_the_service_cleanly(tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "no-such-port")
    code = (
        "import argparse, sys\n"
        "from gonggi_gateway.cli import add_parser\n"
        "p = argparse.ArgumentParser(); add_parser(p.add_subparsers())\n"
        "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, "gateway", "run", "--config", str(config)],
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "ready" in line:
            break
    os.kill(proc.pid, signal.SIGTERM)
    _, rest = proc.communicate(timeout=10)
    assert proc.returncode == 0, "".join(lines) + rest
    assert "stopping on signal" in rest and "gateway gw-test stopped" in rest
    assert "Traceback" not in "".join(lines) + rest
