"""run_link's two-deep pipeline: batch k+1 is verified while k commits, and exactly-once still holds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway_helpers import KEY, NODE, T0, MemoryLink, SimNode, write_registry
from gonggi_gateway.errors import StorageError
from gonggi_gateway.ingest import Ingest
from gonggi_gateway.protocol import Ack, Frame, FrameType, decode_control
from gonggi_gateway.registry import Registry
from gonggi_gateway.spool import PacketRow, Spool
from gonggi_gateway.state import Pulse


class FirstCommitGated(Spool):
    """A spool whose first commit waits for the test (and fails if told to); it notes the seqs
    of every commit that finished, in order."""

    waiting: asyncio.Event
    gate: asyncio.Event
    fail_first = False
    calls = 0
    finished: list[tuple[int, ...]]

    async def commit(self, packets: Sequence[PacketRow]) -> list[bool | None]:
        self.calls += 1
        if self.calls == 1:
            self.waiting.set()
            await self.gate.wait()
            if self.fail_first:
                raise StorageError("disk full")
        flags = await super().commit(packets)
        self.finished.append(tuple(seq for _, _, seq, *_ in packets))
        return flags


@dataclass
class WitnessLink(MemoryLink):
    """A MemoryLink that says when it handed out its second batch, and notes with each frame it
    sends the commits that had finished by then."""

    spool: FirstCommitGated | None = None
    batches: int = 0
    second_taken: asyncio.Event = field(default_factory=asyncio.Event)
    witnessed: list[tuple[tuple[int, ...], ...]] = field(default_factory=list)

    async def receive(self) -> list[Frame]:
        frames = await super().receive()
        self.batches += 1
        if self.batches == 2:
            self.second_taken.set()
        return frames

    async def send(self, ftype: int, body: bytes) -> None:
        assert self.spool is not None
        self.witnessed.append(tuple(self.spool.finished))
        await super().send(ftype, body)


def run_pipelined(tmp_path: Path, *, fail_first: bool,
                  check: Callable[[Ingest, FirstCommitGated, WitnessLink], Awaitable[None]]) -> None:
    """Batch k = packets 0, 1; batch k+1 = packets 1 (the node resent it: no ack yet), 2. ``check``
    runs once k+1 was received while k's commit waits; then k's commit goes on (or fails)."""
    node = SimNode()
    registry = Registry(write_registry(tmp_path / "nodes.toml", {NODE: KEY}))

    async def main() -> None:
        async with FirstCommitGated(tmp_path / "spool.sqlite", ["archive"]) as spool:
            spool.waiting, spool.gate, spool.finished, spool.fail_first = asyncio.Event(), asyncio.Event(), [], fail_first
            ingest = Ingest(spool, registry, Pulse(), clock=lambda: T0)
            link = WitnessLink(spool=spool)
            link.deliver(node.data_frame(0), node.data_frame(1))
            link.deliver(node.data_frame(1), node.data_frame(2))
            link.end()
            async with asyncio.timeout(30):  # a guard against a hang, not a synchronisation
                running = asyncio.create_task(ingest.run_link(link))
                await spool.waiting.wait()
                await link.second_taken.wait()  # k+1 received (and verified) while k commits
                for _ in range(5):  # a chance for anything acking k+1 early to run
                    await asyncio.sleep(0)
                assert link.sent == []  # nothing acked while k is not durable
                spool.gate.set()
                await running
            await check(ingest, spool, link)

    asyncio.run(main())


def _acks(link: WitnessLink) -> list[tuple[Ack, ...]]:
    return [decode_control(f.body, KEY).acks for f in link.sent if f.type == FrameType.CONTROL]


def test_a_duplicate_of_a_batch_in_flight_is_acked_only_after_that_batch_is_committed(tmp_path: Path) -> None:
    async def check(ingest: Ingest, spool: FirstCommitGated, link: WitnessLink) -> None:
        assert _acks(link) == [(Ack(1, 0, 1),), (Ack(1, 1, 2),)]
        # The ack of the resent packet 1 went out after the commit that stored it, not just after k+1's.
        assert link.witnessed == [((0, 1),), ((0, 1), (1, 2))]
        assert spool.finished == [(0, 1), (1, 2)]  # k+1's commit began after k's finished
        assert [r.seq for r in await spool.pending("archive")] == [0, 1, 2]
        assert (ingest.nodes[NODE].packets, ingest.nodes[NODE].duplicates) == (3, 1)

    run_pipelined(tmp_path, fail_first=False, check=check)


def test_a_failed_commit_acks_nothing_of_its_batch_and_the_resent_packet_is_new(tmp_path: Path) -> None:
    async def check(ingest: Ingest, spool: FirstCommitGated, link: WitnessLink) -> None:
        assert _acks(link) == [(Ack(1, 1, 2),)]  # packet 0 is not acked: the node keeps it and resends it
        assert spool.finished == [(1, 2)]
        assert [r.seq for r in await spool.pending("archive")] == [1, 2]
        assert (ingest.nodes[NODE].packets, ingest.nodes[NODE].duplicates) == (2, 0)

    run_pipelined(tmp_path, fail_first=True, check=check)
