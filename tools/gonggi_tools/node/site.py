"""A site file: what the nodes of one site have and do, as TOML, turned into a node's config.json.

::

    [node]                      # optional; the firmware's defaults otherwise (docs/field-guide.md)
    sample_s = 5
    report_s = 60

    [link]                      # optional; default: serial on UART1 at 115200
    kind = "serial"
    uart = 1
    tx = 17
    rx = 16

    [[sensors]]
    driver = "bme280"           # one of DRIVERS
    i2c = 0                     # bus, pins and address: defaults as in firmware/sensors.py
    scl = 22
    sda = 21

Everything is checked before a board is touched, with errors that name the file and the key.
The firmware checks config.json again at boot (firmware/config.py): this is the early, friendlier
half of the same rules.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gonggi_tools.node.errors import SiteError

__all__ = ["DRIVERS", "NODE_SETTINGS", "SENSOR_KEYS", "DriverSpec", "I2cSensor", "Site", "load_site", "parse_site"]

# The node's positive-integer settings (firmware/config.py _INTS).
NODE_SETTINGS = ("sample_s", "report_s", "hello_s", "ring_slots", "slot_size", "window", "rto_ms", "wdt_ms")
LINK_KINDS = ("serial", "ble")
_GPIO = frozenset([*range(20), 21, 22, 23, 25, 26, 27, *range(32, 40)])
_INPUT_ONLY = frozenset(range(34, 40))
_Number = (int, float)


@dataclass(frozen=True)
class DriverSpec:
    bus: str  # "i2c" | "uart" | "adc" | "i2s": which keys place it
    address: int | None = None  # default I2C address (firmware/sensors.py)
    options: Mapping[str, Any] = field(default_factory=dict)  # key -> type(s)


# One entry per builder in firmware/sensors.py BUILDERS, with the keys that builder reads.
DRIVERS: Mapping[str, DriverSpec] = {
    "battery": DriverSpec("adc", options={"ratio": _Number}),
    "bme280": DriverSpec("i2c", 0x76),
    "noise": DriverSpec("i2s", options={"mic": str, "rate": int, "weighting": str, "equalise": bool,
                                        "offset_cdb": int, "block": int, "floor_cdb": int}),
    "pms5003": DriverSpec("uart", options={"passive": bool}),
    "pms7003": DriverSpec("uart", options={"passive": bool}),
    "scd4x": DriverSpec("i2c", 0x62, {"temp_offset_c": _Number, "altitude_m": int, "asc": bool, "single_shot": bool}),
    "sds011": DriverSpec("uart", options={"query": bool}),
    "sgp40": DriverSpec("i2c", 0x59),
    "sps30": DriverSpec("i2c", 0x69, {"clean_interval_s": int}),
}
_COMMON = {"driver": str, "name": str, "warmup_s": int, "window_s": int}
_BUS_KEYS: Mapping[str, Mapping[str, Any]] = {
    "i2c": {"i2c": int, "scl": int, "sda": int, "freq": int, "address": int},
    "uart": {"uart": int, "tx": int, "rx": int},
    "adc": {"pin": int},
    "i2s": {"i2s": int, "sck": int, "ws": int, "sd": int},
}
# Every key a sensor entry may have, whatever its driver.
SENSOR_KEYS = frozenset({*_COMMON, *(k for keys in _BUS_KEYS.values() for k in keys),
                         *(k for spec in DRIVERS.values() for k in spec.options)})
_LINK_KEYS: Mapping[str, Mapping[str, Any]] = {
    "serial": {"kind": str, "uart": int, "baudrate": int, "tx": int, "rx": int},
    "ble": {"kind": str},
}


@dataclass(frozen=True)
class I2cSensor:
    """Where an I2C sensor of the site should answer: what the bus scan checks."""

    name: str
    driver: str
    bus: int
    scl: int
    sda: int
    address: int

    def __str__(self) -> str:
        return f"{self.name} ({self.driver} at 0x{self.address:02x} on I2C{self.bus}, SCL {self.scl}, SDA {self.sda})"


@dataclass(frozen=True)
class Site:
    source: str
    settings: Mapping[str, int]
    link: Mapping[str, Any]
    sensors: tuple[Mapping[str, Any], ...]

    def config(self, node_id: str, key: bytes) -> dict[str, Any]:
        """The node's config.json."""
        return {"node_id": node_id, "key": key.hex(), **self.settings, "link": dict(self.link),
                "sensors": [dict(s) for s in self.sensors]}

    def i2c_sensors(self) -> list[I2cSensor]:
        out = []
        for s in self.sensors:
            spec = DRIVERS[s["driver"]]
            if spec.bus == "i2c":
                assert spec.address is not None
                out.append(I2cSensor(s.get("name", s["driver"]), s["driver"], s.get("i2c", 0), s.get("scl", 22),
                                     s.get("sda", 21), s.get("address", spec.address)))
        return out


def load_site(path: Path) -> Site:
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise SiteError(f"{path}: no such site file") from None
    except OSError as exc:
        raise SiteError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SiteError(f"{path}: not valid TOML: {exc}") from None
    return parse_site(raw, str(path))


def parse_site(raw: Mapping[str, Any], source: str) -> Site:
    _known(raw, {"node": dict, "link": dict, "sensors": list}, source, "")
    settings = dict(raw.get("node", {}))
    _known(settings, dict.fromkeys(NODE_SETTINGS, int), source, "node.")
    for key, value in settings.items():
        if value <= 0:
            raise SiteError(f"{source}: node.{key}: must be a positive integer, got {value}")
    if settings.get("sample_s", 5) > settings.get("report_s", 60):
        raise SiteError(f"{source}: node.sample_s must not exceed node.report_s")
    link = dict(raw.get("link", {"kind": "serial"}))
    kind = link.get("kind", "serial")
    if kind not in LINK_KINDS:
        raise SiteError(f"{source}: link.kind: {kind!r} is not one of {', '.join(LINK_KINDS)}")
    link["kind"] = kind
    _known(link, _LINK_KEYS[kind], source, "link.")
    _pins(link, ("tx",), ("rx",), source, "link.")
    link_uart = link.get("uart", 1) if kind == "serial" else None
    if link_uart is not None and link_uart not in (1, 2):
        raise SiteError(f"{source}: link.uart: {link_uart} is not 1 or 2 (UART0 is the REPL)")
    sensors = tuple(_sensor(s, i, source, link_uart) for i, s in enumerate(raw.get("sensors", [])))
    uarts = [s["uart"] for s in sensors if "uart" in s and DRIVERS[s["driver"]].bus == "uart"]
    for u in set(uarts):
        if uarts.count(u) > 1:
            raise SiteError(f"{source}: two sensors on UART{u}: each UART sensor needs a UART of its own")
    names = [s.get("name", s["driver"]) for s in sensors]
    for n in set(names):
        if names.count(n) > 1:
            raise SiteError(f"{source}: two sensors named {n!r}: give each a different name")
    return Site(source, settings, link, sensors)


def _sensor(raw: Any, i: int, source: str, link_uart: int | None) -> dict[str, Any]:
    where = f"sensors[{i}]."
    if not isinstance(raw, Mapping):
        raise SiteError(f"{source}: sensors[{i}]: must be a table ([[sensors]])")
    driver = raw.get("driver")
    if driver not in DRIVERS:
        shown = repr(driver) if driver is not None else "missing"
        raise SiteError(f"{source}: {where}driver: {shown} is not a known driver (known: {', '.join(sorted(DRIVERS))})")
    spec = DRIVERS[driver]
    _known(raw, {**_COMMON, **_BUS_KEYS[spec.bus], **spec.options}, source, where)
    if spec.bus == "adc":
        if "pin" not in raw:
            raise SiteError(f"{source}: {where}pin: required for {driver} (the ADC GPIO, e.g. 35)")
        _pins(raw, (), ("pin",), source, where)
    elif spec.bus == "uart":
        if "uart" not in raw:
            raise SiteError(f"{source}: {where}uart: required for {driver} (2: UART1 carries the data link)")
        if raw["uart"] not in (1, 2) or raw["uart"] == link_uart:
            taken = f" (UART{link_uart} carries the data link)" if raw["uart"] == link_uart else ""
            raise SiteError(f"{source}: {where}uart: {raw['uart']} cannot be used{taken}; use a free UART of 1, 2")
        _pins(raw, ("tx",), ("rx",), source, where)
    else:
        if raw.get("i2c", 0) not in (0, 1):
            raise SiteError(f"{source}: {where}i2c: {raw['i2c']} is not 0 or 1")
        address = raw.get("address", spec.address)
        if not 0x08 <= address <= 0x77:
            raise SiteError(f"{source}: {where}address: 0x{address:x} is not a 7-bit I2C address (0x08..0x77)")
        _pins(raw, ("scl", "sda"), (), source, where)
    return dict(raw)


def _known(raw: Mapping[str, Any], allowed: Mapping[str, Any], source: str, where: str) -> None:
    for key, value in raw.items():
        if key not in allowed:
            raise SiteError(f"{source}: {where}{key}: unknown key (allowed: {', '.join(allowed)})")
        want = allowed[key]
        if isinstance(value, bool) and want is not bool:
            ok = False
        else:
            ok = isinstance(value, want)
        if not ok:
            raise SiteError(f"{source}: {where}{key}: {value!r} has the wrong type ({_type_name(want)} expected)")


def _type_name(want: Any) -> str:
    names = {int: "an integer", str: "a string", bool: "true or false", dict: "a table", list: "an array of tables"}
    return "a number" if want == _Number else names.get(want, str(want))


def _pins(raw: Mapping[str, Any], outputs: tuple[str, ...], inputs: tuple[str, ...], source: str, where: str) -> None:
    for key in outputs + inputs:
        if key not in raw:
            continue
        pin = raw[key]
        if pin not in _GPIO:
            raise SiteError(f"{source}: {where}{key}: GPIO {pin} does not exist on the ESP32")
        if key in outputs and pin in _INPUT_ONLY:
            raise SiteError(f"{source}: {where}{key}: GPIO {pin} is input-only (34-39); pick another pin")
