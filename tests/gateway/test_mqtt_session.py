"""The MQTT uplink's session against a real mosquitto: persistent, with a last will, and Home
Assistant discovery that makes each node's channels appear by themselves, named as the node
registry names them, and follows the registry's edits."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import replace
from pathlib import Path

import aiomqtt

from gateway_helpers import KEY, MemoryLink, SimNode
from gonggi_emu.broker import Mosquitto
from gonggi_gateway.config import MqttConfig, load_config
from gonggi_gateway.registry import NodeInfo, edit_registry
from gonggi_gateway.service import Gateway
from gonggi_gateway.spool import NewPacket, SpooledPacket
from gonggi_gateway.uplinks.ha_discovery import DeviceInfo, Discovery, ha_unit
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


async def retained_now(broker: Mosquitto, pattern: str) -> dict[str, bytes]:
    """Every retained message on ``pattern`` now: the broker sends them all before a later publish."""
    found: dict[str, bytes] = {}
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe([(pattern, 1), ("test/marker", 1)])
        await client.publish("test/marker", b"", qos=1)
        async for msg in client.messages:
            if str(msg.topic) == "test/marker":
                return found
            found[str(msg.topic)] = bytes(msg.payload)  # type: ignore[arg-type]
    raise AssertionError("unreachable")


async def until_data(watcher: aiomqtt.Client, node: str) -> list[tuple[str, bytes]]:
    """What the watcher got up to (and with) the next data of ``node``, status aside."""
    got: list[tuple[str, bytes]] = []
    async for msg in watcher.messages:
        if not str(msg.topic).endswith("/status"):
            got.append((str(msg.topic), bytes(msg.payload)))  # type: ignore[arg-type]
        if str(msg.topic) == f"gonggi/{GATEWAY}/{node}/senml":
            return got
    raise AssertionError("unreachable")


def test_home_assistant_names_each_device_from_the_registry_and_follows_its_edits(tmp_path: Path) -> None:
    registry = tmp_path / "nodes.toml"
    edit_registry(registry, lambda _: {"gg-one": NodeInfo("gg-one", KEY, "Jongno-gu 3", "Jongno-gu"),
                                       "gg-two": NodeInfo("gg-two", KEY)})
    topics = {n: [f"homeassistant/sensor/{n}/bat_v/config", f"homeassistant/sensor/{n}/bat_n/config"]
              for n in ("gg-one", "gg-two")}

    def devices(messages: list[tuple[str, bytes]]) -> list[tuple[str, dict[str, object]]]:
        return [(t, json.loads(p)["device"]) for t, p in messages if t.startswith("homeassistant/")]

    async def main() -> None:
        async with Mosquitto(tmp_path / "broker") as broker:
            (tmp_path / "gateway.toml").write_text(
                f'[gateway]\nid = "{GATEWAY}"\n\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
                "ha_discovery = true\n\n[http]\nenabled = false\n")
            async with (aiomqtt.Client(broker.host, broker.port) as watcher,
                        Gateway(load_config(tmp_path / "gateway.toml")) as gateway):
                await watcher.subscribe("#", qos=1)
                running = asyncio.create_task(gateway.run())
                one, two = SimNode(node_id="gg-one"), SimNode(node_id="gg-two")
                links = {n: MemoryLink(name=f"ble:{n}") for n in ("gg-one", "gg-two")}
                served = [asyncio.create_task(gateway.serve_link(link)) for link in links.values()]
                try:
                    links["gg-one"].deliver(one.hello_frame())  # its firmware version: the device's sw_version
                    await gateway.wait_until(lambda s: s.nodes["gg-one"].firmware == "0.1.0")

                    # A named node: its registry name and location; an unnamed one: its id. Ids are the node's.
                    links["gg-one"].deliver(one.data_frame(0))
                    first = await until_data(watcher, "gg-one")
                    device = {"identifiers": ["gonggi_gg-one"], "name": "Jongno-gu 3", "manufacturer": "gonggi",
                              "model": f"gonggi node (via gateway {GATEWAY})", "suggested_area": "Jongno-gu",
                              "sw_version": "0.1.0"}
                    assert devices(first) == [(t, device) for t in topics["gg-one"]]
                    assert json.loads(first[0][1])["unique_id"] == "gonggi_gg-one_bat_v"
                    links["gg-two"].deliver(two.data_frame(0))
                    assert devices(await until_data(watcher, "gg-two")) == [
                        (t, {"identifiers": ["gonggi_gg-two"], "name": "gg-two", "manufacturer": "gonggi",
                             "model": f"gonggi node (via gateway {GATEWAY})"}) for t in topics["gg-two"]]

                    # Nothing changed: the data alone.
                    links["gg-one"].deliver(one.data_frame(1))
                    assert [t for t, _ in await until_data(watcher, "gg-one")] == [f"gonggi/{GATEWAY}/gg-one/senml"]

                    # Renamed by an operator, gateway running: its configs again, once, with the new name.
                    edit_registry(registry, lambda nodes: {**nodes,
                                                           "gg-one": replace(nodes["gg-one"], name="Jongno rooftop")})
                    links["gg-one"].deliver(one.data_frame(2))
                    renamed = {**device, "name": "Jongno rooftop"}
                    assert devices(await until_data(watcher, "gg-one")) == [(t, renamed) for t in topics["gg-one"]]
                    links["gg-one"].deliver(one.data_frame(3))
                    assert [t for t, _ in await until_data(watcher, "gg-one")] == [f"gonggi/{GATEWAY}/gg-one/senml"]

                    # Removed from the registry: its entities go, with the next batch of any node.
                    edit_registry(registry, lambda nodes: {"gg-one": nodes["gg-one"]})
                    links["gg-one"].deliver(one.data_frame(4))
                    removal = await until_data(watcher, "gg-one")
                    assert removal[:-1] == [(t, b"") for t in topics["gg-two"]]
                    assert removal[-1][0] == f"gonggi/{GATEWAY}/gg-one/senml"
                finally:
                    for task in (running, *served):
                        task.cancel()
                    await asyncio.gather(running, *served, return_exceptions=True)
            kept = await retained_now(broker, "homeassistant/#")
            assert sorted(kept) == sorted(topics["gg-one"])
            assert all(json.loads(p)["device"]["name"] == "Jongno rooftop" for p in kept.values())

    asyncio.run(asyncio.wait_for(main(), 30))


def test_discovery_announces_again_after_a_reconnection_a_new_unit_or_a_return_to_the_registry() -> None:
    registry: dict[str, DeviceInfo] = {"gg-1": DeviceInfo("North")}
    discovery = Discovery("ha", GATEWAY, lambda n: f"gonggi/{GATEWAY}/{n}/senml", "status", registry.get)

    def publish(*batch: tuple[str, list[dict[str, object]]]) -> dict[str, bytes]:
        announcement = discovery.plan(batch)
        discovery.confirm(announcement)
        return announcement.messages

    volts = [{"n": "bat.v", "u": "V", "v": 3.9}, {"n": "bat.n", "v": 3}, {"n": "id", "vs": "x"}]
    assert list(publish(("gg-1", volts))) == ["ha/sensor/gg-1/bat_v/config", "ha/sensor/gg-1/bat_n/config"]
    assert publish(("gg-1", volts)) == {}
    discovery.reset()  # a new connection: the broker may have lost them
    assert list(publish()) == ["ha/sensor/gg-1/bat_v/config", "ha/sensor/gg-1/bat_n/config"]
    millivolts = publish(("gg-1", [{"n": "bat.v", "u": "mV", "v": 3900}]))
    assert [(t, json.loads(p)["unit_of_measurement"]) for t, p in millivolts.items()] == [
        ("ha/sensor/gg-1/bat_v/config", "mV")]
    del registry["gg-1"]
    removed = dict.fromkeys(["ha/sensor/gg-1/bat_v/config", "ha/sensor/gg-1/bat_n/config"], b"")
    assert publish(("gg-1", volts)) == removed  # left the registry: empty retained payloads
    assert publish(("gg-1", volts)) == {}  # its spooled data still goes out, unannounced
    registry["gg-1"] = DeviceInfo("North")
    assert list(publish(("gg-1", [{"n": "bat.v", "u": "V", "v": 3.9}]))) == ["ha/sensor/gg-1/bat_v/config"]
