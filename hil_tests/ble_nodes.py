"""The emulated BLE node the BLE HIL tests run: a battery on ADC pin 35, reporting every second."""

from __future__ import annotations

from gonggi_tools.fleet import NodeSpec

__all__ = ["ble_spec"]


def ble_spec(node_id: str) -> NodeSpec:
    return NodeSpec.make(
        node_id,
        sensors=[{"driver": "battery", "pin": 35}],
        bench={"device": [{"kind": "battery", "bus": "adc35"}]},
        scenario={"values": {"battery_v": 3.9}},
        settings={"sample_s": 1, "report_s": 1, "link": {"kind": "ble"}},
    )
