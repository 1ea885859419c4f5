"""Per node message handling: verify, de-duplicate, spool, and only then acknowledge.

DATA  -> ``decode_data`` with the registry's keys -> one spool commit for every packet that
         arrived together -> a CONTROL to each node with acks for all of them (new and
         duplicate alike: a duplicate means the node missed our earlier ack), and the gateway's
         clock when the node's records were not synced or ``time_interval`` has passed.
HELLO -> a CONTROL with the clock only.

Anything else is rejected, counted by ``ProtocolError.reason`` and logged rate-limited with the
node id; nothing a node sends can raise out of here. A CONTROL is bound to the node's current
boot: the boot of its latest HELLO, or the highest boot seen in its packets.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gonggi_gateway.errors import LinkError, ProtocolError, StorageError
from gonggi_gateway.links.base import Link
from gonggi_gateway.protocol import (
    Ack,
    Control,
    DataPacket,
    Frame,
    FrameType,
    Hello,
    decode_data,
    decode_hello,
    encode_control,
)
from gonggi_gateway.records import senml_json
from gonggi_gateway.registry import Registry
from gonggi_gateway.spool import NewPacket, Spool
from gonggi_gateway.state import NodeState, Pulse, reading_from_senml

__all__ = ["Ingest", "MAX_ACKS_PER_CONTROL", "merge_acks"]

log = logging.getLogger(__name__)

MAX_ACKS_PER_CONTROL = 32  # keeps every CONTROL far below the 1024-byte frame limit
_LOG_EVERY = 60.0  # seconds between warnings about the same kind of bad input from the same source


def merge_acks(packets: Iterable[tuple[int, int]]) -> list[Ack]:
    """(boot, seq) pairs -> the fewest Ack ranges covering exactly them."""
    acks: list[Ack] = []
    for boot, seq in sorted(set(packets)):
        last = acks[-1] if acks else None
        if last is not None and last.boot == boot and last.last + 1 == seq:
            acks[-1] = Ack(boot, last.first, seq)
        else:
            acks.append(Ack(boot, seq, seq))
    return acks


class _Throttle:
    """The first occurrence of a (reason, source) is a WARNING, then one per minute with a count."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._suppressed: Counter[tuple[str, str]] = Counter()

    def warn(self, reason: str, source: str, message: str) -> None:
        key = (reason, source)
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < _LOG_EVERY:
            self._suppressed[key] += 1
            log.debug("rejected reason=%s source=%s: %s", reason, source, message)
            return
        self._last[key] = now
        more = self._suppressed.pop(key, 0)
        log.warning("rejected reason=%s source=%s: %s%s", reason, source, message,
                    f" (and {more} more in the last minute)" if more else "")


@dataclass(frozen=True)
class _Valid:
    packet: DataPacket
    received_at: float
    records: str


class Ingest:
    """Handles every frame of every link; owns the per-node state the live view shows."""

    def __init__(self, spool: Spool, registry: Registry, pulse: Pulse, *, time_interval: float = 3600.0,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._spool = spool
        self._registry = registry
        self._pulse = pulse
        self._time_interval = time_interval
        self._clock = clock
        self._monotonic = monotonic
        self.nodes: dict[str, NodeState] = {}
        self.rejected: Counter[str] = Counter()
        self._throttle = _Throttle(monotonic)
        for node_id, boot in spool.latest_boots.items():
            self._node(node_id).boot = boot

    def _node(self, node_id: str) -> NodeState:
        state = self.nodes.get(node_id)
        if state is None:
            state = self.nodes[node_id] = NodeState(node_id)
        return state

    async def run_link(self, link: Link) -> None:
        """Handle the frames of ``link`` until it ends or this is cancelled."""
        while True:
            try:
                frames = await link.receive()
            except LinkError as exc:
                log.info("link ended link=%s node=%s: %s", link.name, link.node_id, exc)
                return
            await self.handle(link, frames)

    async def handle(self, link: Link, frames: list[Frame]) -> None:
        """Handle frames that arrived together: one spool commit, then the acks."""
        received_at = self._clock()
        valid: list[_Valid] = []
        for frame in frames:
            try:
                if frame.type == FrameType.DATA:
                    packet = decode_data(frame.body, self._registry.lookup)
                    self._seen(link, packet.node_id, packet.boot, received_at, hello=False)
                    valid.append(_Valid(packet, received_at, senml_json(packet, received_at)))
                elif frame.type == FrameType.HELLO:
                    hello = decode_hello(frame.body, self._registry.lookup)
                    self._seen(link, hello.node_id, hello.boot, received_at, hello=True)
                    await self._hello(link, hello)
                else:
                    self._reject(link, "frame", None, f"unexpected frame type 0x{frame.type:02x}")
            except ProtocolError as exc:
                self._reject(link, exc.reason, getattr(exc, "node_id", None), str(exc))
            except Exception as exc:  # a decoder bug must cost one frame, not the gateway
                log.exception("bug: frame from link %s could not be handled", link.name)
                self._reject(link, "internal", None, repr(exc))
        if valid:
            await self._store_and_ack(link, valid)
        self._pulse.fire()

    def _seen(self, link: Link, node_id: str, boot: int, now: float, *, hello: bool) -> None:
        state = self._node(node_id)
        if link.node_id != node_id:
            if link.node_id is not None:
                log.info("link %s now carries node %s (was %s)", link.name, node_id, link.node_id)
            link.node_id = node_id
        state.link = link.name
        state.last_seen = now
        # A HELLO states the node's boot; a packet may come from the backlog of an older boot.
        if hello or state.boot is None or boot > state.boot:
            state.boot = boot

    def _reject(self, link: Link, reason: str, node_id: str | None, message: str) -> None:
        self.rejected[reason] += 1
        # Only a node in the registry gets a per-node tally: anyone can claim any other id.
        if node_id is not None and self._registry.get(node_id) is not None:
            self._node(node_id).rejected[reason] += 1
        source = f"node={node_id}" if node_id else f"link={link.name}"
        self._throttle.warn(reason, source, message)

    async def _store_and_ack(self, link: Link, valid: list[_Valid]) -> None:
        try:
            fresh = await self._spool.commit([
                NewPacket(v.packet.node_id, v.packet.boot, v.packet.seq, v.received_at, v.packet.cose, v.records)
                for v in valid
            ])
        except StorageError as exc:
            # No ack: the nodes keep the packets and send them again.
            log.error("spool commit failed, %d packets not acked: %s", len(valid), exc)
            return
        by_node: dict[str, list[tuple[_Valid, bool]]] = {}
        for v, new in zip(valid, fresh):
            by_node.setdefault(v.packet.node_id, []).append((v, new))
        for node_id, items in by_node.items():
            state = self._node(node_id)
            for v, new in items:
                if new:
                    state.packets += 1
                    for record in json.loads(v.records):
                        if "n" in record:
                            reading = reading_from_senml(record)
                            state.readings[reading.name] = reading
                else:
                    # Routine: the node did not get our ack (lost, or the node rebooted first).
                    state.duplicates += 1
                    self.rejected["duplicate"] += 1
                    log.debug("duplicate node=%s boot=%d seq=%d: acked again", node_id, v.packet.boot, v.packet.seq)
            unsynced = any(not v.packet.synced for v, _ in items)
            acks = merge_acks((v.packet.boot, v.packet.seq) for v, _ in items)
            await self._control(link, node_id, acks, with_time=unsynced)

    async def _hello(self, link: Link, hello: Hello) -> None:
        state = self._node(hello.node_id)
        state.firmware, state.backlog, state.dropped, state.flags = hello.firmware, hello.backlog, hello.dropped, hello.flags
        await self._control(link, hello.node_id, [], with_time=True)

    async def _control(self, link: Link, node_id: str, acks: list[Ack], *, with_time: bool) -> None:
        key = self._registry.lookup(node_id)
        state = self._node(node_id)
        if key is None or state.boot is None:
            return
        now = self._monotonic()
        due = state.time_sent is None or now - state.time_sent >= self._time_interval
        chunks = [acks[i:i + MAX_ACKS_PER_CONTROL] for i in range(0, len(acks), MAX_ACKS_PER_CONTROL)] or [[]]
        for i, chunk in enumerate(chunks):
            time_ms = round(self._clock() * 1000) if (with_time or due) and i == 0 else None
            ctl = Control(node_id, state.boot, tuple(chunk), time_ms)
            try:
                await link.send(FrameType.CONTROL, encode_control(key, ctl))
            except LinkError as exc:
                # The node resends what it does not see acked; the duplicate is acked then.
                log.info("control not sent node=%s link=%s: %s", node_id, link.name, exc)
                return
            if time_ms is not None:
                state.time_sent = now
