"""Every air-quality sensor the firmware supports on one node, end to end: PMS5003 and SDS011 on the
two free UARTs, SPS30, SCD41, BME280 and SGP40 on I2C, BLE to the gateway. The emulated parts
answer from their datasheets; the scenario sets the air and injects faults. Through warm-up and
faults, the gateway receives the values the scenario set, within each part's resolution, and
the faults as health flags, while the node keeps reporting."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gonggi_emu.bleak_backend import radio_backends
from gonggi_emu.radio import VirtualRadio
from gonggi_gateway.config import parse_config
from gonggi_gateway.service import Gateway
from gonggi_tools.fleet import EmulatedNode, NodeSpec, registry_toml

NODE = "aq-01"
# The air on a hazy street corner.
AIR = {"pm2_5_ugm3": 35.0, "pm10_ugm3": 52.0, "temperature_c": 23.5, "humidity_rh": 40.0,
       "pressure_pa": 99_800.0, "co2_ppm": 800.0, "battery_v": 3.95}
# Board seconds: the SPS30 is unplugged, the PMS5003's frames fail their checksum.
FAULTS = [
    {"device": "sps30", "kind": "unplug", "start": 36.0, "end": 40.0},
    {"device": "pms5003", "kind": "checksum", "start": 36.0, "end": 40.0},
]
MISSING, CHECKSUM, WARMING = 0x08, 0x02, 0x01  # firmware/sensor.py
REPORT_S = 6
# What each part can resolve of the scenario's value (datasheet resolution, plus the emulated
# part's noise where its datasheet states a repeatability; noise is off where an option exists).
EXPECTED: dict[str, tuple[float, float]] = {
    "pms.pm25": (35.0, 1.0),       # integer ug/m3
    "pms.pm10": (52.0, 1.0),
    "sds.pm25": (35.0, 0.1),       # 0.1 ug/m3
    "sds.pm10": (52.0, 0.1),
    "sps30.pm25": (35.0, 0.01),
    "scd4x.co2": (800.0, 1.0),     # 1 ppm
    "scd4x.rh": (40.0, 0.01),
    "bme.t": (23.5, 0.01),         # 0.01 degC
    "bme.rh": (40.0, 0.01),        # 1/1024 %RH, reported in 0.01
    "bme.p": (99_800.0, 5.0),      # the datasheet's 32-bit integer formula: within a few Pa
    "bat.v": (3.95, 0.01),         # ADC after calibration
}


def six_sensor_spec() -> NodeSpec:
    quiet = {"noise": 0.0}
    return NodeSpec.make(
        NODE,
        sensors=[
            {"driver": "pms5003", "uart": 1},
            {"driver": "sds011", "uart": 2},
            {"driver": "sps30"},
            {"driver": "scd4x"},
            {"driver": "bme280"},
            {"driver": "sgp40"},
            {"driver": "battery", "pin": 35},
        ],
        bench={"device": [
            {"kind": "pms5003", "bus": "uart1"},
            {"kind": "sds011", "bus": "uart2"},
            {"kind": "sps30", "bus": "i2c0", "options": quiet},
            {"kind": "scd41", "bus": "i2c0", "options": quiet},
            {"kind": "bme280", "bus": "i2c0", "options": quiet},
            {"kind": "sgp40", "bus": "i2c0", "options": quiet},
            {"kind": "battery", "bus": "adc35"},
        ]},
        scenario={"values": AIR, "faults": FAULTS},
        # Seven sensors and BLE in an ESP32's heap: a window of two packets in flight.
        settings={"sample_s": 1, "report_s": REPORT_S, "slot_size": 2048, "window": 2, "link": {"kind": "ble"}},
    )


async def test_six_sensors_report_the_scenario_through_warm_up_and_faults(tmp_path: Path) -> None:
    spec = six_sensor_spec()
    (tmp_path / "nodes.toml").write_text(registry_toml([spec]))
    config = parse_config({
        "gateway": {"id": "gw-aq", "spool": "spool.sqlite", "registry": "nodes.toml"},
        "ble": {"slots": 1, "idle_s": 0.3},
        "archive": {"path": "archive.sqlite"},
    }, "gateway.toml", tmp_path)
    async with VirtualRadio(tmp_path / "radio.sock") as radio, \
            EmulatedNode(spec, tmp_path, env={"GONGGI_RADIO": str(radio.path)}) as node, \
            Gateway(config, ble_backends=radio_backends(radio.path)) as gateway:
        await node.board.expect("gonggi node " + NODE)
        serving = asyncio.create_task(gateway.run())
        archive = gateway.archive
        assert archive is not None

        async def reports() -> list[dict[str, Any]]:
            return [{r["n"]: r.get("v") for r in p} for p in await archive.packets(NODE, limit=1000)]

        # Until two clean reports after the faults: warm-up (30 s), faults (36-40 s), recovery.
        await gateway.wait_until(lambda s: NODE in s.nodes and s.nodes[NODE].packets >= 48 // REPORT_S + 2)
        got = await reports()
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)

    assert len(got) >= 8
    # Warm-up: the PM sensors' first 30 s are flagged and carry no values.
    assert got[0].get("pms.health", 0) & WARMING and "pms.pm25" not in got[0]
    # The faults: flagged in the reports that span them, and the node kept reporting.
    assert any(r.get("sps30.health", 0) & MISSING for r in got), got
    assert any(r.get("pms.health", 0) & CHECKSUM for r in got), got
    # After warm-up and the faults: every value the scenario set, within the part's resolution.
    last = got[-1]
    for name, (want, tolerance) in EXPECTED.items():
        assert name in last, (name, last)
        assert abs(float(last[name]) - want) <= tolerance, (name, last[name], want)
    assert 0 < last["sgp40.voc_raw"] < 65536
    for sensor in ("pms", "sds", "sps30", "scd4x", "bme", "sgp40", "bat"):
        assert last.get(sensor + ".health", 0) == 0, (sensor, last)
