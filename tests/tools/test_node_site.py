"""Site files: a valid one becomes the config.json the firmware accepts; a mistake names the key."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gonggi_emu.vm import FIRMWARE_DIR
from gonggi_tools.node.errors import SiteError
from gonggi_tools.node.site import DRIVERS, NODE_SETTINGS, SENSOR_KEYS, I2cSensor, load_site, parse_site

KEY = bytes(range(32))


def site(**raw: Any) -> dict[str, Any]:
    return {"node": {"sample_s": 5, "report_s": 60},
            "sensors": [{"driver": "bme280", "name": "bme"}, {"driver": "pms5003", "uart": 2, "tx": 17, "rx": 16},
                        {"driver": "battery", "pin": 35, "ratio": 2.0}], **raw}


def test_a_site_becomes_the_nodes_config(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text('[node]\nreport_s = 60\n\n[link]\nkind = "serial"\nuart = 1\ntx = 4\nrx = 5\n\n'
                    '[[sensors]]\ndriver = "scd4x"\naddress = 0x62\nasc = false\n')
    s = load_site(path)
    assert s.config("gg-1", KEY) == {
        "node_id": "gg-1", "key": KEY.hex(), "report_s": 60,
        "link": {"kind": "serial", "uart": 1, "tx": 4, "rx": 5},
        "sensors": [{"driver": "scd4x", "address": 0x62, "asc": False}],
    }
    assert s.i2c_sensors() == [I2cSensor("scd4x", "scd4x", 0, 22, 21, 0x62)]


def test_the_config_of_a_site_is_one_the_firmware_accepts(mpy: Any) -> None:
    config = parse_site(site(), "site.toml").config("gg-a4cf12345678", KEY)
    out = mpy.run(f"""
        import config
        import json
        cfg = config.validate(json.loads({json.dumps(config)!r}))
        print("ok", cfg["node_id"], len(cfg["key"]), len(cfg["sensors"]), cfg["link"]["kind"])
    """)
    assert "ok gg-a4cf12345678 32 3 serial" in out


@pytest.mark.parametrize(("raw", "message"), [
    (site(sensor=[]), "site.toml: sensor: unknown key (allowed: node, link, sensors)"),
    (site(node={"report_s": "60"}), "site.toml: node.report_s: '60' has the wrong type (an integer expected)"),
    (site(node={"sample_s": 0}), "site.toml: node.sample_s: must be a positive integer, got 0"),
    (site(node={"sample_s": 90, "report_s": 60}), "site.toml: node.sample_s must not exceed node.report_s"),
    (site(link={"kind": "lora"}), "site.toml: link.kind: 'lora' is not one of serial, ble"),
    (site(link={"kind": "serial", "uart": 0}), "site.toml: link.uart: 0 is not 1 or 2 (UART0 is the REPL)"),
    (site(sensors=[{"driver": "bme680"}]),
     "site.toml: sensors[0].driver: 'bme680' is not a known driver (known: battery, bme280, noise, pms5003,"),
    (site(sensors=[{"driver": "bme280", "address": 0x80}]),
     "site.toml: sensors[0].address: 0x80 is not a 7-bit I2C address (0x08..0x77)"),
    (site(sensors=[{"driver": "bme280", "sda": 36}]),
     "site.toml: sensors[0].sda: GPIO 36 is input-only (34-39); pick another pin"),
    (site(sensors=[{"driver": "bme280", "scl": 24}]), "site.toml: sensors[0].scl: GPIO 24 does not exist on the ESP32"),
    (site(sensors=[{"driver": "bme280", "passive": True}]),
     "site.toml: sensors[0].passive: unknown key (allowed: driver, name, warmup_s, window_s, i2c, scl, sda, freq, address)"),
    (site(sensors=[{"driver": "sds011"}]), "site.toml: sensors[0].uart: required for sds011 (2: UART1 carries the data link)"),
    (site(sensors=[{"driver": "sds011", "uart": 1}]),
     "site.toml: sensors[0].uart: 1 cannot be used (UART1 carries the data link); use a free UART of 1, 2"),
    (site(sensors=[{"driver": "battery"}]), "site.toml: sensors[0].pin: required for battery (the ADC GPIO, e.g. 35)"),
    (site(sensors=[{"driver": "scd4x", "asc": 1}]), "site.toml: sensors[0].asc: 1 has the wrong type (true or false expected)"),
    (site(sensors=[{"driver": "pms5003", "uart": 2}, {"driver": "sds011", "uart": 2}]),
     "site.toml: two sensors on UART2: each UART sensor needs a UART of its own"),
    (site(sensors=[{"driver": "bme280"}, {"driver": "sgp40", "name": "bme280"}]),
     "site.toml: two sensors named 'bme280': give each a different name"),
])
def test_a_mistake_names_the_file_and_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(SiteError) as err:
        parse_site(raw, "site.toml")
    assert err.value.message.startswith(message)
    assert err.value.exit_code == 2


def test_an_unreadable_site_file_says_why(tmp_path: Path) -> None:
    with pytest.raises(SiteError, match="site.toml: no such site file"):
        load_site(tmp_path / "site.toml")
    (tmp_path / "site.toml").write_text("[node\n")
    with pytest.raises(SiteError, match="site.toml: not valid TOML"):
        load_site(tmp_path / "site.toml")


def _firmware_ast(name: str) -> ast.Module:
    return ast.parse((FIRMWARE_DIR / name).read_text())


def test_the_drivers_are_the_firmwares_builders() -> None:
    builders = next(n.value for n in _firmware_ast("sensors.py").body
                    if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "BUILDERS")
    assert isinstance(builders, ast.Dict)
    assert sorted(DRIVERS) == sorted(ast.literal_eval(k) for k in builders.keys if k is not None)


def test_every_sensor_key_allowed_is_one_the_firmware_reads() -> None:
    # spec["x"] and spec.get("x", ...) anywhere in firmware/sensors.py: the keys its builders read.
    read = set(re.findall(r"""spec(?:\.get\(|\[)"(\w+)\"""", (FIRMWARE_DIR / "sensors.py").read_text()))
    assert SENSOR_KEYS == read


def test_the_node_settings_are_the_firmwares() -> None:
    ints = next(n.value for n in _firmware_ast("config.py").body
                if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "_INTS")
    assert NODE_SETTINGS == ast.literal_eval(ints)
