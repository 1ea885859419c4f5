"""A virtual radio on its own, as ``gonggi emu radio`` runs it: listen, serve until stopped, sum up.

::

    stop = asyncio.Event()
    summary = await run_radio(Path("radio.sock"), stop, on_listening=print)
    print(summary)  # "2 peripherals seen, 14 connections (1 failed), 0 lost"
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gonggi_emu.radio.server import Timing, VirtualRadio

__all__ = ["RadioInUse", "RadioSummary", "run_radio"]

# The radio keeps only the peripherals on the air now; sampling them this often catches every
# board that stays longer (an advertising board stays at least one advertising interval).
_SAMPLE_S = 0.25


class RadioInUse(RuntimeError):
    """Another radio already listens on the socket: starting would steal it from its boards."""


@dataclass(frozen=True)
class RadioSummary:
    """What the radio saw while it ran."""

    peripherals: int  # distinct peripheral addresses (a rebooted board counts once)
    connections: int
    failed: int  # connects that failed (timeout, abort, no free slot)
    lost: int  # connections lost (a peripheral gone, a fault)

    def __str__(self) -> str:
        s = "" if self.peripherals == 1 else "s"
        return (f"{self.peripherals} peripheral{s} seen, {self.connections} connections "
                f"({self.failed} failed), {self.lost} lost")


def _refuse_live(path: Path) -> None:
    # asyncio replaces an existing socket file, stale or not: only a stale one may go.
    if not path.is_socket():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return  # nobody listens: a leftover of a radio that was killed
    raise RadioInUse(f"another virtual radio is listening on {path}")


async def run_radio(path: Path, stop: asyncio.Event, *, timing: Timing | None = None, max_connections: int = 8,
                    on_listening: Callable[[VirtualRadio], None] | None = None) -> RadioSummary:
    """Serve a :class:`VirtualRadio` on ``path`` (its directory created if missing) until ``stop``
    is set; ``on_listening`` runs once it accepts connections. Raises :class:`RadioInUse`, or
    ``OSError`` if it cannot listen there."""
    _refuse_live(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    async with VirtualRadio(path, timing=timing, max_connections=max_connections) as radio:
        if on_listening is not None:
            on_listening(radio)
        while not stop.is_set():
            seen.update(radio.peripherals)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_SAMPLE_S):
                    await stop.wait()
        seen.update(radio.peripherals)
        stats = radio.stats
        return RadioSummary(len(seen), stats.connects, stats.connect_failures, stats.lost)
