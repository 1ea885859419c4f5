"""What the emulated I2C sensors share: fault gating, power-on after an unplug, noisy readings.

A device NACKs every transaction while the scenario injects "nack" or "unplug". An unplugged
part loses power, so when the plug comes back it answers again as after power-on
(:meth:`EmulatedI2C.power_on`). "stuck" freezes what the part measures (the same raw bytes come
back, :meth:`EmulatedI2C.held`); "checksum", "garbage" and "truncate" change the bytes the MCU
reads (:meth:`EmulatedI2C.corrupt`).
"""

from __future__ import annotations

import random
import zlib
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

from gonggi_emu.devices.base import I2CTarget
from gonggi_emu.scenario import Scenario

__all__ = ["EPS", "EmulatedI2C"]

# Times are float seconds: a driver that waits exactly the datasheet's time must not lose to
# rounding (0.005 + 0.1 > 0.105).
EPS = 1e-6

T = TypeVar("T")


class EmulatedI2C(I2CTarget):
    """An I2C part with power-on state, scenario faults and datasheet-sized measurement noise.

    ``noise`` scales the noise (1.0 = the datasheet's typical repeatability, 0 = exact values);
    real parts are never noise-free, so a constant scenario value still gives changing raw data.
    """

    def __init__(
        self,
        scenario: Scenario,
        name: str | None = None,
        address: int | None = None,
        noise: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(scenario, name)
        if address is not None:
            self.address = address
        self.noise = noise
        self._rng = random.Random(zlib.crc32(self.name.encode()) if seed is None else seed)
        self._seen = 0.0
        self._held: Any = None
        self.power_on(0.0)

    @abstractmethod
    def power_on(self, now: float) -> None:
        """Put every register and mode in its power-on state, as at ``now``."""

    def answers(self, now: float) -> bool:
        """Whether the part takes part in a transaction at ``now``; False means NACK."""
        faults = self.fault(now)
        if "nack" in faults or "unplug" in faults:
            self._seen = now
            return False
        # An unplug window that ended since the last transaction powered the part off and on.
        ended = [
            f.end
            for f in self.scenario.fault_list
            if f.device == self.name and f.kind == "unplug" and self._seen < f.end <= now
        ]
        if ended:
            self.power_on(max(ended))
        self._seen = now
        return True

    def reading(self, key: str, now: float, default: float, sigma: float) -> float:
        """The scenario value ``key`` at ``now`` plus measurement noise of ``sigma``."""
        return self.scenario.value(key, now, default) + self.jitter(sigma)

    def jitter(self, sigma: float) -> float:
        """One draw of zero-mean measurement noise (scaled by ``noise``)."""
        return self._rng.gauss(0.0, sigma * self.noise)

    def held(self, now: float, measure: Callable[[], T]) -> T:
        """``measure()``, or while "stuck" is injected the last result again, unchanged."""
        if "stuck" in self.fault(now) and self._held is not None:
            return self._held
        self._held = measure()
        return self._held

    def corrupt(self, frame: bytes, now: float) -> bytes:
        """Apply the scenario's frame faults to ``frame`` as read by the MCU."""
        faults = self.fault(now)
        out = bytearray(frame)
        if out and "checksum" in faults:
            out[-1] ^= 0x01  # one flipped bit on the wire
        if out and "garbage" in faults:
            out[self._rng.randrange(len(out))] ^= 1 << self._rng.randrange(8)
        if "truncate" in faults:
            # The part stops driving SDA halfway: the master reads the released bus as 0xFF.
            half = len(out) // 2
            out[half:] = b"\xff" * (len(out) - half)
        return bytes(out)
