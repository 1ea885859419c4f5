"""What the emulated UART particulate sensors share: fan and power state, warm-up, timed output,
and the line faults a scenario injects.

A subclass supplies its frame formats and command set (``_data_frame``, ``_on_bytes``) and its
cadence (``_streaming``, ``_interval``). Output is a queue of (time, bytes): ``transmit(now)``
hands over everything due by ``now`` and the board paces it at the baud rate.

Modelled, not from a datasheet (both only promise stable data 30 s after the fan starts): the
first frame comes ``FIRST_FRAME_S`` after wake or power-up; readings are 0 for ``ZERO_S``, then
climb linearly to the true value at ``WARMUP_S``.
"""

from __future__ import annotations

import math
import random
from abc import abstractmethod
from dataclasses import dataclass

from gonggi_emu.devices.base import UARTPeer
from gonggi_emu.scenario import Scenario

__all__ = ["Airborne", "ParticulateSensor"]

FIRST_FRAME_S = 1.0
ZERO_S = 3.0
WARMUP_S = 30.0
REPLY_S = 0.01   # from the end of a command to the start of its answer


@dataclass(frozen=True)
class Airborne:
    """Mass concentrations (ug/m3) the optics see, each size class including the smaller ones."""

    pm1: float
    pm25: float
    pm10: float


class ParticulateSensor(UARTPeer):
    """Fan, power, warm-up, output queue and faults of a streaming UART PM sensor."""

    # The start of a frame: garbage sometimes contains it, to test the driver's resync.
    header = b""

    def __init__(self, scenario: Scenario, name: str | None = None, seed: int = 0) -> None:
        super().__init__(scenario, name)
        self._rng = random.Random(f"{self.name}/{seed}")
        self._queue: list[tuple[float, bytes]] = []
        self._rx = bytearray()
        self._last_data: bytes | None = None
        self.powered = True
        self.asleep = False
        self.woke_at = 0.0
        self._next_frame = FIRST_FRAME_S
        self.frames_sent = 0

    # -- UARTPeer ----------------------------------------------------------------------------

    def received(self, data: bytes, now: float) -> None:
        self._advance(now)
        if not self.powered:
            return
        self._rx += data
        self._on_bytes(now)

    def transmit(self, now: float) -> bytes:
        self._advance(now)
        due = [chunk for t, chunk in self._queue if t <= now]
        self._queue = [(t, chunk) for t, chunk in self._queue if t > now]
        return b"".join(due)

    @property
    def fan_on(self) -> bool:
        return self.powered and not self.asleep

    # -- for subclasses ----------------------------------------------------------------------

    @abstractmethod
    def _data_frame(self, t: float) -> bytes:
        """A data frame with the values measured at ``t``."""

    @abstractmethod
    def _on_bytes(self, now: float) -> None:
        """Consume the complete commands in ``self._rx`` and act on them."""

    @abstractmethod
    def _streaming(self) -> bool:
        """Whether the sensor sends data frames on its own right now."""

    @abstractmethod
    def _interval(self, t: float) -> float:
        """Seconds from the data frame sent at ``t`` to the next one."""

    def _power_on(self, t: float) -> None:
        """Power returns at ``t``: what a reset leaves (subclasses reset their modes too)."""
        self.powered = True
        self._rx.clear()
        self._start_fan(t)

    def _start_fan(self, t: float) -> None:
        self.asleep = False
        self.woke_at = t
        self._next_frame = t + FIRST_FRAME_S

    def airborne(self, t: float) -> Airborne:
        """What the sensor measures at ``t``: the scenario's values through the warm-up ramp.

        ``pm2_5_ugm3`` is required; a scenario without ``pm1_ugm3``/``pm10_ugm3`` gets typical
        urban ratios (PM1 = 0.75 PM2.5, PM10 = 1.3 PM2.5).
        """
        pm25 = self.scenario.value("pm2_5_ugm3", t)
        pm1 = min(self.scenario.value("pm1_ugm3", t, 0.75 * pm25), pm25)
        pm10 = max(self.scenario.value("pm10_ugm3", t, 1.3 * pm25), pm25)
        age = t - self.woke_at
        if age >= WARMUP_S:
            k = 1.0
        elif age < ZERO_S:
            k = 0.0
        else:
            k = (age - ZERO_S) / (WARMUP_S - ZERO_S)
        return Airborne(max(pm1, 0.0) * k, max(pm25, 0.0) * k, max(pm10, 0.0) * k)

    def _send(self, t: float, frame: bytes, data: bool) -> None:
        """Queue ``frame`` for ``t`` through the faults active then (``data``: a data frame)."""
        faults = self.fault(t)
        if "unplug" in faults or "silent" in faults:
            return
        if data:
            if "stuck" in faults and self._last_data is not None:
                frame = self._last_data
            else:
                self._last_data = frame
        if "checksum" in faults:
            frame = self._corrupt(frame)
        if "truncate" in faults:
            frame = frame[: self._rng.randint(2, len(frame) - 1)]
        if "garbage" in faults:
            frame = self._garbage() + frame
        self._queue.append((t, frame))
        if data:
            self.frames_sent += 1

    @abstractmethod
    def _corrupt(self, frame: bytes) -> bytes:
        """The frame with a wrong check code (subclasses know where it is)."""

    def _garbage(self) -> bytes:
        junk = bytearray(self._rng.randbytes(self._rng.randint(1, 24)))
        if self._rng.random() < 0.5:
            at = self._rng.randint(0, len(junk))
            junk[at:at] = self.header
        return bytes(junk)

    def _reply(self, now: float, frame: bytes, data: bool = False) -> None:
        self._send(now + REPLY_S, frame, data)

    # -- time --------------------------------------------------------------------------------

    def _powered_at(self, t: float) -> bool:
        """Follow the "unplug" fault: power goes at its start and a reset happens at its end."""
        unplugged = "unplug" in self.fault(t)
        if unplugged and self.powered:
            self.powered = False
            self._rx.clear()
            self._queue = [(q, chunk) for q, chunk in self._queue if q < t]
        elif not unplugged and not self.powered:
            self._power_on(t)
        return self.powered

    def _advance(self, now: float) -> None:
        while self._next_frame <= now:
            t = self._next_frame
            if not self._powered_at(t):
                self._next_frame = t + FIRST_FRAME_S
                continue
            if self._next_frame != t:
                continue  # power came back at t: the fan restarts first
            if not self._streaming():
                self._next_frame = math.inf   # until wake-up or a mode command reschedules
                break
            self._send(t, self._data_frame(t), True)
            self._next_frame = t + self._interval(t)
        self._powered_at(now)
