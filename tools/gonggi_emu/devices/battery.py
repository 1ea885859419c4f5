"""A single LiPo cell measured through a resistor divider on an ADC pin.

The divider (R1 from the cell to the pin, R2 from the pin to ground) keeps the pin under the
ADC's range: ``ratio`` = (R1 + R2) / R2, 2.0 for two equal resistors as on most ESP32 boards with
a battery connector. The cell voltage is the scenario value ``battery_v`` (3.0 V empty .. 4.2 V
full; 3.9 V when the scenario does not set it). Fault "unplug": no cell, R2 pulls the pin to 0 V.
"""

from __future__ import annotations

from gonggi_emu.devices.base import ADCSource
from gonggi_emu.scenario import Scenario

__all__ = ["Battery"]


class Battery(ADCSource):
    kind = "battery"

    def __init__(self, scenario: Scenario, name: str | None = None, ratio: float = 2.0) -> None:
        super().__init__(scenario, name)
        if ratio < 1.0:
            raise ValueError(f"battery {self.name!r}: divider ratio {ratio} < 1 (a divider only divides)")
        self.ratio = ratio

    def cell_volts(self, now: float) -> float:
        return self.scenario.value("battery_v", now, default=3.9)

    def volts(self, now: float) -> float:
        if "unplug" in self.fault(now):
            return 0.0
        return self.cell_volts(now) / self.ratio
