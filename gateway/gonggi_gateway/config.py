"""Gateway configuration: a TOML file read with tomllib into frozen dataclasses, fully validated.

Every error names the file, the section and key, and what is allowed; unknown sections and keys
are errors too, so a typo never silently falls back to a default. Relative paths are taken
relative to the directory of the configuration file. See docs/gateway.md for the reference.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gonggi_gateway.errors import ConfigError

__all__ = [
    "ArchiveConfig",
    "Batching",
    "BleConfig",
    "Config",
    "GatewaySection",
    "HealthConfig",
    "HttpConfig",
    "HttpUplinkConfig",
    "ID_PATTERN",
    "LinkConfig",
    "LoggingConfig",
    "MqttConfig",
    "SerialConfig",
    "load_config",
    "parse_config",
]

# Ids end up in MQTT topics and SenML names: no '/', '+', '#', spaces.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SYNCHRONOUS = ("full", "normal")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
ADAPTER_PATTERN = re.compile(r"hci[0-9]{1,3}")  # BlueZ adapter names
_TOPIC_LEVEL = re.compile(r"[A-Za-z0-9_-]+")  # one MQTT topic level, as Home Assistant's discovery wants it


@dataclass(frozen=True)
class GatewaySection:
    id: str
    spool: Path
    registry: Path
    synchronous: str = "full"  # SQLite synchronous for spool and archive; see docs/gateway.md
    time_interval: float = 3600.0  # seconds between clock updates sent to an already synced node
    commit_window_ms: int = 0  # how long a packet may wait for others to share its commit (and fsync)
    spool_max_mb: int = 1024  # the spool's cap: beyond it new packets are refused (not acked)


@dataclass(frozen=True)
class SerialConfig:
    """One serial data link: a node's UART (``/dev/ttyUSB0``, a by-id path, or a pty)."""

    port: str
    baudrate: int = 115200


LinkConfig = SerialConfig  # links configured one per node; BLE connections come and go (BleConfig)


@dataclass(frozen=True)
class BleConfig:
    """The ``[ble]`` table: one adapter serving every registered node in range (docs/ble.md)."""

    adapter: str | None = None  # "hci0"; None: the system's default adapter
    slots: int = 4  # simultaneous connections (a real adapter has few)
    connect_timeout_s: float = 10.0
    idle_s: float = 0.5  # a node quiet this long has nothing more to send: the slot is freed
    max_session_s: float = 60.0  # then the slot goes to someone else
    scan_watchdog_s: float = 30.0  # no advert this long while nodes are known: restart the scan
    revisit_s: float = 900.0  # connect a node without backlog this often (HELLO, time sync)
    retry_initial_s: float = 1.0  # per-node backoff after a failed connect ...
    retry_max_s: float = 120.0  # ... doubling up to this
    radio: Path | None = None  # a gonggi virtual radio's socket instead of BlueZ (no adapter then)


@dataclass(frozen=True)
class Batching:
    """How an uplink's drainer reads the spool: up to ``size`` rows at once, and a row waits at
    most ``flush_interval_s`` plus up to ``flush_jitter_s`` (random) for others to fill a batch."""

    size: int = 100
    flush_interval_s: float = 0.0
    flush_jitter_s: float = 0.0


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
    ha_discovery: bool = False  # announce every node's channels to Home Assistant (docs/mqtt.md)
    ha_discovery_prefix: str = "homeassistant"
    batch: Batching = Batching(500)


@dataclass(frozen=True)
class ArchiveConfig:
    """The embedded upstream: a local SQLite archive, used when no broker is configured."""

    path: Path
    batch: Batching = Batching(500)


@dataclass(frozen=True)
class HttpUplinkConfig:
    """The ``[http_uplink]`` table: batches of SenML JSON POSTed to an HTTP endpoint (docs/gateway.md)."""

    url: str
    timeout_s: float = 10.0  # per request
    bearer_token: str | None = None  # sent as "Authorization: Bearer <token>"
    username: str | None = None  # HTTP basic authentication
    password: str | None = None
    batch: Batching = Batching(500, 10.0, 1.0)


@dataclass(frozen=True)
class HttpConfig:
    """The ``[http]`` table: where /metrics, /healthz and the status page are served (docs/operations.md)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9100  # 0: any free port (tests)


@dataclass(frozen=True)
class HealthConfig:
    """The ``[health]`` table: what /healthz and the systemd watchdog count as healthy (docs/operations.md)."""

    interval: float = 5.0  # seconds between checks; a check that finds the gateway alive pings the watchdog
    stall_after: float = 10.0  # a spool probe or an event-loop tick slower than this is a stall
    uplink_down_after: float = 600.0  # rows waiting and none confirmed for this long: that uplink is down


@dataclass(frozen=True)
class LoggingConfig:
    """The ``[logging]`` table."""

    format: str = "text"  # "json": one object per line with ts, level, logger, msg and the event's fields
    level: str = "info"


@dataclass(frozen=True)
class Config:
    gateway: GatewaySection
    links: tuple[LinkConfig, ...] = ()
    mqtt: MqttConfig | None = None
    archive: ArchiveConfig | None = None
    http_uplink: HttpUplinkConfig | None = None
    ble: BleConfig | None = None
    http: HttpConfig = HttpConfig()
    health: HealthConfig = HealthConfig()
    logging: LoggingConfig = LoggingConfig()
    source: str = "<config>"

    @property
    def uplink_names(self) -> tuple[str, ...]:
        """The uplinks a spooled row must be confirmed by before it is deleted."""
        uplinks = (("mqtt", self.mqtt), ("http", self.http_uplink), ("archive", self.archive))
        return tuple(name for name, cfg in uplinks if cfg is not None)


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

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

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
        # Below the nodes' 2 s retransmission timeout, with room for the commit itself.
        commit_window_ms=t.integer("commit_window_ms", 0, 0, 1000),
        spool_max_mb=t.integer("spool_max_mb", 1024, 1, 1 << 20),
    )
    t.done()
    return section


def _batching(t: _Table, default: Batching) -> Batching:
    batching = Batching(
        size=t.integer("batch_size", default.size, 1, 100_000),
        flush_interval_s=t.number("flush_interval_s", default.flush_interval_s, -math.inf),
        flush_jitter_s=t.number("flush_jitter_s", default.flush_jitter_s, -math.inf),
    )
    for key in ("flush_interval_s", "flush_jitter_s"):
        value = getattr(batching, key)
        if not 0 <= value <= 3600:
            raise t.error(key, f"must be from 0 to 3600 (seconds), got {value:g}")
    return batching


def _serial(t: _Table) -> SerialConfig:
    cfg = SerialConfig(port=t.text("port"), baudrate=t.integer("baudrate", 115200, 50, 4_000_000))
    t.done()
    return cfg


def _ble(t: _Table) -> BleConfig:
    d = BleConfig()
    adapter = t.text("adapter", None)
    if adapter is not None and not ADAPTER_PATTERN.fullmatch(adapter):
        raise t.error("adapter", f"must name a BlueZ adapter such as 'hci0', got {adapter!r}")
    radio = t.text("radio", None)
    if radio is not None and adapter is not None:
        raise t.error("radio", "and adapter are both set: choose a BlueZ adapter or a virtual radio")
    cfg = BleConfig(
        adapter=adapter,
        radio=t.path("radio") if radio is not None else None,
        slots=t.integer("slots", d.slots, 1, 32),
        connect_timeout_s=t.number("connect_timeout_s", d.connect_timeout_s, 0),
        idle_s=t.number("idle_s", d.idle_s, 0),
        max_session_s=t.number("max_session_s", d.max_session_s, 0),
        scan_watchdog_s=t.number("scan_watchdog_s", d.scan_watchdog_s, 0),
        revisit_s=t.number("revisit_s", d.revisit_s, 0),
        retry_initial_s=t.number("retry_initial_s", d.retry_initial_s, 0),
        retry_max_s=t.number("retry_max_s", d.retry_max_s, 0),
    )
    if cfg.retry_max_s < cfg.retry_initial_s:
        raise t.error("retry_max_s", f"must not be below retry_initial_s ({cfg.retry_initial_s:g}), got {cfg.retry_max_s:g}")
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
        ha_discovery=t.boolean("ha_discovery", False),
        ha_discovery_prefix=t.text("ha_discovery_prefix", "homeassistant", pattern=_TOPIC_LEVEL),
        batch=_batching(t, MqttConfig.batch),
    )
    if cfg.password is not None and cfg.username is None:
        raise t.error("password", "is set but username is not")
    t.done()
    return cfg


def _http_uplink(t: _Table) -> HttpUplinkConfig:
    url = t.text("url")
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        raise t.error("url", f"must be an http:// or https:// URL, got {url!r}")
    cfg = HttpUplinkConfig(
        url=url,
        timeout_s=t.number("timeout_s", 10.0, 0),
        bearer_token=t.text("bearer_token", None),
        username=t.text("username", None),
        password=t.text("password", None),
        batch=_batching(t, HttpUplinkConfig.batch),
    )
    if cfg.password is not None and cfg.username is None:
        raise t.error("password", "is set but username is not")
    if cfg.bearer_token is not None and cfg.username is not None:
        raise t.error("bearer_token", "and username are both set: choose one way to authenticate")
    t.done()
    return cfg


def _http(t: _Table) -> HttpConfig:
    enabled = t.boolean("enabled", True)
    listen = t.text("listen", "127.0.0.1:9100")
    host, sep, port = listen.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # "[::1]:9100"
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise t.error("listen", f"must be host:port such as '127.0.0.1:9100', '0.0.0.0:9100' or '[::1]:9100', "
                                f"got {listen!r}")
    t.done()
    return HttpConfig(enabled=enabled, host=host, port=int(port))


def _health(t: _Table) -> HealthConfig:
    d = HealthConfig()
    cfg = HealthConfig(
        interval=t.number("interval", d.interval, 0),
        stall_after=t.number("stall_after", d.stall_after, 0),
        uplink_down_after=t.number("uplink_down_after", d.uplink_down_after, 0),
    )
    t.done()
    return cfg


def _logging(t: _Table) -> LoggingConfig:
    cfg = LoggingConfig(format=t.text("format", "text", choices=LOG_FORMATS),
                        level=t.text("level", "info", choices=LOG_LEVELS))
    t.done()
    return cfg


def parse_config(data: Mapping[str, Any], source: str = "<config>", base: Path = Path(".")) -> Config:
    """Validate an already parsed TOML document; ``base`` anchors relative paths."""
    allowed = ("archive", "ble", "gateway", "health", "http", "http_uplink", "logging", "mqtt", "serial")
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
        archive = ArchiveConfig(path=t.path("path", "archive.sqlite"), batch=_batching(t, ArchiveConfig.batch))
        t.done()
    elif mqtt is None and "http_uplink" not in data:
        # No upstream at all: keep everything locally, so a fresh install works with nothing else.
        archive = ArchiveConfig(path=gateway.spool.with_name("archive.sqlite"))
    http_uplink = _http_uplink(_Table(source, "[http_uplink]", data["http_uplink"], base)) \
        if "http_uplink" in data else None
    ble = _ble(_Table(source, "[ble]", data["ble"], base)) if "ble" in data else None
    http = _http(_Table(source, "[http]", data.get("http", {}), base))
    health = _health(_Table(source, "[health]", data.get("health", {}), base))
    logging = _logging(_Table(source, "[logging]", data.get("logging", {}), base))
    return Config(gateway=gateway, links=links, mqtt=mqtt, archive=archive, http_uplink=http_uplink, ble=ble,
                  http=http, health=health,
                  logging=logging, source=source)


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
