"""Scenarios: what the emulated world measures over time, and which faults it injects when.

A scenario file is TOML::

    [values]
    temperature_c = 21.5                    # a constant
    pm2_5_ugm3 = [[0, 5.0], [60, 35.0]]     # piecewise-linear over scenario seconds

    [[faults]]
    device = "pms5003"                      # the device's name in the bench
    kind = "checksum"                       # see FAULT_KINDS
    start = 30.0
    end = 40.0                              # omitted: until the end
"""

from __future__ import annotations

import bisect
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Curve", "Fault", "Scenario", "ScenarioError", "FAULT_KINDS"]

FAULT_KINDS = frozenset(
    {"checksum", "truncate", "garbage", "nack", "unplug", "stuck", "silent", "clip"}
)


class ScenarioError(ValueError):
    """A scenario file or value that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class Curve:
    """Piecewise-linear value over time; constant before the first and after the last point."""

    times: tuple[float, ...]
    values: tuple[float, ...]

    @classmethod
    def parse(cls, raw: Any, where: str) -> Curve:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return cls((0.0,), (float(raw),))
        try:
            points = sorted((float(t), float(v)) for t, v in raw)
        except (TypeError, ValueError) as exc:
            raise ScenarioError(
                f"{where}: expected a number or a list of [seconds, value] pairs"
            ) from exc
        if not points:
            raise ScenarioError(f"{where}: a curve needs at least one [seconds, value] point")
        return cls(tuple(p[0] for p in points), tuple(p[1] for p in points))

    def at(self, t: float) -> float:
        i = bisect.bisect_right(self.times, t)
        if i == 0:
            return self.values[0]
        if i == len(self.times):
            return self.values[-1]
        t0, t1 = self.times[i - 1], self.times[i]
        v0, v1 = self.values[i - 1], self.values[i]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


@dataclass(frozen=True)
class Fault:
    device: str
    kind: str
    start: float = 0.0
    end: float = float("inf")

    def active(self, device: str, t: float) -> bool:
        return self.device == device and self.start <= t < self.end


@dataclass
class Scenario:
    values: dict[str, Curve] = field(default_factory=dict)
    fault_list: list[Fault] = field(default_factory=list)

    def value(self, name: str, t: float, default: float | None = None) -> float:
        curve = self.values.get(name)
        if curve is None:
            if default is None:
                raise ScenarioError(f"the scenario sets no value for {name!r}")
            return default
        return curve.at(t)

    def set(self, name: str, value: Any) -> None:
        """Change a value while the board runs (tests and the demo's knobs)."""
        self.values[name] = Curve.parse(value, name)

    def faults(self, device: str, t: float) -> frozenset[str]:
        return frozenset(f.kind for f in self.fault_list if f.active(device, t))

    def inject(self, fault: Fault) -> None:
        self.fault_list.append(fault)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "scenario") -> Scenario:
        values = {
            name: Curve.parse(v, f"{where}: values.{name}")
            for name, v in raw.get("values", {}).items()
        }
        faults = []
        for i, f in enumerate(raw.get("faults", [])):
            key = f"{where}: faults[{i}]"
            kind = f.get("kind")
            if kind not in FAULT_KINDS:
                raise ScenarioError(f"{key}.kind = {kind!r}; allowed: {', '.join(sorted(FAULT_KINDS))}")
            if "device" not in f:
                raise ScenarioError(f"{key}.device is missing")
            faults.append(
                Fault(str(f["device"]), kind, float(f.get("start", 0.0)), float(f.get("end", float("inf"))))
            )
        return cls(values, faults)

    @classmethod
    def load(cls, path: Path) -> Scenario:
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ScenarioError(f"{path}: {exc}") from exc
        return cls.from_dict(raw, str(path))
