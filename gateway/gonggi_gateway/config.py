"""Gateway configuration: a TOML file read with tomllib into frozen dataclasses, fully validated.

Every error names the file, the section and key, and what is allowed; unknown sections and keys
are errors too, so a typo never silently falls back to a default. Relative paths are taken
relative to the directory of the configuration file. See docs/gateway.md for the reference.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gonggi_gateway.errors import ConfigError

__all__ = [
    "ArchiveConfig",
    "Config",
    "GatewaySection",
    "ID_PATTERN",
    "LinkConfig",
    "MqttConfig",
    "SerialConfig",
    "load_config",
    "parse_config",
]

# Ids end up in MQTT topics and SenML names: no '/', '+', '#', spaces.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SYNCHRONOUS = ("full", "normal")


@dataclass(frozen=True)
class GatewaySection:
    id: str
    spool: Path
    registry: Path
    synchronous: str = "full"  # SQLite synchronous for spool and archive; see docs/gateway.md
    time_interval: float = 3600.0  # seconds between clock updates sent to an already synced node


@dataclass(frozen=True)
class SerialConfig:
    """One serial data link: a node's UART (``/dev/ttyUSB0``, a by-id path, or a pty)."""

    port: str
    baudrate: int = 115200


LinkConfig = SerialConfig  # the BLE adapter will join this union


@dataclass(frozen=True)
class MqttConfig:
    host: str
    port: int = 1883
    topic_prefix: str = "gonggi"
    client_id: str = ""  # empty: "gonggi-<gateway id>"
    username: str | None = None
    password: str | None = None
    keepalive: int = 60
    qos: int = 1  # fixed: rows leave the spool only after a PUBACK


@dataclass(frozen=True)
class ArchiveConfig:
    """The embedded upstream: a local SQLite archive, used when no broker is configured."""

    path: Path


@dataclass(frozen=True)
class Config:
    gateway: GatewaySection
    links: tuple[LinkConfig, ...] = ()
    mqtt: MqttConfig | None = None
    archive: ArchiveConfig | None = None
    source: str = "<config>"

    @property
    def uplink_names(self) -> tuple[str, ...]:
        """The uplinks a spooled row must be confirmed by before it is deleted."""
        return tuple(name for name, cfg in (("mqtt", self.mqtt), ("archive", self.archive)) if cfg is not None)


_REQUIRED: Any = object()


class _Table:
    """Reads one TOML table, remembering which keys were used so leftovers can be reported."""

    def __init__(self, source: str, where: str, data: Any, base: Path) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: {where} must be a table")
        self.source, self.where, self.data, self.base = source, where, data, base
        self.used: list[str] = []

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.where} {key}: {problem}")

    def _get(self, key: str, default: Any) -> Any:
        self.used.append(key)
        if key in self.data:
            return self.data[key]
        if default is _REQUIRED:
            raise self.error(key, "missing (required)")
        return default

    def text(self, key: str, default: Any = _REQUIRED, *, pattern: re.Pattern[str] | None = None,
             choices: tuple[str, ...] = ()) -> Any:
        value = self._get(key, default)
        if key not in self.data:
            return value  # the default
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {value!r}")
        if choices and value not in choices:
            raise self.error(key, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.error(key, f"must match {pattern.pattern} (letters, digits, '.', '_', '-'), got {value!r}")
        if not value and default is _REQUIRED:
            raise self.error(key, "must not be empty")
        return value

    def integer(self, key: str, default: Any, lo: int, hi: int) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.error(key, f"must be an integer from {lo} to {hi}, got {value!r}")
        return value

    def number(self, key: str, default: float, lo: float) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > lo:
            raise self.error(key, f"must be a number greater than {lo}, got {value!r}")
        return float(value)

    def path(self, key: str, default: Any = _REQUIRED) -> Path:
        value = self.text(key, default)
        if not value:
            raise self.error(key, "must not be empty")
        return self.base / Path(value).expanduser()

    def done(self) -> None:
        unknown = sorted(set(self.data) - set(self.used))
        if unknown:
            raise ConfigError(
                f"{self.source}: {self.where} unknown key {unknown[0]!r} (allowed: {', '.join(sorted(self.used))})"
            )


def _gateway(t: _Table) -> GatewaySection:
    section = GatewaySection(
        id=t.text("id", pattern=ID_PATTERN),
        spool=t.path("spool", "spool.sqlite"),
        registry=t.path("registry", "nodes.toml"),
        synchronous=t.text("synchronous", "full", choices=SYNCHRONOUS),
        time_interval=t.number("time_interval", 3600.0, 0),
    )
    t.done()
    return section


def _serial(t: _Table) -> SerialConfig:
    cfg = SerialConfig(port=t.text("port"), baudrate=t.integer("baudrate", 115200, 50, 4_000_000))
    t.done()
    return cfg


def _mqtt(t: _Table, gateway_id: str) -> MqttConfig:
    host = t.text("host")
    port = t.integer("port", 1883, 1, 65535)
    prefix = t.text("topic_prefix", "gonggi")
    if not prefix or any(c in prefix for c in "+#") or prefix.startswith("/") or prefix.endswith("/"):
        raise t.error("topic_prefix", f"must be a non-empty topic without '+', '#' or a leading/trailing '/', got {prefix!r}")
    cfg = MqttConfig(
        host=host,
        port=port,
        topic_prefix=prefix,
        client_id=t.text("client_id", "") or f"gonggi-{gateway_id}",
        username=t.text("username", None),
        password=t.text("password", None),
        keepalive=t.integer("keepalive", 60, 5, 65535),
        qos=t.integer("qos", 1, 1, 1),
    )
    if cfg.password is not None and cfg.username is None:
        raise t.error("password", "is set but username is not")
    t.done()
    return cfg


def parse_config(data: Mapping[str, Any], source: str = "<config>", base: Path = Path(".")) -> Config:
    """Validate an already parsed TOML document; ``base`` anchors relative paths."""
    allowed = ("archive", "gateway", "mqtt", "serial")
    for name in data:
        if name not in allowed:
            raise ConfigError(f"{source}: unknown section [{name}] (allowed: {', '.join(allowed)})")
    if "gateway" not in data:
        raise ConfigError(f"{source}: [gateway] missing (required: it holds the gateway id)")
    gateway = _gateway(_Table(source, "[gateway]", data["gateway"], base))
    serial = data.get("serial", [])
    if not isinstance(serial, list):
        raise ConfigError(f"{source}: serial must be an array of tables: write [[serial]], one per port")
    links = tuple(_serial(_Table(source, f"[[serial]] #{i + 1}", s, base)) for i, s in enumerate(serial))
    ports = [link.port for link in links]
    for port in ports:
        if ports.count(port) > 1:
            raise ConfigError(f"{source}: [[serial]] port: {port!r} is configured twice")
    mqtt = _mqtt(_Table(source, "[mqtt]", data["mqtt"], base), gateway.id) if "mqtt" in data else None
    archive = None
    if "archive" in data:
        t = _Table(source, "[archive]", data["archive"], base)
        archive = ArchiveConfig(path=t.path("path", "archive.sqlite"))
        t.done()
    elif mqtt is None:
        # No upstream at all: keep everything locally, so a fresh install works with nothing else.
        archive = ArchiveConfig(path=gateway.spool.with_name("archive.sqlite"))
    return Config(gateway=gateway, links=links, mqtt=mqtt, archive=archive, source=source)


def load_config(path: str | Path) -> Config:
    """Read and validate a gateway configuration file. Raises ConfigError naming file and key."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such configuration file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_config(data, str(path), path.resolve().parent)
