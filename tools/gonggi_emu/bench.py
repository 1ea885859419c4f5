"""The bench: which emulated devices sit on which bus of the board, read from TOML.

::

    uid = "a4cf12345678"        # machine.unique_id(): 6 bytes, like an ESP32's MAC
    [[device]]
    kind = "battery"            # a key of gonggi_emu.devices.REGISTRY
    name = "battery"            # optional (defaults to kind); scenario faults name it
    bus = "adc35"               # "uart<N>" | "i2c<N>" | "adc<GPIO>" | "i2s<N>"
    options = { ratio = 2.0 }   # extra constructor keyword arguments
    pins = { set = 23 }         # optional: device pin role -> ESP32 GPIO it is wired to
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gonggi_emu.devices import REGISTRY

__all__ = ["ADC_GPIOS", "BUS_KINDS", "GPIOS", "Bench", "BenchError", "Bus", "DeviceSpec"]

# ESP32 GPIOs, and those wired to ADC1 (32-39) or ADC2 (0, 2, 4, 12-15, 25-27).
GPIOS = frozenset([*range(20), 21, 22, 23, 25, 26, 27, *range(32, 40)])
ADC_GPIOS = frozenset([*range(32, 40), 0, 2, 4, 12, 13, 14, 15, 25, 26, 27])
# Bus kind -> the numbers the ESP32 has of it.
BUS_KINDS: Mapping[str, frozenset[int]] = MappingProxyType(
    {"uart": frozenset({0, 1, 2}), "i2c": frozenset({0, 1}), "i2s": frozenset({0, 1}), "adc": ADC_GPIOS}
)
_BUS_RE = re.compile(r"(uart|i2c|i2s|adc)(\d+)")


class BenchError(ValueError):
    """A bench file or entry that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class Bus:
    kind: str  # "uart" | "i2c" | "i2s" | "adc"
    number: int  # UART/I2C/I2S id, or the GPIO of an ADC channel

    @classmethod
    def parse(cls, text: Any, where: str) -> Bus:
        match = _BUS_RE.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise BenchError(f'{where} = {text!r}; expected "uart<N>", "i2c<N>", "i2s<N>" or "adc<GPIO>"')
        kind, number = match[1], int(match[2])
        if number not in BUS_KINDS[kind]:
            allowed = ", ".join(str(n) for n in sorted(BUS_KINDS[kind]))
            raise BenchError(f"{where} = {text!r}; the ESP32 has {kind} {allowed}")
        return cls(kind, number)

    def __str__(self) -> str:
        return f"{self.kind}{self.number}"


@dataclass(frozen=True)
class DeviceSpec:
    kind: str
    name: str
    bus: Bus
    options: Mapping[str, Any] = field(default_factory=dict)
    pins: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Bench:
    uid: bytes | None = None
    devices: tuple[DeviceSpec, ...] = ()
    source: str = "bench"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "bench") -> Bench:
        unknown = set(raw) - {"uid", "device"}
        if unknown:
            raise BenchError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: uid, device")
        uid = _parse_uid(raw["uid"], f"{where}: uid") if "uid" in raw else None
        entries = raw.get("device", [])
        if not isinstance(entries, list):
            raise BenchError(f"{where}: device must be an array of tables ([[device]])")
        devices = tuple(_parse_device(e, f"{where}: device[{i}]") for i, e in enumerate(entries))
        _check_unique(devices, where)
        return cls(uid, devices, where)

    @classmethod
    def load(cls, path: Path) -> Bench:
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise BenchError(f"{path}: {exc}") from exc
        return cls.from_dict(raw, str(path))


def _parse_uid(value: Any, where: str) -> bytes:
    try:
        uid = bytes.fromhex(value)
    except (TypeError, ValueError):
        uid = b""
    if len(uid) != 6:
        raise BenchError(f"{where} = {value!r}; expected 12 hex digits (6 bytes, like a MAC)")
    return uid


def _parse_device(entry: Any, where: str) -> DeviceSpec:
    if not isinstance(entry, dict):
        raise BenchError(f"{where}: expected a table")
    unknown = set(entry) - {"kind", "name", "bus", "options", "pins"}
    if unknown:
        raise BenchError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: kind, name, bus, options, pins")
    kind = entry.get("kind")
    if kind not in REGISTRY:
        raise BenchError(f"{where}.kind = {kind!r}; allowed: {', '.join(sorted(REGISTRY))}")
    if "bus" not in entry:
        raise BenchError(f"{where}.bus is missing")
    bus = Bus.parse(entry["bus"], f"{where}.bus")
    name = entry.get("name", kind)
    if not isinstance(name, str) or not name:
        raise BenchError(f"{where}.name = {name!r}; expected a non-empty string")
    options = entry.get("options", {})
    if not isinstance(options, dict):
        raise BenchError(f"{where}.options: expected a table")
    pins = entry.get("pins", {})
    if not isinstance(pins, dict) or any(p not in GPIOS for p in pins.values()):
        raise BenchError(f"{where}.pins = {pins!r}; expected role = GPIO, with GPIO one of the ESP32's")
    return DeviceSpec(kind, name, bus, MappingProxyType(dict(options)), MappingProxyType(dict(pins)))


def _check_unique(devices: tuple[DeviceSpec, ...], where: str) -> None:
    names: set[str] = set()
    exclusive: set[Bus] = set()  # one device per UART, I2S bus and ADC pin (I2C is shared)
    gpios: set[int] = set()
    for i, spec in enumerate(devices):
        if spec.name in names:
            raise BenchError(f"{where}: device[{i}].name = {spec.name!r} is used twice")
        names.add(spec.name)
        if spec.bus.kind != "i2c":
            if spec.bus in exclusive:
                raise BenchError(f"{where}: device[{i}].bus = {str(spec.bus)!r} already has a device")
            exclusive.add(spec.bus)
        for role, gpio in spec.pins.items():
            if gpio in gpios:
                raise BenchError(f"{where}: device[{i}].pins.{role} = {gpio} is wired to another device")
            gpios.add(gpio)
