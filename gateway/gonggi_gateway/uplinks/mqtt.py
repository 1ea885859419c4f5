"""MQTT uplink (aiomqtt, QoS 1): one message per packet, confirmed by the broker's PUBACK.

Topic ``<topic_prefix>/<gateway id>/<node id>/senml``, payload the packet's SenML JSON array;
``<topic_prefix>/<gateway id>/status`` holds a retained ``online``/``offline`` (the latter also
as the connection's will). With ``ha_discovery``, each node's channels are announced to Home
Assistant (retained, before the first data that carries them, once per connection and again when
the node's registry entry changes; removed when it leaves the registry). See docs/mqtt.md.
The session is persistent (a fixed client id, clean session off), so the broker keeps its state
for the gateway across reconnections. The connection is opened on the first send and dropped on
any error; the drainer's backoff paces the reconnects while rows stay spooled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import aiomqtt

from gonggi_gateway.config import MqttConfig
from gonggi_gateway.errors import UplinkError
from gonggi_gateway.spool import SpooledPacket
from gonggi_gateway.uplinks.base import Uplink
from gonggi_gateway.uplinks.ha_discovery import Describe, Discovery, by_node_id

__all__ = ["MqttUplink"]

log = logging.getLogger(__name__)


class MqttUplink(Uplink):
    name = "mqtt"

    def __init__(self, config: MqttConfig, gateway_id: str, *, timeout: float = 10.0,
                 describe: Describe = by_node_id) -> None:
        """``describe``: a node's Home Assistant device (registry name, location, firmware), or
        None once it left the registry; asked on every batch when ``ha_discovery`` is on."""
        self.config = config
        self.gateway_id = gateway_id
        self._timeout = timeout  # for connect and for each PUBACK
        self.batching = config.batch
        self._client: aiomqtt.Client | None = None
        self._watch: asyncio.Task[None] | None = None
        self._discovery = Discovery(config.ha_discovery_prefix, gateway_id, self.topic, self.status_topic,
                                    describe) if config.ha_discovery else None

    def topic(self, node_id: str) -> str:
        return f"{self.config.topic_prefix}/{self.gateway_id}/{node_id}/senml"

    @property
    def status_topic(self) -> str:
        return f"{self.config.topic_prefix}/{self.gateway_id}/status"

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.publish(self.status_topic, b"offline", qos=1, retain=True, timeout=1.0)
        await self._disconnect()

    async def _connect(self) -> aiomqtt.Client:
        if self._watch is not None and self._watch.done():  # dropped while idle
            await self._disconnect()
        if self._client is not None:
            return self._client
        cfg = self.config
        client = aiomqtt.Client(
            cfg.host, cfg.port, identifier=cfg.client_id, username=cfg.username, password=cfg.password,
            keepalive=cfg.keepalive, timeout=self._timeout, clean_session=False,
            will=aiomqtt.Will(self.status_topic, b"offline", qos=1, retain=True),
            # A whole batch in flight, each publish on the wire at once: paho's default window
            # (20) and Nagle's delay with the broker's delayed ACKs cost a backlog ~40 ms a wave.
            max_inflight_messages=max(20, cfg.batch.size),
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise UplinkError(f"MQTT broker {cfg.host}:{cfg.port}: cannot connect: {exc}") from exc
        client.pending_calls_threshold = 1 << 20  # a whole batch in flight is the plan, not a leak
        self._client = client
        if self._discovery is not None:
            self._discovery.reset()  # a broker that lost its retained messages gets them again
        self._watch = asyncio.create_task(self._watch_disconnect(client))
        log.info("mqtt connected broker=%s:%d client_id=%s", cfg.host, cfg.port, cfg.client_id)
        try:
            await client.publish(self.status_topic, b"online", qos=1, retain=True)
        except aiomqtt.MqttError as exc:
            await self._disconnect()
            raise UplinkError(f"MQTT broker {cfg.host}:{cfg.port}: {exc}") from exc
        return client

    @staticmethod
    async def _watch_disconnect(client: aiomqtt.Client) -> None:
        # Nothing is subscribed, so the message iterator only ends, with MqttError, when the
        # connection drops: aiomqtt's public signal for it. A pending PUBACK wait would not notice.
        async for _ in client.messages:
            pass

    async def _disconnect(self) -> None:
        client, watch = self._client, self._watch
        self._client = self._watch = None
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)

    async def send(self, batch: Sequence[SpooledPacket]) -> None:
        client = await self._connect()
        assert self._watch is not None
        discovery = self._discovery
        announcement = discovery.plan((p.node, json.loads(p.records)) for p in batch) if discovery else None
        announce = announcement.messages if announcement is not None else {}
        # All publishes go out at once, in order (paho queues them beyond its in-flight window):
        # a channel's discovery config before the data that carries it. The batch counts as
        # delivered when every PUBACK is in.
        publishes = asyncio.gather(
            *(client.publish(topic, payload, qos=1, retain=True) for topic, payload in announce.items()),
            *(client.publish(self.topic(p.node), p.records.encode(), qos=self.config.qos) for p in batch),
        )
        racing: set[asyncio.Future[Any]] = {publishes, self._watch}
        try:
            done, _ = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
            if publishes in done and publishes.exception() is None:
                if discovery is not None and announcement is not None:
                    discovery.confirm(announcement)
                return
            reason = publishes.exception() if publishes in done else "connection lost"
        finally:
            publishes.cancel()  # and with it every publish still waiting for its PUBACK
            await asyncio.gather(publishes, return_exceptions=True)
        await self._disconnect()
        raise UplinkError(f"MQTT broker {self.config.host}:{self.config.port}: {reason}")
