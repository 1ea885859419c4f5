"""The status page in a real headless browser (Debian's chromium) against a gateway fed with real
packets: the DOM after the page's script ran must show the node, its latest value and a sparkline."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path

from gateway_helpers import KEY, NODE, OTHER_KEY, MemoryLink, SimNode
from gonggi_gateway.ops.operations import Operations
from gonggi_gateway.ops.sdnotify import Notifier
from gonggi_gateway.registry import NodeInfo, format_registry
from gonggi_gateway.service import Gateway
from gonggi_gateway.state import Snapshot
from ops_helpers import fetch, ops_config, running

BT = 1_764_000_000


async def dump_dom(url: str, profile: Path) -> str:
    """The page's DOM once its scripts ran and went quiet (virtual time lets the fetch finish)."""
    proc = await asyncio.create_subprocess_exec(
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode(errors="replace")
    return out.decode()


def stored(count: int) -> Callable[[Snapshot], bool]:
    return lambda snap: snap.nodes[NODE].packets == count


def test_status_page_shows_live_nodes_values_and_sparklines(tmp_path: Path) -> None:
    config = ops_config(tmp_path)
    config.gateway.registry.write_text(format_registry({
        NODE: NodeInfo(NODE, KEY, "<b>Jongno</b> rooftop", "37.5729,126.9794"),
        "gg-quiet": NodeInfo("gg-quiet", OTHER_KEY, "never heard"),
    }))
    node = SimNode()

    async def main() -> None:
        async with Gateway(config) as gateway, running(gateway), Operations(gateway, notifier=Notifier(None)) as ops:
            link = MemoryLink(name="serial:/dev/ttyUSB0")
            served = asyncio.create_task(gateway.serve_link(link))
            for seq, pm25 in enumerate((10.0, 17.5, 12.25)):  # one report a minute
                link.deliver(node.data_frame(seq, bt=BT + 60 * seq, readings=[("pms.pm25", "ug/m3", pm25),
                                                                                ("bat.v", "V", 3.9)]))
                snap = await asyncio.wait_for(gateway.wait_until(stored(seq + 1)), 10)
                ops.history.record(snap)
            assert ops.http is not None
            base = f"http://127.0.0.1:{ops.http.port}"
            status, body = await fetch(f"{base}/api/status")
            doc = json.loads(body)
            assert status == 200 and doc["gateway"] == "gw-ops" and doc["health"]["healthy"]
            readings = next(n for n in doc["nodes"] if n["id"] == NODE)["readings"]
            pm = next(r for r in readings if r["name"] == "pms.pm25")
            assert pm["history"] == [[BT, 10.0], [BT + 60, 17.5], [BT + 120, 12.25]]

            dom = await dump_dom(f"{base}/", tmp_path / "chromium")
            link.end()
            await served

        assert 'data-updated="' in dom  # the script ran and rendered /api/status
        section = re.search(rf'<section class="node" data-node="{NODE}">(.*?)</section>', dom, re.S)
        assert section is not None, dom
        html = section[1]
        assert '<td class="value">12.25 ug/m3</td>' in html
        spark = re.search(r'<tr data-channel="pms.pm25">.*?<polyline points="([^"]+)"', html, re.S)
        assert spark is not None and len(spark[1].split()) == 3  # three reports, three points
        assert "&lt;b&gt;Jongno&lt;/b&gt; rooftop" in html and "<b>Jongno</b>" not in dom  # text, never HTML
        assert 'data-node="gg-quiet"' in dom and "never heard" in dom
        assert '<span id="health" class="badge ok">healthy</span>' in dom
        assert "<td>serial:/dev/ttyUSB0</td>" in dom  # link health
        assert "0 packets waiting" in dom  # the spool

    asyncio.run(main())
