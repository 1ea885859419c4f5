"""Drainers read the spool in batches by size and by time (with jitter), retry, and set aside
what upstream refuses for good."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from gonggi_gateway.config import Batching
from gonggi_gateway.errors import UplinkError, UplinkRejected
from gonggi_gateway.retry import Backoff
from gonggi_gateway.spool import NewPacket, Spool, SpooledPacket
from gonggi_gateway.state import Pulse
from gonggi_gateway.uplinks import Drainer, Uplink


def packet(seq: int) -> NewPacket:
    return NewPacket("n1", 1, seq, 1000.0 + seq, b"c", f'[{{"n":"x","v":{seq},"t":1}}]')


class Recorder(Uplink):
    """An upstream that records each batch; ``answers`` says what the next sends do."""

    name = "test"

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.answers: list[Exception | None] = []
        self.sent = asyncio.Event()

    async def send(self, batch: Sequence[SpooledPacket]) -> None:
        self.batches.append([p.seq for p in batch])
        self.sent.set()
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer

    async def wait_batches(self, count: int) -> None:
        while len(self.batches) < count:
            self.sent.clear()
            await self.sent.wait()


def run(tmp_path: Path, batching: Batching, body: Callable[[Spool, Recorder, Drainer, Pulse], Awaitable[None]]) -> None:
    async def main() -> None:
        async with Spool(tmp_path / "spool.sqlite", ["test"]) as spool:
            uplink = Recorder()
            progress = Pulse()
            drainer = Drainer(spool, uplink, batching=batching, backoff=Backoff(0.01, 0.02), on_change=progress.fire)
            task = asyncio.create_task(drainer.run())
            try:
                await asyncio.wait_for(body(spool, uplink, drainer, progress), 10)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


def test_a_batch_waits_for_its_size_within_the_flush_interval(tmp_path: Path) -> None:
    async def body(spool: Spool, uplink: Recorder, drainer: Drainer, progress: Pulse) -> None:
        await spool.commit([packet(0), packet(1)])
        for _ in range(5):
            await asyncio.sleep(0)  # the drainer sees two rows: fewer than a batch, it waits
        await spool.commit([packet(s) for s in range(2, 7)])  # the size is reached: it goes
        await uplink.wait_batches(1)
        assert uplink.batches == [[0, 1, 2, 3, 4]]
        while spool.depth() != 2:
            await progress.wait()

    run(tmp_path, Batching(size=5, flush_interval_s=60.0), body)


def test_a_batch_short_of_its_size_goes_when_the_interval_is_over(tmp_path: Path) -> None:
    async def body(spool: Spool, uplink: Recorder, drainer: Drainer, progress: Pulse) -> None:
        await spool.commit([packet(0), packet(1), packet(2)])
        await uplink.wait_batches(1)
        assert uplink.batches == [[0, 1, 2]]

    run(tmp_path, Batching(size=100, flush_interval_s=0.05, flush_jitter_s=0.05), body)


def test_a_backlog_goes_out_in_full_batches_oldest_first(tmp_path: Path) -> None:
    async def body(spool: Spool, uplink: Recorder, drainer: Drainer, progress: Pulse) -> None:
        await spool.commit([packet(s) for s in range(25)])
        await uplink.wait_batches(3)
        assert uplink.batches == [list(range(0, 10)), list(range(10, 20)), list(range(20, 25))]
        while spool.depth():
            await progress.wait()
        assert drainer.status().delivered == 25

    run(tmp_path, Batching(size=10), body)


def test_the_flush_delay_is_the_interval_plus_a_random_jitter() -> None:
    drainer = Drainer(None, Recorder(), batching=Batching(10, 2.0, 0.5), rng=random.Random(7))  # type: ignore[arg-type]
    delays = [drainer.flush_delay() for _ in range(50)]
    assert all(2.0 <= d <= 2.5 for d in delays) and len(set(delays)) == 50
    assert Drainer(None, Recorder(), batching=Batching(10, 2.0)).flush_delay() == 2.0  # type: ignore[arg-type]


def test_a_failed_batch_is_sent_again_as_it_was_and_retry_after_is_honoured(tmp_path: Path) -> None:
    async def body(spool: Spool, uplink: Recorder, drainer: Drainer, progress: Pulse) -> None:
        uplink.answers = [UplinkError("HTTP 503"), UplinkError("refused")]
        await spool.commit([packet(s) for s in range(3)])
        await uplink.wait_batches(3)
        assert uplink.batches == [[0, 1, 2]] * 3  # the same rows, with no flush wait before a retry
        while spool.depth():
            await progress.wait()
        status = drainer.status()
        assert (status.delivered, status.failures, status.last_error, status.rejected) == (3, 2, None, 0)
        assert drainer.retry_delay(UplinkError("HTTP 429", retry_after=7.0)) == 7.0
        assert drainer.retry_delay(UplinkError("HTTP 500")) < 1.0

    run(tmp_path, Batching(size=10, flush_interval_s=0.01), body)


def test_a_batch_refused_for_good_goes_to_the_dead_letters_and_the_rest_flows(tmp_path: Path) -> None:
    async def body(spool: Spool, uplink: Recorder, drainer: Drainer, progress: Pulse) -> None:
        uplink.answers = [UplinkRejected("POST http://x: HTTP 400: 'no such unit'")]
        await spool.commit([packet(s) for s in range(5)])
        await uplink.wait_batches(3)
        assert uplink.batches == [[0, 1], [2, 3], [4]]
        while spool.depth():
            await progress.wait()
        assert drainer.status().rejected == 2 and drainer.status().delivered == 3
        assert [(d.seq, d.reason) for d in await spool.dead_letters()] == [
            (0, "POST http://x: HTTP 400: 'no such unit'"), (1, "POST http://x: HTTP 400: 'no such unit'")]

    run(tmp_path, Batching(size=2), body)


def test_a_drainer_cancelled_as_its_rows_arrive_stops(tmp_path: Path) -> None:
    # Python 3.11's asyncio.wait_for returns the result of an inner wait that completes in the
    # same turn as the outer cancel, swallowing the cancel: a gateway shutting down as packets
    # arrived then waited forever for its drainer.
    async def main() -> None:
        async with Spool(tmp_path / "spool.sqlite", ["test"]) as spool:
            entered, release = asyncio.Event(), asyncio.Event()

            async def wait_count(name: str, count: int) -> None:
                entered.set()
                await release.wait()

            spool.wait_count = wait_count  # type: ignore[method-assign]
            task = asyncio.create_task(Drainer(spool, Recorder(), batching=Batching(size=5)).run())
            await entered.wait()
            release.set()  # the rows are there ...
            task.cancel()  # ... as the gateway stops
            await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 5)
            assert task.cancelled()

    asyncio.run(main())
