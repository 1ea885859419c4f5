"""Home Assistant MQTT discovery: each node becomes a device, each of its channels a sensor.

One retained config message per (node, channel), on
``<discovery prefix>/sensor/<node>/<channel>/config`` (ids reduced to the letters, digits, ``_``
and ``-`` discovery allows). The sensor reads its value from the node's own SenML topic with a
template that picks its record, so nothing is published twice; a packet without that channel
renders nothing, which Home Assistant ignores for a numeric sensor (every one here has a
``state_class``). Availability follows the gateway's retained ``online``/``offline`` status.
See docs/mqtt.md, "Home Assistant".
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["config_messages", "ha_unit"]

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


def config_messages(discovery_prefix: str, state_topic: str, status_topic: str, gateway_id: str, node: str,
                    records: list[dict[str, Any]]) -> dict[str, bytes]:
    """Topic -> retained config payload for every numeric channel in ``records`` (SenML JSON)."""
    out: dict[str, bytes] = {}
    for record in records:
        name = record.get("n")
        if not isinstance(name, str) or "v" not in record:
            continue
        unit = record.get("u")
        config: dict[str, Any] = {
            "name": name,
            "unique_id": f"gonggi_{_id(node)}_{_id(name)}",
            "state_topic": state_topic,
            "value_template": "{% for r in value_json if r.n == " + json.dumps(name)
                              + " %}{% if loop.last %}{{ r.v }}{% endif %}{% endfor %}",
            "state_class": "measurement",
            "availability_topic": status_topic,
            "device": {
                "identifiers": [f"gonggi_{_id(node)}"],
                "name": node,
                "manufacturer": "gonggi",
                "model": f"gonggi node (via gateway {gateway_id})",
            },
        }
        if ha_unit(unit) is not None:
            config["unit_of_measurement"] = ha_unit(unit)
        device_class = _device_class(name, unit)
        if device_class is not None:
            config["device_class"] = device_class
        if name.rsplit(".", 1)[-1] in _DIAGNOSTIC:
            config["entity_category"] = "diagnostic"
        topic = f"{discovery_prefix}/sensor/{_id(node)}/{_id(name)}/config"
        out[topic] = json.dumps(config, separators=(",", ":"), ensure_ascii=False).encode()
    return out
