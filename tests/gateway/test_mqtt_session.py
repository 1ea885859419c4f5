"""The MQTT uplink's session against a real mosquitto: persistent, with a last will, and Home
Assistant discovery that makes each node's channels appear by themselves."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import aiomqtt

from gonggi_emu.broker import Mosquitto
from gonggi_gateway.config import MqttConfig
from gonggi_gateway.spool import NewPacket, SpooledPacket
from gonggi_gateway.uplinks.ha_discovery import ha_unit
from gonggi_gateway.uplinks.mqtt import MqttUplink

GATEWAY = "gw-ha"


def row(node: str, seq: int, records: list[dict[str, object]]) -> SpooledPacket:
    records = [{"bn": f"urn:dev:gonggi:{node}:", **records[0]}, *records[1:]]
    return SpooledPacket(seq + 1, *NewPacket(node, 1, seq, 0.0, b"cose", json.dumps(records))[:6])


async def retained(broker: Mosquitto, pattern: str, count: int) -> dict[str, bytes]:
    """What a newcomer gets on ``pattern``: the retained messages (``count`` of them)."""
    found: dict[str, bytes] = {}
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(pattern, qos=1)
        async for msg in client.messages:
            assert msg.retain
            found[str(msg.topic)] = bytes(msg.payload)  # type: ignore[arg-type]
            if len(found) == count:
                return found
    raise AssertionError("unreachable")


def test_a_persistent_session_with_online_status_and_offline_as_the_last_will(tmp_path: Path) -> None:
    async def main() -> None:
        async with Mosquitto(tmp_path / "broker") as broker:
            config = MqttConfig(host=broker.host, port=broker.port, client_id=f"gonggi-{GATEWAY}")
            async with MqttUplink(config, GATEWAY, timeout=5) as uplink:
                await uplink.send([row("gg-1", 0, [{"n": "bat.v", "u": "V", "v": 3.9, "t": 1}])])
                assert await retained(broker, "gonggi/+/status", 1) == {f"gonggi/{GATEWAY}/status": b"online"}
                # Clean session off (c0), with a fixed client id: the broker keeps the session.
                assert f"as gonggi-{GATEWAY} (p2, c0, k60" in broker.log_path.read_text()
                # The gateway vanishes (power cut): no DISCONNECT, the broker publishes the will.
                async with aiomqtt.Client(broker.host, broker.port) as watcher:
                    await watcher.subscribe(f"gonggi/{GATEWAY}/status", qos=1)
                    assert uplink._client is not None
                    uplink._client._client.socket().shutdown(socket.SHUT_RDWR)
                    async for msg in watcher.messages:
                        if msg.payload == b"offline":
                            break
                assert await retained(broker, "gonggi/+/status", 1) == {f"gonggi/{GATEWAY}/status": b"offline"}

    asyncio.run(asyncio.wait_for(main(), 30))


def test_home_assistant_discovers_every_channel_of_every_node_before_its_data(tmp_path: Path) -> None:
    async def main() -> None:
        async with Mosquitto(tmp_path / "broker") as broker:
            config = MqttConfig(host=broker.host, port=broker.port, client_id=f"gonggi-{GATEWAY}", ha_discovery=True)
            messages: list[tuple[str, bytes]] = []
            async with aiomqtt.Client(broker.host, broker.port) as watcher:
                await watcher.subscribe("#", qos=1)
                async with MqttUplink(config, GATEWAY, timeout=5) as uplink:
                    await uplink.send([
                        row("gg.a-1", 0, [{"n": "pms.pm25", "u": "ug/m3", "v": 12.5, "t": 1},
                                          {"n": "bme.t", "u": "Cel", "v": -5.25, "t": 1},
                                          {"n": "pms.health", "v": 0, "t": 1}]),
                        row("gg.a-1", 1, [{"n": "pms.pm25", "u": "ug/m3", "v": 13.0, "t": 2}]),
                        row("gg-b", 0, [{"n": "bat.v", "u": "V", "v": 3.9, "t": 1}, {"n": "id", "vs": "x", "t": 1}]),
                    ])
                    await uplink.send([row("gg-b", 1, [{"n": "bat.v", "u": "V", "v": 3.8, "t": 2}])])
                    async for msg in watcher.messages:
                        messages.append((str(msg.topic), bytes(msg.payload)))  # type: ignore[arg-type]
                        if sum(t.endswith("/senml") for t, _ in messages) == 4:
                            break
            topics = [t for t, _ in messages if not t.endswith("/status")]
            configs = [t for t in topics if t.startswith("homeassistant/")]
            assert configs == ["homeassistant/sensor/gg_a-1/pms_pm25/config", "homeassistant/sensor/gg_a-1/bme_t/config",
                               "homeassistant/sensor/gg_a-1/pms_health/config", "homeassistant/sensor/gg-b/bat_v/config"]
            assert topics.index(configs[-1]) < topics.index(f"gonggi/{GATEWAY}/gg-b/senml")  # config first
            pm25 = json.loads(dict(messages)["homeassistant/sensor/gg_a-1/pms_pm25/config"])
            assert pm25 == {
                "name": "pms.pm25",
                "unique_id": "gonggi_gg_a-1_pms_pm25",
                "state_topic": f"gonggi/{GATEWAY}/gg.a-1/senml",
                "value_template": '{% for r in value_json if r.n == "pms.pm25" %}{% if loop.last %}{{ r.v }}'
                                  "{% endif %}{% endfor %}",
                "state_class": "measurement",
                "availability_topic": f"gonggi/{GATEWAY}/status",
                "device": {"identifiers": ["gonggi_gg_a-1"], "name": "gg.a-1", "manufacturer": "gonggi",
                           "model": f"gonggi node (via gateway {GATEWAY})"},
                "unit_of_measurement": "µg/m³",
                "device_class": "pm25",
            }
            health = json.loads(dict(messages)["homeassistant/sensor/gg_a-1/pms_health/config"])
            assert health["entity_category"] == "diagnostic" and "unit_of_measurement" not in health
            # Retained: a Home Assistant started later finds them all.
            assert len(await retained(broker, "homeassistant/#", 4)) == 4
            assert (ha_unit("Cel"), ha_unit("%RH"), ha_unit("Pa"), ha_unit(""), ha_unit("count")) == ("°C", "%", "Pa", None, None)

    asyncio.run(asyncio.wait_for(main(), 30))
