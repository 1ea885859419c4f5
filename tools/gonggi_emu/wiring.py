"""The bench built: device objects on the board's buses, pins and names."""

from __future__ import annotations

from dataclasses import dataclass, field

from gonggi_emu import devices
from gonggi_emu.bench import Bench, BenchError
from gonggi_emu.devices.base import ADCSource, Device, I2CTarget, I2SSource, UARTPeer
from gonggi_emu.scenario import Scenario

__all__ = ["Wiring"]

_BASE_FOR_BUS: dict[str, type[Device]] = {
    "uart": UARTPeer,
    "i2c": I2CTarget,
    "adc": ADCSource,
    "i2s": I2SSource,
}


@dataclass
class Wiring:
    by_name: dict[str, Device] = field(default_factory=dict)
    i2c: dict[int, dict[int, I2CTarget]] = field(default_factory=dict)  # bus -> address -> device
    uart: dict[int, UARTPeer] = field(default_factory=dict)
    adc: dict[int, ADCSource] = field(default_factory=dict)  # GPIO -> source
    i2s: dict[int, I2SSource] = field(default_factory=dict)
    pins: dict[int, tuple[Device, str]] = field(default_factory=dict)  # GPIO -> (device, role)

    @classmethod
    def build(cls, bench: Bench, scenario: Scenario) -> Wiring:
        wiring = cls()
        for i, spec in enumerate(bench.devices):
            where = f"{bench.source}: device[{i}]"
            try:
                device = devices.create(spec.kind, scenario, spec.name, **spec.options)
            except (TypeError, ValueError) as exc:
                raise BenchError(f"{where}.options: {exc}") from exc
            base = _BASE_FOR_BUS[spec.bus.kind]
            if not isinstance(device, base):
                raise BenchError(f"{where}.bus = {str(spec.bus)!r}: a {spec.kind} is not a {base.__name__}")
            wiring.by_name[spec.name] = device
            n = spec.bus.number
            if isinstance(device, I2CTarget):
                on_bus = wiring.i2c.setdefault(n, {})
                if device.address in on_bus:
                    other = on_bus[device.address].name
                    raise BenchError(f"{where}: address 0x{device.address:02x} on i2c{n} is taken by {other!r}")
                on_bus[device.address] = device
            elif isinstance(device, UARTPeer):
                wiring.uart[n] = device
            elif isinstance(device, ADCSource):
                wiring.adc[n] = device
            elif isinstance(device, I2SSource):
                wiring.i2s[n] = device
            for role, gpio in spec.pins.items():
                wiring.pins[gpio] = (device, role)
        return wiring
