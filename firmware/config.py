# The node's configuration: config.json on flash, validated at boot with errors that name the key.
import json
from binascii import unhexlify

DEFAULTS = {
    "sample_s": 5,
    "report_s": 60,
    "hello_s": 60,
    "ring_slots": 64,
    "slot_size": 1024,
    "window": 4,
    "rto_ms": 2000,
    "wdt_ms": 30000,
    "link": {"kind": "serial", "uart": 1, "baudrate": 115200},
    "sensors": [],
}
_INTS = ("sample_s", "report_s", "hello_s", "ring_slots", "slot_size", "window", "rto_ms", "wdt_ms")


class ConfigError(ValueError):
    pass


def load(path="config.json"):
    try:
        with open(path) as f:
            raw = json.load(f)
    except OSError:
        raise ConfigError(path + ": missing (provision the node: gonggi node provision)")
    except ValueError:
        raise ConfigError(path + ": not valid JSON")
    return validate(raw, path)


def validate(raw, where="config.json"):
    if not isinstance(raw, dict):
        raise ConfigError(where + ": must be a JSON object")
    cfg = dict(DEFAULTS)
    cfg.update(raw)
    node_id = cfg.get("node_id")
    if not isinstance(node_id, str) or not 0 < len(node_id) <= 23:
        raise ConfigError(where + ": node_id must be a string of 1..23 characters")
    try:
        key = unhexlify(cfg.get("key", ""))
    except (ValueError, TypeError):
        raise ConfigError(where + ": key must be hex")
    if len(key) < 16:
        raise ConfigError(where + ": key must be at least 16 bytes (32 hex digits)")
    cfg["key"] = key
    for name in _INTS:
        v = cfg[name]
        if not isinstance(v, int) or v <= 0:
            raise ConfigError(where + ": " + name + " must be a positive integer")
    if not 256 <= cfg["slot_size"] <= 2048:
        raise ConfigError(where + ": slot_size must be 256..2048 (the protocol's largest frame)")
    if cfg["sample_s"] > cfg["report_s"]:
        raise ConfigError(where + ": sample_s must not exceed report_s")
    link = cfg["link"]
    if not isinstance(link, dict) or link.get("kind") not in ("serial", "ble"):
        raise ConfigError(where + ": link.kind must be one of: serial, ble")
    sensors = cfg["sensors"]
    if not isinstance(sensors, list):
        raise ConfigError(where + ": sensors must be a list")
    for i, s in enumerate(sensors):
        if not isinstance(s, dict) or not isinstance(s.get("driver"), str):
            raise ConfigError(where + ": sensors[" + str(i) + "].driver must be a string")
    return cfg
