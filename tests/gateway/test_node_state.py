"""A node's latest readings are decoded when asked, newest value of each channel winning; the
pulse that wakes waiters misses no change."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gonggi_gateway.state import NodeState, Pulse, Reading

decoded: list[str] = []


def packet(label: str, t: float, **values: float) -> Callable[[], list[Reading]]:
    def decode() -> list[Reading]:
        decoded.append(label)
        return [Reading(name, None, value, t) for name, value in values.items()]
    return decode


def test_only_the_newest_packet_of_each_kind_is_decoded_and_only_when_asked() -> None:
    decoded.clear()
    state = NodeState("n")
    state.later(1, packet("a1", 1.0, x=1, y=1))
    state.later(2, packet("b2", 2.0, x=2))
    state.later(1, packet("a3", 3.0, x=3, y=3))
    state.later(2, packet("b4", 4.0, x=4))
    assert decoded == []
    assert {n: r.value for n, r in state.readings.items()} == {"x": 4, "y": 3}
    assert decoded == ["a3", "b4"]
    assert {n: r.value for n, r in state.readings.items()} == {"x": 4, "y": 3}
    assert decoded == ["a3", "b4"]  # taken once
    assert state.status().readings == (Reading("x", None, 4, 4.0), Reading("y", None, 3, 3.0))


def test_packets_of_many_kinds_are_taken_before_they_pile_up() -> None:
    decoded.clear()
    state = NodeState("n")
    for kind in range(17):
        state.later(kind, packet(f"k{kind}", kind, **{f"c{kind}": kind}))
    assert len(decoded) == 17  # the 17th kind went past the bound: all were taken
    assert len(state.readings) == 17


def test_a_fire_before_the_waiting_task_first_runs_is_not_missed() -> None:
    # Gateway.wait_until checks its predicate, then awaits a task made from Pulse.wait(); the
    # task first runs a turn later, after callbacks already queued, which may fire the pulse.
    async def main() -> None:
        pulse = Pulse()
        waiter = asyncio.ensure_future(pulse.wait())
        pulse.fire()
        await asyncio.wait_for(waiter, 5)

    asyncio.run(main())
