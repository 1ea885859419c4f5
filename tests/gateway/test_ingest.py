"""Ingest: verify, de-duplicate, spool, then ack; every rejection counted; bad input never raises."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import cbor2
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from gateway_helpers import KEY, NODE, OTHER_KEY, T0, MemoryLink, SimNode, write_registry
from gonggi_gateway.errors import StorageError
from gonggi_gateway.ingest import MAX_ACKS_PER_CONTROL, Ingest, merge_acks
from gonggi_gateway.protocol import Ack, Frame, FrameDecoder, FrameType, encode_frame, mac0_encode
from gonggi_gateway.registry import Registry
from gonggi_gateway.spool import PacketRow, Spool
from gonggi_gateway.state import Pulse

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def run_with_ingest(tmp_path: Path, body: Callable[[Ingest, Spool, MemoryLink], Awaitable[None]],
                    nodes: dict[str, bytes] | None = None, spool_class: type[Spool] = Spool) -> None:
    registry = Registry(write_registry(tmp_path / "nodes.toml", nodes or {NODE: KEY}))

    async def main() -> None:
        async with spool_class(tmp_path / "spool.sqlite", ["archive"]) as spool:
            ingest = Ingest(spool, registry, Pulse(), clock=lambda: T0)
            await body(ingest, spool, MemoryLink())

    asyncio.run(main())


def test_data_is_stored_then_acked_with_senml_json(tmp_path: Path) -> None:
    node = SimNode()

    async def body(ingest: Ingest, spool: Spool, link: MemoryLink) -> None:
        await ingest.handle(link, [node.data_frame(0), node.data_frame(1)])
        rows = await spool.pending("archive")
        assert [(r.node, r.boot, r.seq, r.received_at) for r in rows] == [(NODE, 1, 0, T0), (NODE, 1, 1, T0)]
        assert json.loads(rows[0].records) == [
            {"bn": f"urn:dev:gonggi:{NODE}:", "n": "bat.v", "u": "V", "v": pytest.approx(3.9), "t": 1764000000},
            {"n": "bat.n", "v": 12, "t": 1764000000},
        ]
        [ctl] = link.controls()
        assert ctl.node_id == NODE and ctl.boot == 1
        assert ctl.acks == (Ack(1, 0, 1),)
        assert ctl.time_ms == T0 * 1000  # first contact: the node gets the clock
        assert link.node_id == NODE
        status = ingest.nodes[NODE].status()
        assert (status.packets, status.duplicates, status.last_seen, status.link) == (2, 0, T0, "memory:0")
        assert {r.name: r.value for r in status.readings} == {"bat.v": pytest.approx(3.901), "bat.n": 12}

    run_with_ingest(tmp_path, body)


@pytest.mark.parametrize("name", ["data-battery-synced", "data-multi-unsynced"])
def test_vectors_are_stored_with_their_readings(tmp_path: Path, name: str) -> None:
    vector = json.loads((VECTORS / f"{name}.json").read_text())
    frames = FrameDecoder().feed(bytes.fromhex(vector["frame"]))

    async def body(ingest: Ingest, spool: Spool, link: MemoryLink) -> None:
        await ingest.handle(link, frames)
        [row] = await spool.pending("archive")
        assert (row.node, row.boot, row.seq) == (vector["node_id"], vector["boot"], vector["seq"])
        assert row.cose == bytes.fromhex(vector["cose"])
        records = json.loads(row.records)
        assert records[0]["bn"] == f"urn:dev:gonggi:{vector['node_id']}:"
        # The float32 on the wire is published as the decimal reading the node took (12.5, -5.25, 43.12).
        expected = {r["n"]: round(r["m"] * 10.0 ** r["exp"], -r["exp"]) for r in vector["readings"]}
        assert {r["n"]: r["v"] for r in records} == expected
        assert {r["n"]: r.get("u", "") for r in records} == {r["n"]: r["u"] for r in vector["readings"]}
        if vector["bt"] >= 2**28:
            wall = vector["bt"]
        else:  # seconds since boot, mapped through the frame's uptime (docs/protocol.md, Time)
            wall = T0 - (vector["uptime_ms"] - vector["bt"] * 1000) / 1000
        assert all(math.isclose(r["t"], wall) for r in records)
        [ctl] = link.controls(bytes.fromhex(vector["key"]))
        assert ctl.acks == (Ack(vector["boot"], vector["seq"], vector["seq"]),)

    run_with_ingest(tmp_path, body, nodes={vector["node_id"]: bytes.fromhex(vector["key"])})


def test_duplicates_are_acked_again_but_stored_once_even_after_delivery(tmp_path: Path) -> None:
    node = SimNode()

    async def body(ingest: Ingest, spool: Spool, link: MemoryLink) -> None:
        await ingest.handle(link, [node.data_frame(0), node.data_frame(1)])
        rows = await spool.pending("archive")
        await spool.confirm("archive", rows[-1].id)  # delivered upstream and deleted
        assert spool.depth() == 0
        await ingest.handle(link, [node.data_frame(1), node.data_frame(2)])
        assert [r.seq for r in await spool.pending("archive")] == [2]
        assert link.controls()[-1].acks == (Ack(1, 1, 2),)
        assert ingest.nodes[NODE].duplicates == 1 and ingest.rejected["duplicate"] == 1

    run_with_ingest(tmp_path, body)


def test_hello_gets_the_clock_and_nothing_else_bound_to_its_boot(tmp_path: Path) -> None:
    node = SimNode(boot=8)

    async def body(ingest: Ingest, spool: Spool, link: MemoryLink) -> None:
        await ingest.handle(link, [node.hello_frame(backlog=3)])
        [ctl] = link.controls()
        assert (ctl.boot, ctl.acks, ctl.time_ms, ctl.config) == (8, (), T0 * 1000, {})
        assert spool.depth() == 0
        assert ingest.nodes[NODE].backlog == 3 and ingest.nodes[NODE].firmware == "0.1.0"
        # Backlog of the previous boot: acked with its own boot, CONTROL bound to the current one.
        await ingest.handle(link, [node.data_frame(5, boot=7), node.data_frame(6, boot=7)])
        ctl = link.controls()[-1]
        assert (ctl.boot, ctl.acks) == (8, (Ack(7, 5, 6),))

    run_with_ingest(tmp_path, body)


def test_time_goes_out_when_unsynced_or_due(tmp_path: Path) -> None:
    node = SimNode()
    registry = Registry(write_registry(tmp_path / "nodes.toml", {NODE: KEY}))
    now = [0.0]

    async def main() -> None:
        async with Spool(tmp_path / "spool.sqlite", ["archive"]) as spool:
            ingest = Ingest(spool, registry, Pulse(), time_interval=600, clock=lambda: T0, monotonic=lambda: now[0])
            link = MemoryLink()
            await ingest.handle(link, [node.data_frame(0)])  # first contact: clock sent
            now[0] = 599.0
            await ingest.handle(link, [node.data_frame(1)])  # synced, interval not over: no clock
            await ingest.handle(link, [node.data_frame(2, bt=60)])  # seconds since boot: clock again
            now[0] = 1198.0
            await ingest.handle(link, [node.data_frame(3)])  # 599 s after the last: no clock
            now[0] = 1199.0
            await ingest.handle(link, [node.data_frame(4)])  # interval over: clock
            assert [c.time_ms is not None for c in link.controls()] == [True, False, True, False, True]

    asyncio.run(main())


def test_rejections_are_counted_by_reason_and_nothing_is_stored(tmp_path: Path) -> None:
    node = SimNode()
    stranger = SimNode(node_id="gg-stranger", key=OTHER_KEY)

    async def body(ingest: Ingest, spool: Spool, link: MemoryLink) -> None:
        good = node.data(0)
        await ingest.handle(link, [
            node.data_frame(0, key=OTHER_KEY),  # wrong key
            stranger.data_frame(0),  # not in the registry
            Frame(FrameType.DATA, good[:-3]),  # truncated
            Frame(FrameType.DATA, good[:3]),  # shorter than the uptime
            Frame(FrameType.DATA, good[:4] + b"\x00" + good[5:]),  # CBOR damaged
            Frame(FrameType.HELLO, b"\xff"),
            Frame(FrameType.CONTROL, good),  # only the gateway sends CONTROL
            Frame(0x00, good),
        ])
        assert dict(ingest.rejected) == {"bad_mac": 1, "unknown_node": 1, "malformed": 4, "frame": 2}
        assert ingest.nodes[NODE].rejected == {"bad_mac": 1}
        assert "gg-stranger" not in ingest.nodes
        assert spool.depth() == 0 and link.sent == []

    run_with_ingest(tmp_path, body)


def test_rejections_are_logged_rate_limited_with_the_node(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    node = SimNode()

    async def body(ingest: Ingest, spool: Spool, link: MemoryLink) -> None:
        for _ in range(5):
            await ingest.handle(link, [node.data_frame(0, key=OTHER_KEY)])
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1
        assert f"reason=bad_mac source=node={NODE}" in warnings[0].getMessage()
        assert ingest.rejected["bad_mac"] == 5

    run_with_ingest(tmp_path, body)


class GatedSpool(Spool):
    """A spool whose commits wait for the test, to see what happens before a commit returns."""

    entered: asyncio.Event
    gate: asyncio.Event
    fail = False

    async def commit(self, packets: Sequence[PacketRow]) -> list[bool | None]:
        self.entered.set()
        await self.gate.wait()
        if self.fail:
            raise StorageError("disk full")
        return await super().commit(packets)


def test_no_ack_before_the_commit_returns_and_none_if_it_fails(tmp_path: Path) -> None:
    node = SimNode()

    async def body(ingest: Ingest, spool: Spool, link: MemoryLink) -> None:
        assert isinstance(spool, GatedSpool)
        spool.entered, spool.gate = asyncio.Event(), asyncio.Event()
        handling = asyncio.create_task(ingest.handle(link, [node.data_frame(0)]))
        await spool.entered.wait()  # verified, now committing
        assert link.sent == []
        spool.gate.set()
        await handling
        assert link.controls()[0].acks == (Ack(1, 0, 0),)
        spool.fail = True
        await ingest.handle(link, [node.data_frame(1)])
        assert len(link.sent) == 1  # nothing acked: the node keeps packet 1 and sends it again

    run_with_ingest(tmp_path, body, spool_class=GatedSpool)


def test_a_link_that_is_down_costs_the_ack_not_the_packet(tmp_path: Path) -> None:
    node = SimNode()

    async def body(ingest: Ingest, spool: Spool, link: MemoryLink) -> None:
        link.up = False
        await ingest.handle(link, [node.data_frame(0)])
        assert spool.depth() == 1
        link.up = True
        await ingest.handle(link, [node.data_frame(0)])  # the node's retransmission
        assert spool.depth() == 1 and link.controls()[0].acks == (Ack(1, 0, 0),)

    run_with_ingest(tmp_path, body)


def test_run_link_serves_a_link_until_it_ends(tmp_path: Path) -> None:
    node = SimNode()

    async def body(ingest: Ingest, spool: Spool, link: MemoryLink) -> None:
        link.deliver(node.hello_frame())
        link.deliver(node.data_frame(0), node.data_frame(1))
        link.end()
        await ingest.run_link(link)  # returns: the link is over
        assert spool.depth() == 2 and [c.acks for c in link.controls()] == [(), (Ack(1, 0, 1),)]

    run_with_ingest(tmp_path, body)


def test_many_ack_ranges_are_split_over_several_controls(tmp_path: Path) -> None:
    node = SimNode()

    async def body(ingest: Ingest, spool: Spool, link: MemoryLink) -> None:
        await ingest.handle(link, [node.data_frame(seq) for seq in range(0, 80, 2)])  # 40 separate ranges
        controls = link.controls()
        assert [len(c.acks) for c in controls] == [MAX_ACKS_PER_CONTROL, 40 - MAX_ACKS_PER_CONTROL]
        assert [a.first for c in controls for a in c.acks] == list(range(0, 80, 2))
        assert [c.time_ms is not None for c in controls] == [True, False]
        assert all(len(f.body) < 1024 for f in link.sent)

    run_with_ingest(tmp_path, body)


def test_merge_acks() -> None:
    assert merge_acks([(1, 5), (1, 3), (1, 4), (2, 0), (1, 9), (1, 4)]) == [Ack(1, 3, 5), Ack(1, 9, 9), Ack(2, 0, 0)]
    assert merge_acks([]) == []


class MemorySpool:
    """Just enough of a spool for fuzzing ingest fast: what it commits, in memory."""

    latest_boots: dict[str, int] = {}

    def __init__(self) -> None:
        self.seen: set[tuple[str, int, int]] = set()

    async def commit(self, packets: Sequence[PacketRow]) -> list[bool]:
        out = []
        for node, boot, seq, *_ in packets:
            out.append((node, boot, seq) not in self.seen)
            self.seen.add((node, boot, seq))
        return out


@pytest.fixture(scope="module")
def fuzz_registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return Registry(write_registry(tmp_path_factory.mktemp("fuzz") / "nodes.toml", {NODE: KEY}))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=300), max_size=8), st.binary(max_size=600))
def test_random_bytes_never_raise_and_every_frame_is_counted(fuzz_registry: Registry, bodies: list[bytes],
                                                             noise: bytes) -> None:
    node = SimNode()
    good = node.data(0)
    # Valid frames around random bodies, random line noise, and a good packet with one byte flipped.
    wire = b"".join(encode_frame(FrameType.DATA if i % 2 else FrameType.HELLO, b) for i, b in enumerate(bodies))
    wire += noise + encode_frame(FrameType.DATA, good[:4] + bytes([good[4] ^ 1]) + good[5:])
    decoder = FrameDecoder()
    frames = decoder.feed(wire) + decoder.feed(b"\x7e")

    async def main() -> None:
        ingest = Ingest(MemorySpool(), fuzz_registry, Pulse(), clock=lambda: T0)  # type: ignore[arg-type]
        link = MemoryLink()
        await ingest.handle(link, frames)
        assert sum(ingest.rejected.values()) == len(frames)  # none of them is a valid message
        assert "internal" not in ingest.rejected  # each one rejected for a reason, not by a bug
        assert link.sent == []

    asyncio.run(main())


_scalars = (st.none() | st.booleans() | st.integers(-(2**1100), 2**1100) | st.integers(-(2**40), 2**40)
            | st.floats() | st.text(max_size=10) | st.binary(max_size=10))
_cbor_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.integers(-8, 8) | st.text(max_size=3), children, max_size=4),
    max_leaves=12,
)
# Close to SenML: records with known labels and values of any type and size.
_senml_like = st.lists(st.dictionaries(st.integers(-6, 8), _scalars, max_size=5), min_size=1, max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_cbor_values | _senml_like, st.integers(0, 2**32 - 1))
@example({2: math.inf}, 0)  # int(inf) in a HELLO field
@example([{-5: 1e308, 0: "x", 2: 1e308}], 0)  # bv + v overflows to inf
def test_authentic_messages_with_any_payload_never_raise(fuzz_registry: Registry, body: object, uptime: int) -> None:
    # A node with the right key but a broken encoder: the MAC passes, the payload is anything.
    payload = cbor2.dumps(body)
    data = Frame(FrameType.DATA, uptime.to_bytes(4, "big") + mac0_encode(KEY, NODE.encode(), 1, 0, payload))
    hello = Frame(FrameType.HELLO, mac0_encode(KEY, NODE.encode(), 1, 0, payload))

    async def main() -> None:
        ingest = Ingest(MemorySpool(), fuzz_registry, Pulse(), clock=lambda: T0)  # type: ignore[arg-type]
        link = MemoryLink()
        await ingest.handle(link, [data, hello])
        assert set(ingest.rejected) <= {"malformed"}  # a reason for each, never "internal" (a bug)
        node = ingest.nodes.get(NODE)
        answered_hellos = sum(1 for c in link.controls() if not c.acks)
        assert (node.packets if node else 0) + answered_hellos + sum(ingest.rejected.values()) == 2

    asyncio.run(main())
