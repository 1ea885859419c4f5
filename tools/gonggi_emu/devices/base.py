"""What an emulated peripheral implements to sit behind the emulated board's ``machine`` module.

Each device is built as ``Cls(scenario, **options)`` from the bench file (see ``REGISTRY`` in
``gonggi_emu.devices``). ``now`` is scenario time in seconds since the board powered up.
A device answers exactly what the datasheet's part would: a driver must not be able to tell.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from gonggi_emu.scenario import Scenario

__all__ = ["Device", "I2CTarget", "UARTPeer", "ADCSource", "I2SSource"]


class Device(ABC):
    """Common base: every device knows its scenario and its name in fault entries."""

    kind = ""

    def __init__(self, scenario: Scenario, name: str | None = None) -> None:
        self.scenario = scenario
        self.name = name or self.kind

    def fault(self, now: float) -> frozenset[str]:
        """Faults the scenario injects into this device at ``now``."""
        return self.scenario.faults(self.name, now)

    def power_on(self, now: float) -> None:
        """The board's supply came back after a power cut (``EmulatedBoard.power_cycle``)."""

    def pin_changed(self, role: str, level: int, now: float) -> None:
        """The MCU drove the GPIO wired to this device's ``role`` pin (bench ``pins``) to ``level``."""

    def pin_level(self, role: str, now: float) -> int | None:
        """The level this device drives on its ``role`` pin; None when it does not drive it."""
        return None


class I2CTarget(Device):
    """An I2C target at a 7-bit address. Plugged out (fault "unplug") means every call NACKs."""

    address: int

    @abstractmethod
    def i2c_write(self, data: bytes, now: float) -> bool:
        """One write transaction (the register pointer or command, then data). False = NACK."""

    @abstractmethod
    def i2c_read(self, n: int, now: float) -> bytes | None:
        """One read transaction of ``n`` bytes. None = NACK."""


class UARTPeer(Device):
    """A device at the far end of one of the board's UARTs (its TX is the MCU's RX)."""

    baudrate = 9600

    @abstractmethod
    def received(self, data: bytes, now: float) -> None:
        """Bytes the MCU transmitted to the device."""

    @abstractmethod
    def transmit(self, now: float) -> bytes:
        """Bytes the device has sent since the last call (the board paces them at the baud rate)."""


class ADCSource(Device):
    """An analog voltage on an ADC pin."""

    @abstractmethod
    def volts(self, now: float) -> float:
        """The pin voltage at ``now``; the board converts it as the ESP32 ADC does."""


class I2SSource(Device):
    """A digital microphone on an I2S bus."""

    @abstractmethod
    def i2s_read(self, nbytes: int, bits: int, rate: int) -> bytes:
        """The next ``nbytes`` of PCM in the MCU's slot format (little-endian, ``bits`` per slot).

        Samples are produced on demand: audio time advances with the samples read, so tests can
        run faster than real time.
        """
