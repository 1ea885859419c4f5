"""The operations sections of gateway.toml ([http], [health], [logging]) and structured JSON logs."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from gonggi_gateway.config import Config, HealthConfig, HttpConfig, LoggingConfig, load_config
from gonggi_gateway.errors import ConfigError
from gonggi_gateway.ops.logs import JsonFormatter, message_fields


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\nid = "gw1"\n' + text)
    return load_config(path)


def test_defaults_and_values(tmp_path: Path) -> None:
    config = load(tmp_path, "")
    assert (config.http, config.health, config.logging) == (HttpConfig(), HealthConfig(), LoggingConfig())
    assert config.http == HttpConfig(enabled=True, host="127.0.0.1", port=9100)  # a status page out of the box
    config = load(tmp_path, '[http]\nlisten = "[::1]:8080"\nenabled = false\n[health]\nuplink_down_after = 60\n'
                            '[logging]\nformat = "json"\nlevel = "debug"\n')
    assert config.http == HttpConfig(enabled=False, host="::1", port=8080)
    assert config.health.uplink_down_after == 60.0
    assert config.logging == LoggingConfig(format="json", level="debug")


@pytest.mark.parametrize(("text", "expected"), [
    ('[http]\nlisten = "9100"\n', "[http] listen: must be host:port such as '127.0.0.1:9100'"),
    ('[http]\nlisten = "0.0.0.0:99999"\n', "[http] listen: must be host:port"),
    ('[http]\nenabled = "yes"\n', "[http] enabled: must be true or false, got 'yes'"),
    ('[http]\nport = 9100\n', "[http] unknown key 'port' (allowed: enabled, listen)"),
    ('[health]\nstall_after = 0\n', "[health] stall_after: must be a number greater than 0, got 0"),
    ('[logging]\nformat = "xml"\n', "[logging] format: must be one of 'text', 'json', got 'xml'"),
    ('[logging]\nlevel = "verbose"\n', "[logging] level: must be one of 'debug', 'info', 'warning', 'error'"),
])
def test_errors_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text)
    assert str(err.value).startswith(f"{tmp_path / 'gateway.toml'}: {expected}")


def test_json_lines_carry_the_event_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("gonggi_gateway.test_json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.warning("rejected reason=%s source=node=%s: %s", "bad_mac", "gg-a4cf12", "MAC check failed")
        logger.info("spool open path=/var/lib/gonggi/spool.sqlite depth=12 age=1.5", extra={"uplink": "mqtt"})
        try:
            raise OSError("disk gone")
        except OSError:
            logger.exception("commit failed")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "warning" and first["logger"] == "gonggi_gateway.test_json"
    assert first["msg"] == "rejected reason=bad_mac source=node=gg-a4cf12: MAC check failed"
    assert (first["reason"], first["node"], first["source"]) == ("bad_mac", "gg-a4cf12", "node=gg-a4cf12")
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert (second["path"], second["depth"], second["age"], second["uplink"]) == (
        "/var/lib/gonggi/spool.sqlite", 12, 1.5, "mqtt")
    assert "OSError: disk gone" in third["exc"]


def test_message_fields_leave_prose_alone() -> None:
    assert message_fields("gateway gw-1 ready: links=['serial:/dev/ttyUSB0'] nodes=3") == {"nodes": 3}
    assert message_fields("a=b=c=d x==y") == {}
