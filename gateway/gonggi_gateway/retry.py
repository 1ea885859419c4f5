"""Exponential backoff: the one retry policy of the gateway (serial ports, uplinks)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Delays ``initial, initial*factor, ...`` up to ``maximum``, with ±10 % jitter so many
    gateways do not reconnect to one broker in lockstep. ``reset()`` after a success."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    _next: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._next = self.initial

    def next_delay(self) -> float:
        delay = self._next * random.uniform(0.9, 1.1)
        self._next = min(self._next * self.factor, self.maximum)
        return delay

    async def wait(self) -> None:
        await asyncio.sleep(self.next_delay())
