"""The MQTT uplink against a real mosquitto: QoS 1, one message per packet, and a broker outage."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiomqtt
import pytest

from gonggi_emu import broker as broker_module
from gonggi_emu.broker import BrokerError, Mosquitto
from gonggi_gateway.config import Batching, MqttConfig
from gonggi_gateway.retry import Backoff
from gonggi_gateway.spool import NewPacket, Spool
from gonggi_gateway.state import Pulse
from gonggi_gateway.uplinks import Drainer
from gonggi_gateway.uplinks.mqtt import MqttUplink

GATEWAY = "gw-test"


def packet(node: str, seq: int) -> NewPacket:
    records = [{"bn": f"urn:dev:gonggi:{node}:", "n": "bat.v", "u": "V", "v": 3.9, "t": 1764000000 + seq}]
    return NewPacket(node, 1, seq, 1764000000.0 + seq, b"cose", json.dumps(records))


class Subscriber:
    """A downstream consumer with a persistent session (QoS 1): it misses nothing across restarts."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker
        self.messages: list[tuple[str, bytes, bool]] = []
        self.subscribed = asyncio.Event()
        self.reconnect = asyncio.Event()
        self.client: aiomqtt.Client | None = None
        self._changed = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(self.broker.host, self.broker.port, identifier="test-consumer",
                                          clean_session=False) as client:
                    self.client = client
                    await client.subscribe("gonggi/#", qos=1)
                    self.subscribed.set()
                    async for msg in client.messages:
                        self.messages.append((str(msg.topic), bytes(msg.payload), msg.retain))  # type: ignore[arg-type]
                        self._changed.set()
            except aiomqtt.MqttError:
                self.subscribed.clear()
                self.reconnect.clear()
                await self.reconnect.wait()  # the test restarts the broker, then says so

    async def flush(self) -> None:
        """Returns once the broker has processed our PUBACKs: it answers in order on a connection."""
        assert self.client is not None
        await self.client.publish("test/flush", b"", qos=1)

    def data(self) -> list[tuple[str, dict[str, object]]]:
        return [(t, json.loads(p)[0]) for t, p, _ in self.messages if t.endswith("/senml")]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self._changed.clear()
            await self._changed.wait()


async def with_broker(tmp_path: Path, body: Callable[[Mosquitto, Spool, Subscriber, Pulse], Awaitable[None]]) -> None:
    async with Mosquitto(tmp_path / "broker") as broker, Spool(tmp_path / "spool.sqlite", ["mqtt"]) as spool:
        sub = Subscriber(broker)
        consumer = asyncio.create_task(sub.run())
        await sub.subscribed.wait()
        config = MqttConfig(host=broker.host, port=broker.port, client_id=f"gonggi-{GATEWAY}")
        async with MqttUplink(config, GATEWAY, timeout=5) as uplink:
            progress = Pulse()
            drainer = Drainer(spool, uplink, batching=Batching(7), backoff=Backoff(0.05, 0.2), on_change=progress.fire)
            draining = asyncio.create_task(drainer.run())
            try:
                await asyncio.wait_for(body(broker, spool, sub, progress), 20)
            finally:
                draining.cancel()
                consumer.cancel()
                await asyncio.gather(draining, consumer, return_exceptions=True)


def test_every_packet_arrives_once_then_leaves_the_spool(tmp_path: Path) -> None:
    async def body(broker: Mosquitto, spool: Spool, sub: Subscriber, progress: Pulse) -> None:
        await spool.commit([packet(node, seq) for seq in range(10) for node in ("n1", "n2")])
        await sub.wait_for(lambda: len(sub.data()) >= 20)
        data = sub.data()
        assert len(data) == 20
        assert {t for t, _ in data} == {f"gonggi/{GATEWAY}/n1/senml", f"gonggi/{GATEWAY}/n2/senml"}
        for node in ("n1", "n2"):
            times = [r["t"] for t, r in data if t == f"gonggi/{GATEWAY}/{node}/senml"]
            assert times == [1764000000 + s for s in range(10)]  # in order
        assert data[0][1] == {"bn": "urn:dev:gonggi:n1:", "n": "bat.v", "u": "V", "v": 3.9, "t": 1764000000}
        assert (f"gonggi/{GATEWAY}/status", b"online", False) in sub.messages
        while spool.depth():  # confirmed after the PUBACKs
            await progress.wait()
        assert spool.stats().pending == {"mqtt": 0}

    asyncio.run(with_broker(tmp_path, body))


def test_a_broker_outage_keeps_rows_spooled_and_delivers_them_in_order_afterwards(tmp_path: Path) -> None:
    async def body(broker: Mosquitto, spool: Spool, sub: Subscriber, progress: Pulse) -> None:
        await spool.commit([packet("n1", 0), packet("n2", 0)])
        await sub.wait_for(lambda: len(sub.data()) == 2)
        await sub.flush()  # else the broker redelivers these two after its restart, as QoS 1 allows
        await broker.stop()
        await spool.commit([packet(node, seq) for seq in range(1, 15) for node in ("n1", "n2")])
        assert spool.depth() >= 28  # nowhere to go: everything stays spooled
        await broker.start()
        sub.reconnect.set()
        await sub.wait_for(lambda: len(sub.data()) >= 30)
        data = sub.data()
        for node in ("n1", "n2"):
            times = [r["t"] for t, r in data if t == f"gonggi/{GATEWAY}/{node}/senml"]
            assert times == [1764000000 + s for s in range(15)]  # each once, in order
        assert len(data) == 30

    asyncio.run(with_broker(tmp_path, body))


def test_a_broker_stopping_mid_batch_loses_nothing(tmp_path: Path) -> None:
    async def body(broker: Mosquitto, spool: Spool, sub: Subscriber, progress: Pulse) -> None:
        await spool.commit([packet(node, seq) for seq in range(200) for node in ("n1", "n2")])
        await sub.wait_for(lambda: len(sub.data()) >= 50)
        await broker.stop()  # PUBACKs of the batch in flight never come: that batch is sent again
        await broker.start()
        sub.reconnect.set()
        while spool.depth():
            await progress.wait()
        await sub.wait_for(lambda: {(t, r["t"]) for t, r in sub.data()} >= expected)
        for node in ("n1", "n2"):
            times = [r["t"] for t, r in sub.data() if t == f"gonggi/{GATEWAY}/{node}/senml"]
            firsts = list(dict.fromkeys(times))  # QoS 1 may repeat a message; the order holds
            assert firsts == [1764000000 + s for s in range(200)]

    expected = {(f"gonggi/{GATEWAY}/{node}/senml", 1764000000 + s) for s in range(200) for node in ("n1", "n2")}
    asyncio.run(with_broker(tmp_path, body))


def test_a_missing_mosquitto_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker_module, "_CANDIDATES", ())
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError, match=r"mosquitto is not installed \(Debian/Ubuntu: sudo apt-get install mosquitto\)"):
        Mosquitto(tmp_path)
