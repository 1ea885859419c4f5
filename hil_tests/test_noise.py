"""Noise levels end to end: the emulated microphone hears the scenario's sound field, the node's
meter turns it into A-weighted levels per report, and they arrive at the gateway in its packets."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

from gonggi_gateway.config import parse_config
from gonggi_gateway.service import Gateway
from gonggi_gateway.state import Snapshot
from gonggi_tools.fleet import EmulatedNode, NodeSpec, gateway_toml, registry_toml

NODE = "noise-01"
QUIET_DBA, LOUD_DBA = 58.0, 76.0
STEP_S = 12.0  # board seconds: pink noise at QUIET_DBA, then at LOUD_DBA (a bus pulls up)
TOLERANCE_DB = 0.5  # the end-to-end accuracy


async def test_a_step_in_street_noise_arrives_as_levels_in_the_nodes_packets(tmp_path: Path) -> None:
    spec = NodeSpec.make(
        NODE,
        sensors=[{"driver": "noise", "mic": "inmp441", "rate": 16000, "sck": 14, "ws": 15, "sd": 32}],
        bench={"device": [{"kind": "microphone", "bus": "i2s0", "options": {"model": "inmp441"}}]},
        scenario={"values": {"noise_dba": [[0, QUIET_DBA], [STEP_S, QUIET_DBA], [STEP_S + 0.01, LOUD_DBA]]}},
        settings={"sample_s": 1, "report_s": 3},
    )
    registry = tmp_path / "nodes.toml"
    registry.write_text(registry_toml([spec]))
    async with EmulatedNode(spec, tmp_path) as node:
        text = gateway_toml("gw-noise", ports=[node.data_port], registry=registry,
                            spool=tmp_path / "spool.sqlite", archive=tmp_path / "archive.sqlite")
        async with Gateway(parse_config(tomllib.loads(text), "gateway.toml", tmp_path)) as gateway:
            serving = asyncio.create_task(gateway.run())
            archive = gateway.archive
            assert archive is not None

            def loud(snap: Snapshot) -> bool:
                latest = {r.name: r.value for r in snap.nodes[NODE].readings} if NODE in snap.nodes else {}
                return float(latest.get("noise.laeq", 0)) > LOUD_DBA - 1 and snap.spool_depth == 0

            await gateway.wait_until(loud)
            packets = await archive.packets(NODE)
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)

    reports = [{r["n"]: r.get("v") for r in packet} for packet in packets]
    levels = [r for r in reports if "noise.laeq" in r]
    assert all(r["noise.n"] == 1 for r in levels)  # one poll per report, never a mean of polls
    quiet = [r for r in levels if r["noise.lamax"] < QUIET_DBA + 3]
    step = [r for r in levels if r["noise.lamin"] < QUIET_DBA + 3 < r["noise.lamax"]]
    assert quiet and step, reports
    for r in quiet:
        assert abs(r["noise.laeq"] - QUIET_DBA) <= TOLERANCE_DB, r
        assert r["noise.la90"] <= r["noise.la50"] <= r["noise.la10"] <= r["noise.lamax"]
    # The report that heard the bus arrive: Fast maximum near the loud level, minimum the quiet one.
    assert abs(step[0]["noise.lamax"] - LOUD_DBA) <= 2.0, step[0]
    assert abs(levels[-1]["noise.laeq"] - LOUD_DBA) <= TOLERANCE_DB, levels[-1]
