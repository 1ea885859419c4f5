"""Home Assistant MQTT discovery: each node becomes a device, each of its channels a sensor.

One retained config message per (node, channel), on
``<discovery prefix>/sensor/<node>/<channel>/config`` (ids reduced to the letters, digits, ``_``
and ``-`` discovery allows). The sensor reads its value from the node's own SenML topic with a
template that picks its record, so nothing is published twice; a packet without that channel
renders nothing, which Home Assistant ignores for a numeric sensor (every one here has a
``state_class``). Availability follows the gateway's retained ``online``/``offline`` status.

The device carries the node's registry name and location (``describe``, from the gateway), so
``Discovery`` announces a node's channels again when they change, and removes them (empty
retained payloads) when the node leaves the registry. Ids stay the node id's: a rename keeps
the entities and their history. See docs/mqtt.md, "Home Assistant".
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Announcement", "Describe", "DeviceInfo", "Discovery", "by_node_id", "config_messages", "ha_unit"]

log = logging.getLogger(__name__)

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")
# SenML units (RFC 8428 registry) as Home Assistant writes them.
_UNITS = {"ug/m3": "µg/m³", "Cel": "°C", "%RH": "%", "um": "µm", "count": None}
# A channel's device class, by unit and the end of its name (the sensor's channel).
_CLASSES = {
    ("ug/m3", "pm1"): "pm1", ("ug/m3", "pm25"): "pm25", ("ug/m3", "pm10"): "pm10",
    ("Cel", ""): "temperature", ("%RH", ""): "humidity", ("Pa", ""): "pressure", ("V", ""): "voltage",
    ("ppm", "co2"): "carbon_dioxide", ("dB", ""): "sound_pressure",
}
_DIAGNOSTIC = ("n", "health")  # sample counts and health flags: details, not measurements


@dataclass(frozen=True)
class DeviceInfo:
    """What Home Assistant shows of a node's device, besides its fixed ids."""

    name: str = ""  # the registry's name; empty: the node id
    area: str = ""  # the registry's location, as suggested_area; empty: none
    firmware: str = ""  # from the node's last HELLO, as sw_version; empty: not known yet


# A node's device now, or None once the node has left the registry.
Describe = Callable[[str], DeviceInfo | None]
Channels = Mapping[str, str | None]  # a node's numeric channels: name -> SenML unit


def by_node_id(node_id: str) -> DeviceInfo:
    """The Describe without a registry: every node named by its id, never removed."""
    return DeviceInfo()


def _id(text: str) -> str:
    return _NOT_ALLOWED.sub("_", text)


def ha_unit(unit: str | None) -> str | None:
    """A SenML unit as Home Assistant's unit_of_measurement (None: no unit)."""
    if not unit:
        return None
    return _UNITS.get(unit, unit)


def _device_class(name: str, unit: str | None) -> str | None:
    channel = name.rsplit(".", 1)[-1]
    return _CLASSES.get((unit or "", channel)) or _CLASSES.get((unit or "", ""))


def _config_topic(discovery_prefix: str, node: str, channel: str) -> str:
    return f"{discovery_prefix}/sensor/{_id(node)}/{_id(channel)}/config"


def _device(gateway_id: str, node: str, device: DeviceInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "identifiers": [f"gonggi_{_id(node)}"],
        "name": device.name or node,
        "manufacturer": "gonggi",
        "model": f"gonggi node (via gateway {gateway_id})",
    }
    if device.area:
        out["suggested_area"] = device.area
    if device.firmware:
        out["sw_version"] = device.firmware
    return out


def config_messages(discovery_prefix: str, state_topic: str, status_topic: str, gateway_id: str, node: str,
                    channels: Channels, device: DeviceInfo = DeviceInfo()) -> dict[str, bytes]:
    """Topic -> retained config payload for each of a node's numeric ``channels``."""
    out: dict[str, bytes] = {}
    for name, unit in channels.items():
        config: dict[str, Any] = {
            "name": name,
            "unique_id": f"gonggi_{_id(node)}_{_id(name)}",
            "state_topic": state_topic,
            "value_template": "{% for r in value_json if r.n == " + json.dumps(name)
                              + " %}{% if loop.last %}{{ r.v }}{% endif %}{% endfor %}",
            "state_class": "measurement",
            "availability_topic": status_topic,
            "device": _device(gateway_id, node, device),
        }
        if ha_unit(unit) is not None:
            config["unit_of_measurement"] = ha_unit(unit)
        device_class = _device_class(name, unit)
        if device_class is not None:
            config["device_class"] = device_class
        if name.rsplit(".", 1)[-1] in _DIAGNOSTIC:
            config["entity_category"] = "diagnostic"
        out[_config_topic(discovery_prefix, node, name)] = json.dumps(
            config, separators=(",", ":"), ensure_ascii=False).encode()
    return out


@dataclass(frozen=True)
class Announcement:
    """The discovery messages one batch needs, and what the broker holds once they are confirmed."""

    messages: dict[str, bytes]  # topic -> retained payload; empty removes the entity
    announced: dict[str, tuple[DeviceInfo, dict[str, str | None]]]  # node -> its device and channels
    removed: frozenset[str]  # nodes whose entities the empty payloads remove


class Discovery:
    """Which discovery configs to publish: bookkeeping only, the MQTT uplink publishes them.

    A node's configs go out when the broker lacks them on this connection: a channel seen for the
    first time, and every channel of a node whose device changed (``describe``: renamed, moved,
    new firmware), checked on every batch. A node that left the registry gets an empty retained
    payload on each config topic this gateway published for it since it started, which removes the
    entities (and the device with its last one) from Home Assistant.
    """

    def __init__(self, discovery_prefix: str, gateway_id: str, state_topic: Callable[[str], str],
                 status_topic: str, describe: Describe) -> None:
        self._prefix = discovery_prefix
        self._gateway_id = gateway_id
        self._state_topic = state_topic
        self._status_topic = status_topic
        self._describe = describe
        self._channels: dict[str, dict[str, str | None]] = {}  # every numeric channel seen since start
        self._confirmed: dict[str, tuple[DeviceInfo, dict[str, str | None]]] = {}  # on this connection

    def reset(self) -> None:
        """A new connection: announce everything again (the broker may have lost retained messages)."""
        self._confirmed.clear()

    def plan(self, batch: Iterable[tuple[str, Sequence[Mapping[str, Any]]]]) -> Announcement:
        """The messages to publish, before the data, for a batch of (node, SenML JSON records)."""
        devices: dict[str, DeviceInfo | None] = {}

        def device(node: str) -> DeviceInfo | None:
            if node not in devices:
                devices[node] = self._describe(node)
            return devices[node]

        for node, records in batch:
            if device(node) is None:
                continue  # left the registry: its spooled data still goes out, unannounced
            channels = self._channels.setdefault(node, {})
            for r in records:
                name = r.get("n")
                if isinstance(name, str) and "v" in r:  # text, boolean and data values are not sensors
                    channels[name] = r.get("u")
        messages: dict[str, bytes] = {}
        announced: dict[str, tuple[DeviceInfo, dict[str, str | None]]] = {}
        removed: set[str] = set()
        for node, channels in self._channels.items():
            now = device(node)
            if now is None:
                messages.update(dict.fromkeys((_config_topic(self._prefix, node, c) for c in channels), b""))
                removed.add(node)
                continue
            before = self._confirmed.get(node)
            if before == (now, channels):
                continue
            if before is not None and before[0] == now:  # same device: the channels new or with a new unit
                changed = {c: u for c, u in channels.items() if c not in before[1] or before[1][c] != u}
            else:
                changed = dict(channels)
            messages.update(config_messages(self._prefix, self._state_topic(node), self._status_topic,
                                            self._gateway_id, node, changed, now))
            announced[node] = (now, dict(channels))
        return Announcement(messages, announced, frozenset(removed))

    def confirm(self, announcement: Announcement) -> None:
        """The broker acknowledged every message of ``announcement``."""
        self._confirmed.update(announcement.announced)
        for node in announcement.removed:
            log.info("ha discovery: node %s left the registry, its %d entities removed",
                     node, len(self._channels.get(node, ())))
            self._channels.pop(node, None)
            self._confirmed.pop(node, None)
