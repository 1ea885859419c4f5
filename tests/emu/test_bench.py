"""Bench files: what sits on which bus, and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gonggi_emu.bench import Bench, BenchError, Bus
from gonggi_emu.devices.battery import Battery
from gonggi_emu.scenario import Scenario
from gonggi_emu.wiring import Wiring

GOOD = """
uid = "a4cf12345678"
[[device]]
kind = "battery"
name = "cell"
bus = "adc35"
options = { ratio = 3.0 }
pins = { enable = 25 }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bench.toml"
    path.write_text(text)
    return path


def test_a_bench_file_gives_uid_devices_buses_options_and_pins(tmp_path: Path) -> None:
    bench = Bench.load(write(tmp_path, GOOD))
    assert bench.uid == bytes.fromhex("a4cf12345678")
    (spec,) = bench.devices
    assert (spec.kind, spec.name, spec.bus, dict(spec.options), dict(spec.pins)) == (
        "battery", "cell", Bus("adc", 35), {"ratio": 3.0}, {"enable": 25}
    )


def test_wiring_builds_the_devices_on_their_buses(tmp_path: Path) -> None:
    wiring = Wiring.build(Bench.load(write(tmp_path, GOOD)), Scenario())
    battery = wiring.adc[35]
    assert isinstance(battery, Battery) and battery.ratio == 3.0
    assert wiring.by_name == {"cell": battery}
    assert wiring.pins == {25: (battery, "enable")}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('uid = "a4cf12"', "uid = 'a4cf12'; expected 12 hex digits"),
        ('[[device]]\nkind = "toaster"\nbus = "i2c0"', "device[0].kind = 'toaster'; allowed: "),
        ('[[device]]\nkind = "battery"', "device[0].bus is missing"),
        ('[[device]]\nkind = "battery"\nbus = "adc5"', "device[0].bus = 'adc5'; the ESP32 has adc 0, 2, 4"),
        ('[[device]]\nkind = "battery"\nbus = "spi0"', "device[0].bus = 'spi0'; expected \"uart<N>\""),
        ('[[device]]\nkind = "battery"\nbus = "uart3"', "device[0].bus = 'uart3'; the ESP32 has uart 0, 1, 2"),
        ('[[device]]\nkind = "battery"\nbus = "adc35"\npins = { en = 24 }', "device[0].pins = {'en': 24}"),
        ('[[device]]\nkind = "battery"\nbus = "adc35"\ncolour = 1', "device[0]: unknown key(s) colour"),
        ('[[device]]\nkind = "battery"\nbus = "adc35"\n[[device]]\nkind = "battery"\nbus = "adc34"',
         "device[1].name = 'battery' is used twice"),
        ('[[device]]\nkind = "battery"\nbus = "adc35"\n[[device]]\nkind = "battery"\nname = "b"\nbus = "adc35"',
         "device[1].bus = 'adc35' already has a device"),
        ("[[device]\n", "bench.toml: "),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(BenchError) as caught:
        Bench.load(path)
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


def test_device_options_are_checked_when_the_bench_is_built(tmp_path: Path) -> None:
    bench = Bench.load(write(tmp_path, '[[device]]\nkind = "battery"\nbus = "adc35"\noptions = { ratio = 0.5 }'))
    with pytest.raises(BenchError, match=r"bench.toml: device\[0\].options: .*ratio 0.5 < 1"):
        Wiring.build(bench, Scenario())
    bench = Bench.load(write(tmp_path, '[[device]]\nkind = "battery"\nbus = "adc35"\noptions = { volts = 1 }'))
    with pytest.raises(BenchError, match=r"device\[0\].options: .*volts"):
        Wiring.build(bench, Scenario())


def test_a_device_on_the_wrong_kind_of_bus_is_refused(tmp_path: Path) -> None:
    bench = Bench.load(write(tmp_path, '[[device]]\nkind = "battery"\nbus = "i2c0"'))
    with pytest.raises(BenchError, match=r"device\[0\].bus = 'i2c0': a battery is not a I2CTarget"):
        Wiring.build(bench, Scenario())
