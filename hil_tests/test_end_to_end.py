"""The walking skeleton end to end: an emulated board running the real firmware sends its
readings over its data UART to the gateway, which verifies, spools and publishes them to a real
mosquitto; a subscriber receives each reading exactly once, with the value the sensor measured,
across a power cut of the node."""

from __future__ import annotations

import asyncio
import json
import tomllib
from collections.abc import Callable
from pathlib import Path

import aiomqtt

from gonggi_emu.broker import Mosquitto
from gonggi_gateway.config import parse_config
from gonggi_gateway.service import Gateway
from gonggi_gateway.state import Snapshot
from gonggi_tools.fleet import EmulatedNode, NodeSpec, gateway_toml, registry_toml

GATEWAY = "gw-hil"
NODE = "hil-01"
# The cell discharges from 4.10 V to 3.60 V over ten minutes of board time.
RAMP = [[0, 4.10], [600, 3.60]]
SLOPE_V_PER_S = (RAMP[1][1] - RAMP[0][1]) / (RAMP[1][0] - RAMP[0][0])
# The ESP32 ADC at 11 dB reads to a few mV after calibration; the divider doubles it.
ADC_TOLERANCE_V = 0.02


class Subscriber:
    """A downstream consumer of the gateway's SenML topics."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker
        self.packets: list[list[dict[str, object]]] = []
        self.ready = asyncio.Event()
        self._changed = asyncio.Event()

    async def run(self) -> None:
        async with aiomqtt.Client(self.broker.host, self.broker.port, identifier="hil-consumer") as client:
            await client.subscribe(f"gonggi/{GATEWAY}/+/senml", qos=1)
            self.ready.set()
            async for msg in client.messages:
                self.packets.append(json.loads(bytes(msg.payload)))  # type: ignore[arg-type]
                self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self._changed.clear()
            await self._changed.wait()


def battery_spec() -> NodeSpec:
    return NodeSpec.make(
        NODE,
        sensors=[{"driver": "battery", "pin": 35}],
        bench={"device": [{"kind": "battery", "bus": "adc35"}]},
        scenario={"values": {"battery_v": RAMP}},
        settings={"sample_s": 1, "report_s": 2},
    )


async def test_readings_reach_the_broker_exactly_once_across_a_power_cut(tmp_path: Path) -> None:
    spec = battery_spec()
    registry = tmp_path / "nodes.toml"
    registry.write_text(registry_toml([spec]))
    async with Mosquitto(tmp_path / "broker") as broker, EmulatedNode(spec, tmp_path) as node:
        sub = Subscriber(broker)
        consumer = asyncio.create_task(sub.run())
        await sub.ready.wait()
        text = gateway_toml(GATEWAY, ports=[node.data_port], registry=registry, spool=tmp_path / "spool.sqlite",
                            mqtt=(broker.host, broker.port))
        config = parse_config(tomllib.loads(text), "gateway.toml", tmp_path)
        async with Gateway(config) as gateway:
            serving = asyncio.create_task(gateway.run())
            await sub.wait_for(lambda: len(sub.packets) >= 3)
            await node.board.power_cycle()
            await gateway.wait_until(lambda s: s.nodes[NODE].boot == 2)
            before = len(sub.packets)
            await sub.wait_for(lambda: len(sub.packets) >= before + 3)

            def drained(s: Snapshot) -> bool:
                return s.spool_depth == 0 and len(sub.packets) == s.nodes[NODE].packets

            snap = await gateway.wait_until(drained)
            serving.cancel()
            consumer.cancel()
            await asyncio.gather(serving, consumer, return_exceptions=True)

    assert snap.nodes[NODE].rejected == {}
    readings = [
        (float(record["t"]), float(record["v"]))  # type: ignore[arg-type]
        for packet in sub.packets
        for record in packet
        if record["n"] == "bat.v"
    ]
    assert packet_base_names(sub.packets) == {f"urn:dev:gonggi:{NODE}:"}
    # Exactly once: no reading twice, in order, and none missing: reports are 2 s apart on the
    # node's clock, except across the power cut.
    times = [t for t, _ in readings]
    assert len(times) == len(set(times))
    assert times == sorted(times)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert sum(1 for g in gaps if not 1.5 <= g <= 2.5) <= 1, gaps
    # The values the cell had when each reading was taken: the ramp, read through the ADC.
    t0, v0 = readings[0]
    assert abs(v0 - RAMP[0][1]) <= ADC_TOLERANCE_V
    for t, v in readings:
        assert abs(v - (v0 + SLOPE_V_PER_S * (t - t0))) <= ADC_TOLERANCE_V / 2, (t - t0, v)


def packet_base_names(packets: list[list[dict[str, object]]]) -> set[object]:
    return {packet[0]["bn"] for packet in packets}
