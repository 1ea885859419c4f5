"""The delivery settings in gateway.toml: durability, the spool's cap, batching, HTTP and HA."""

from __future__ import annotations

from pathlib import Path

import pytest

from gonggi_gateway.config import Batching, HttpUplinkConfig, load_config
from gonggi_gateway.errors import ConfigError
from gonggi_gateway.uplinks import open_uplinks
from gonggi_gateway.uplinks.http import HttpUplink


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\nid = "gw1"\n' + text)
    return path


def test_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[mqtt]\nhost = "b"\n[archive]\n'))
    assert (cfg.gateway.commit_window_ms, cfg.gateway.spool_max_mb) == (0, 1024)
    assert (cfg.mqtt and cfg.mqtt.ha_discovery, cfg.mqtt and cfg.mqtt.ha_discovery_prefix) == (False, "homeassistant")
    assert cfg.mqtt is not None and cfg.mqtt.batch == Batching(500, 0.0, 0.0)
    assert cfg.archive is not None and cfg.archive.batch == Batching(500, 0.0, 0.0)
    assert cfg.http_uplink is None and cfg.uplink_names == ("mqtt", "archive")


def test_every_delivery_key(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, (
        "commit_window_ms = 20\nspool_max_mb = 256\n"
        '[mqtt]\nhost = "b"\nha_discovery = true\nha_discovery_prefix = "ha"\nbatch_size = 50\nflush_interval_s = 0.5\n'
        '[http_uplink]\nurl = "https://example.org/senml"\nbearer_token = "t"\ntimeout_s = 3\n'
        "batch_size = 1000\nflush_interval_s = 10\nflush_jitter_s = 2.5\n"
    )))
    assert (cfg.gateway.commit_window_ms, cfg.gateway.spool_max_mb) == (20, 256)
    assert cfg.mqtt is not None and (cfg.mqtt.ha_discovery, cfg.mqtt.ha_discovery_prefix) == (True, "ha")
    assert cfg.mqtt.batch == Batching(50, 0.5, 0.0)
    assert cfg.http_uplink == HttpUplinkConfig("https://example.org/senml", 3.0, "t", None, None,
                                               Batching(1000, 10.0, 2.5))
    assert cfg.archive is None and cfg.uplink_names == ("mqtt", "http")  # an upstream: no default archive
    [mqtt, http] = open_uplinks(cfg)
    assert isinstance(http, HttpUplink) and (mqtt.batching, http.batching) == (cfg.mqtt.batch, cfg.http_uplink.batch)


@pytest.mark.parametrize(("text", "expected"), [
    ("commit_window_ms = 1500\n", "[gateway] commit_window_ms: must be an integer from 0 to 1000, got 1500"),
    ("spool_max_mb = 0\n", "[gateway] spool_max_mb: must be an integer from 1 to 1048576, got 0"),
    ('[http_uplink]\nurl = "ftp://x"\n', "[http_uplink] url: must be an http:// or https:// URL, got 'ftp://x'"),
    ('[http_uplink]\nurl = "http://x"\npassword = "p"\n', "[http_uplink] password: is set but username is not"),
    ('[http_uplink]\nurl = "http://x"\nusername = "u"\nbearer_token = "t"\n',
     "[http_uplink] bearer_token: and username are both set: choose one way to authenticate"),
    ('[http_uplink]\nurl = "http://x"\nbatch_size = 0\n', "[http_uplink] batch_size: must be an integer from 1 to 100000"),
    ('[http_uplink]\nurl = "http://x"\nflush_jitter_s = -1\n', "[http_uplink] flush_jitter_s: must be from 0 to 3600 (seconds), got -1"),
    ('[mqtt]\nhost = "b"\nha_discovery = "yes"\n', "[mqtt] ha_discovery: must be true or false, got 'yes'"),
    ('[mqtt]\nhost = "b"\nha_discovery_prefix = "home/assistant"\n', "[mqtt] ha_discovery_prefix: must match"),
    ("[archive]\nbatchsize = 5\n", "[archive] unknown key 'batchsize' (allowed: batch_size, flush_interval_s,"),
])
def test_errors_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert expected in str(err.value)
