"""Gateway configuration: a full file, defaults, and errors that name file, key and allowed values."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gonggi_gateway.config import ArchiveConfig, MqttConfig, SerialConfig, load_config
from gonggi_gateway.errors import ConfigError
from gonggi_gateway.service import Gateway

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def test_full_configuration(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, """
[gateway]
id = "gw-jongno-1"
spool = "state/spool.sqlite"
registry = "/etc/gonggi/nodes.toml"
synchronous = "normal"
time_interval = 600

[[serial]]
port = "/dev/ttyUSB0"

[[serial]]
port = "/dev/ttyUSB1"
baudrate = 230400

[mqtt]
host = "broker.example"
port = 8883
topic_prefix = "seoul/air"
username = "gw"
password = "secret"
keepalive = 30

[archive]
path = "archive.sqlite"
"""))
    assert cfg.gateway.id == "gw-jongno-1"
    assert cfg.gateway.spool == tmp_path / "state" / "spool.sqlite"  # relative to the file
    assert cfg.gateway.registry == Path("/etc/gonggi/nodes.toml")
    assert cfg.gateway.synchronous == "normal" and cfg.gateway.time_interval == 600.0
    assert cfg.links == (SerialConfig("/dev/ttyUSB0", 115200), SerialConfig("/dev/ttyUSB1", 230400))
    assert cfg.mqtt == MqttConfig("broker.example", 8883, "seoul/air", "gonggi-gw-jongno-1", "gw", "secret", 30, 1)
    assert cfg.archive == ArchiveConfig(tmp_path / "archive.sqlite")
    assert cfg.uplink_names == ("mqtt", "archive")


def test_minimal_configuration_keeps_a_local_archive(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[gateway]\nid = "gw1"\n'))
    assert cfg.gateway.spool == tmp_path / "spool.sqlite"
    assert cfg.gateway.registry == tmp_path / "nodes.toml"
    assert cfg.gateway.synchronous == "full"
    assert cfg.links == () and cfg.mqtt is None
    assert cfg.archive == ArchiveConfig(tmp_path / "archive.sqlite")
    assert cfg.uplink_names == ("archive",)


def test_mqtt_alone_has_no_archive(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[gateway]\nid = "gw1"\n[mqtt]\nhost = "localhost"\n'))
    assert cfg.uplink_names == ("mqtt",)
    assert cfg.mqtt is not None and cfg.mqtt.port == 1883 and cfg.mqtt.topic_prefix == "gonggi"


def test_ble_on_a_virtual_radio_instead_of_an_adapter(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[gateway]\nid = "gw1"\n[ble]\nradio = "run/radio.sock"\nslots = 2\n'))
    assert cfg.ble is not None
    assert cfg.ble.radio == tmp_path / "run" / "radio.sock"  # relative to the file, as every path
    assert cfg.ble.adapter is None and cfg.ble.slots == 2
    bluez = load_config(write(tmp_path, '[gateway]\nid = "gw1"\n[ble]\n')).ble
    assert bluez is not None and bluez.radio is None


def test_a_virtual_radio_without_the_emulator_installed_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(write(tmp_path, '[gateway]\nid = "gw1"\n[ble]\nradio = "radio.sock"\n'))
    monkeypatch.setitem(sys.modules, "gonggi_emu.bleak_backend", None)  # as if gonggi_emu were missing
    with pytest.raises(ConfigError, match=r"gateway\.toml: \[ble\] radio: .*install gonggi with the `emu` extra"):
        Gateway(cfg)


def test_example_configuration_loads() -> None:
    cfg = load_config(REPO / "examples" / "gateway.toml")
    assert cfg.gateway.id and cfg.uplink_names


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[gateway]\nid = "gw1"\nspoool = "x"\n',
         "[gateway] unknown key 'spoool' (allowed: commit_window_ms, id, registry, spool, spool_max_mb, synchronous, "
         "time_interval)"),
        ('[gateway]\nid = "gw1"\n[mqtt]\nhots = "x"\n', "[mqtt] host: missing (required)"),
        ('[gateway]\nid = "gw1"\n[mqtt]\nhost = "x"\nhots = "y"\n', "[mqtt] unknown key 'hots' (allowed: "),
        ('[gateway]\nid = "gw1"\n[mqtt]\nhost = "x"\nport = "1883"\n',
         "[mqtt] port: must be an integer from 1 to 65535, got '1883'"),
        ('[gateway]\nid = "gw1"\n[mqtt]\nhost = "x"\nqos = 0\n', "[mqtt] qos: must be an integer from 1 to 1, got 0"),
        ('[gateway]\nid = "gw1"\n[mqtt]\nhost = "x"\ntopic_prefix = "a/#"\n', "[mqtt] topic_prefix: must be"),
        ('[gateway]\nid = "gw1"\n[mqtt]\nhost = "x"\npassword = "p"\n', "[mqtt] password: is set but username is not"),
        ('[gateway]\nid = "gw1"\nsynchronous = "off"\n',
         "[gateway] synchronous: must be one of 'full', 'normal', got 'off'"),
        ('[gateway]\nid = "gw/1"\n', "[gateway] id: must match"),
        ('[gateway]\nspool = "x"\n', "[gateway] id: missing (required)"),
        ('[gateway]\nid = "gw1"\ntime_interval = 0\n', "[gateway] time_interval: must be a number greater than 0"),
        ('[gateway]\nid = "gw1"\n[serial]\nport = "/dev/ttyUSB0"\n', "serial must be an array of tables: write [[serial]]"),
        ('[gateway]\nid = "gw1"\n[[serial]]\nbaudrate = 9600\n', "[[serial]] #1 port: missing (required)"),
        ('[gateway]\nid = "gw1"\n[[serial]]\nport = "/dev/ttyS0"\nbaud = 9600\n',
         "[[serial]] #1 unknown key 'baud' (allowed: baudrate, port)"),
        ('[gateway]\nid = "gw1"\n[[serial]]\nport = "/dev/ttyS0"\n[[serial]]\nport = "/dev/ttyS0"\n',
         "[[serial]] port: '/dev/ttyS0' is configured twice"),
        ('[gateway]\nid = "gw1"\n[mqqt]\nhost = "x"\n', "unknown section [mqqt] (allowed: archive, ble, gateway, health, http, http_uplink, logging, mqtt, serial)"),
        ('[archive]\npath = "a"\n', "[gateway] missing (required"),
        ('[gateway]\nid = "gw1"\n[archive]\npath = ""\n', "[archive] path: must not be empty"),
        ('[gateway]\nid = "gw1"\n[ble]\nadapter = "hci0"\nradio = "radio.sock"\n',
         "[ble] radio: and adapter are both set: choose a BlueZ adapter or a virtual radio"),
        ('[gateway]\nid = "gw1"\n[ble]\nradio = ""\n', "[ble] radio: must not be empty"),
        ('[gateway]\nid = "gw1"\n[ble]\nradio = 1\n', "[ble] radio: must be a string, got 1"),
    ],
)
def test_errors_name_file_key_and_allowed_values(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"gone\.toml: no such configuration file"):
        load_config(tmp_path / "gone.toml")
    with pytest.raises(ConfigError, match=r"gateway\.toml: not valid TOML"):
        load_config(write(tmp_path, "[gateway\nid = 1"))
