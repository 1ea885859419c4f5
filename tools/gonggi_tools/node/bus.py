"""Is every I2C sensor of the site where the config says? An I2C scan on the board answers it.

UART sensors cannot be scanned (they only talk once configured); the node reports those as
MISSING, which ``gonggi node check`` shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gonggi_tools.node.board import Board
from gonggi_tools.node.errors import UnknownSensor
from gonggi_tools.node.site import I2cSensor

__all__ = ["BusReport", "require_sensors", "scan"]


@dataclass(frozen=True)
class BusReport:
    sensor: I2cSensor
    found: tuple[int, ...]  # every address that answered on the sensor's bus

    @property
    def present(self) -> bool:
        return self.sensor.address in self.found

    def describe(self) -> str:
        seen = ", ".join(f"0x{a:02x}" for a in self.found) or "nothing"
        if self.present:
            return f"answers at 0x{self.sensor.address:02x} on I2C{self.sensor.bus}"
        return f"not found on the bus: nothing at 0x{self.sensor.address:02x} (the scan found {seen})"


def scan(board: Board, sensors: Iterable[I2cSensor]) -> list[BusReport]:
    """Scan each bus the sensors use once (pins as configured, 100 kHz as the firmware runs them)."""
    sensors = list(sensors)
    buses = sorted({(s.bus, s.scl, s.sda) for s in sensors})
    if not buses:
        return []
    code = ("import machine\n"
            f"print(repr([machine.I2C(b, scl=machine.Pin(c), sda=machine.Pin(d), freq=100000).scan() for b, c, d in {buses!r}]))")
    found = dict(zip(buses, board.eval(code, "scanning the I2C bus")))
    return [BusReport(s, tuple(sorted(found[(s.bus, s.scl, s.sda)]))) for s in sensors]


def require_sensors(board: Board, sensors: Iterable[I2cSensor]) -> list[BusReport]:
    """The scan; UnknownSensor naming each configured sensor that does not answer."""
    reports = scan(board, sensors)
    missing = [r for r in reports if not r.present]
    if missing:
        raise UnknownSensor("; ".join(f"sensor {r.sensor} is {r.describe()}" for r in missing))
    return reports
