"""Emulated devices, by the ``kind`` a bench file names them with.

``REGISTRY`` maps kind -> "module:Class", imported only when a bench uses the kind. One line per
device: add yours in order.
"""

from __future__ import annotations

import importlib
from typing import Any

from gonggi_emu.devices.base import Device
from gonggi_emu.scenario import Scenario

__all__ = ["REGISTRY", "create"]

REGISTRY: dict[str, str] = {
    "battery": "gonggi_emu.devices.battery:Battery",
    "bme280": "gonggi_emu.devices.bme280:BME280",
    "microphone": "gonggi_emu.devices.microphone:Microphone",
    "pms5003": "gonggi_emu.devices.pms5003:PMS5003Emu",
    "pms7003": "gonggi_emu.devices.pms5003:PMS7003Emu",
    "scd40": "gonggi_emu.devices.scd4x:SCD40",
    "scd41": "gonggi_emu.devices.scd4x:SCD41",
    "sds011": "gonggi_emu.devices.sds011:SDS011Emu",
    "sgp40": "gonggi_emu.devices.sgp40:SGP40",
    "sps30": "gonggi_emu.devices.sps30:SPS30",
}


def create(kind: str, scenario: Scenario, name: str | None = None, **options: Any) -> Device:
    """Build the device ``kind`` (a REGISTRY key) with its bench options."""
    module, _, cls = REGISTRY[kind].partition(":")
    device: Device = getattr(importlib.import_module(module), cls)(scenario, name=name, **options)
    return device
