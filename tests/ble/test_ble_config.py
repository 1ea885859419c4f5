"""The ``[ble]`` table of gateway.toml: defaults, values, and errors that name the key."""

from __future__ import annotations

import tomllib

import pytest

from gonggi_gateway.config import BleConfig, parse_config
from gonggi_gateway.errors import ConfigError

GATEWAY = '[gateway]\nid = "gw1"\n'


def parse(text: str) -> BleConfig | None:
    return parse_config(tomllib.loads(GATEWAY + text), "gw.toml").ble


def test_without_a_ble_table_the_gateway_does_not_scan() -> None:
    assert parse("") is None


def test_an_empty_table_takes_the_defaults_and_values_are_read() -> None:
    assert parse("[ble]\n") == BleConfig()
    cfg = parse('[ble]\nadapter = "hci1"\nslots = 8\nconnect_timeout_s = 5\nidle_s = 0.25\n'
                "scan_watchdog_s = 20.0\nretry_initial_s = 2\nretry_max_s = 60\n")
    assert cfg == BleConfig(adapter="hci1", slots=8, connect_timeout_s=5.0, idle_s=0.25, scan_watchdog_s=20.0,
                            retry_initial_s=2.0, retry_max_s=60.0)


@pytest.mark.parametrize("text,message", [
    ('[ble]\nadapter = "usb0"\n', "gw.toml: [ble] adapter: must name a BlueZ adapter such as 'hci0', got 'usb0'"),
    ("[ble]\nslots = 0\n", "gw.toml: [ble] slots: must be an integer from 1 to 32, got 0"),
    ("[ble]\nidle_s = 0\n", "gw.toml: [ble] idle_s: must be a number greater than 0, got 0"),
    ("[ble]\nretry_initial_s = 5\nretry_max_s = 1\n", "gw.toml: [ble] retry_max_s: must not be below retry_initial_s (5)"),
    ("[ble]\nslot = 4\n", "gw.toml: [ble] unknown key 'slot'"),
])
def test_errors_name_the_file_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(text)
    assert str(err.value).startswith(message)
