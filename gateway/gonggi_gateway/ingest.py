"""Per node message handling: verify, de-duplicate, spool, and only then acknowledge.

DATA  -> ``verify_all`` with the registry's keys (what ``decode_data`` decides, fast: see
         verify.py) -> one spool commit for every packet that arrived together -> a CONTROL to
         each node with acks for all of them (new and duplicate alike: a duplicate means the node
         missed our earlier ack; not for a packet the full spool refused, which the node keeps),
         and the gateway's clock when the node's records were not synced or ``time_interval``
         has passed.
HELLO -> a CONTROL with the clock only.

Anything else is rejected, counted by ``ProtocolError.reason`` and logged rate-limited with the
node id; nothing a node sends can raise out of here. A CONTROL is bound to the node's current
boot: the boot of its latest HELLO, or the highest boot seen in its packets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial
from operator import attrgetter, itemgetter

from gonggi_gateway.errors import LinkError, ProtocolError, StorageError
from gonggi_gateway.links.base import Link
from gonggi_gateway.protocol import Ack, Control, Frame, FrameType, Hello, KeyLookup, decode_hello, encode_control
from gonggi_gateway.registry import Registry
from gonggi_gateway.spool import Spool
from gonggi_gateway.state import NodeState, Pulse, Reading
from gonggi_gateway.verify import Row, Shape, Verified, readings, verify_all

__all__ = ["Ingest", "MAX_ACKS_PER_CONTROL", "merge_acks"]

log = logging.getLogger(__name__)

MAX_ACKS_PER_CONTROL = 32  # keeps every CONTROL far below the 1024-byte frame limit
_LOG_EVERY = 60.0  # seconds between warnings about the same kind of bad input from the same source
_DATA, _HELLO = int(FrameType.DATA), int(FrameType.HELLO)
_NODE, _BOOT, _SEQ = itemgetter(0), itemgetter(1), itemgetter(2)  # of a Row
_TYPE, _BODY = attrgetter("type"), attrgetter("body")  # of a Frame
_IS_DATA = _DATA.__eq__


def _readings(row: Row, shape: Shape | None) -> list[Reading]:
    return [Reading(*r) for r in readings(row, shape)]


def merge_acks(packets: Iterable[tuple[int, int]]) -> list[Ack]:
    """(boot, seq) pairs -> the fewest Ack ranges covering exactly them."""
    pairs = set(packets)
    if len({boot for boot, _ in pairs}) == 1:  # the usual: one boot, consecutive packets
        seqs = {seq for _, seq in pairs}
        first, last = min(seqs), max(seqs)
        if last - first + 1 == len(seqs):
            return [Ack(next(iter(pairs))[0], first, last)]
    acks: list[Ack] = []
    boot = first = last = -2
    for b, seq in sorted(pairs):
        if b == boot and seq == last + 1:
            last = seq
            continue
        if boot != -2:
            acks.append(Ack(boot, first, last))
        boot, first, last = b, seq, seq
    if boot != -2:
        acks.append(Ack(boot, first, last))
    return acks


def _acks(rows: list[Row]) -> list[Ack]:
    """``merge_acks`` of the rows' (boot, seq); without a pair per row for what a link delivers:
    one boot, each seq the one after the previous."""
    first_seq, boot = rows[0][2], rows[0][1]
    if rows[-1][1] == boot and rows[-1][2] - first_seq == len(rows) - 1 \
            and list(map(_SEQ, rows)) == list(range(first_seq, first_seq + len(rows))) \
            and set(map(_BOOT, rows)) == {boot}:
        return [Ack(boot, first_seq, first_seq + len(rows) - 1)]
    return merge_acks(zip(map(_BOOT, rows), map(_SEQ, rows)))


_Group = tuple[list[Row], list["bool | None"], list[bool], list["Shape | None"]]


def _by_node(batch: Verified, flags: list[bool | None]) -> dict[str, _Group]:
    """Rows, commit flags, synced flags and shapes, per node, in order."""
    rows = batch.rows
    if len(set(map(_NODE, rows))) == 1:  # one node per link: the usual batch
        return {rows[0][0]: (rows, flags, batch.synced, batch.shapes)}
    out: dict[str, _Group] = {}
    for row, flag, synced, shape in zip(rows, flags, batch.synced, batch.shapes):
        group = out.setdefault(row[0], ([], [], [], []))
        group[0].append(row)
        group[1].append(flag)
        group[2].append(synced)
        group[3].append(shape)
    return out


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


class _BatchKeys(dict[str, tuple[bytes, ...]]):
    """The registry's keys of each node, looked up once per batch (a lookup checks the file)."""

    def __init__(self, registry: Registry) -> None:
        super().__init__()
        self._registry = registry

    def __missing__(self, node_id: str) -> tuple[bytes, ...]:
        keys = self[node_id] = self._registry.keys(node_id)
        return keys

    def current(self, node_id: str) -> bytes | None:
        """The node's current key (what a CONTROL is sealed with), None if it is not registered."""
        keys = self[node_id]
        return keys[0] if keys else None


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
        """Handle the frames of ``link`` until it ends or this is cancelled.

        Two batches deep: while batch k is committed (its fsync, in the spool's thread) and acked,
        batch k+1 is received and verified. k+1's commit starts only when k's commit and acks are
        done, so its replay check counts k's rows only if they were committed: a packet of k+1
        that repeats one of k is acked as a duplicate after k's acks, never before k is durable,
        and is new if k's commit failed (nothing of k is acked then).
        """
        settling: asyncio.Task[None] | None = None
        try:
            while True:
                try:
                    frames = await link.receive()
                except LinkError as exc:
                    log.info("link ended link=%s node=%s: %s", link.name, link.node_id, exc)
                    break
                if settling is not None and not all(map(_IS_DATA, map(_TYPE, frames))):
                    await settling  # a HELLO's CONTROL states the boot: it goes out after k's acks
                batch, keys = await self._take(link, frames)
                if settling is not None:
                    await settling
                settling = asyncio.create_task(self._settle(link, batch, keys))
                # Two turns of the loop before verifying more: one for the task to queue its rows
                # with the spool, one for the spool's flusher (started by the first rows queued)
                # to take every link's queued rows to its thread, so the fsync runs meanwhile.
                await asyncio.sleep(0)
                await asyncio.sleep(0)
            if settling is not None:
                await settling
        finally:
            if settling is not None and not settling.done():  # cancelled: so is the batch's commit
                settling.cancel()
                await asyncio.gather(settling, return_exceptions=True)

    async def handle(self, link: Link, frames: list[Frame]) -> None:
        """Handle frames that arrived together: one spool commit, then the acks."""
        batch, keys = await self._take(link, frames)
        await self._settle(link, batch, keys)

    async def _take(self, link: Link, frames: list[Frame]) -> tuple[Verified, _BatchKeys]:
        """Verify frames that arrived together and answer a HELLO among them: the DATA to commit."""
        received_at = self._clock()
        batch_keys = _BatchKeys(self._registry)
        keys = batch_keys.__getitem__
        if all(map(_IS_DATA, map(_TYPE, frames))):  # the usual: data only
            return self._verify(link, list(map(_BODY, frames)), keys, received_at), batch_keys
        batch = Verified()
        bodies: list[bytes] = []
        for frame in frames:
            if frame.type == _DATA:
                bodies.append(frame.body)
                continue
            self._verify(link, bodies, keys, received_at, batch)  # in order: a HELLO states the boot
            bodies = []
            await self._other(link, frame, batch_keys, received_at)
        self._verify(link, bodies, keys, received_at, batch)
        return batch, batch_keys

    async def _settle(self, link: Link, batch: Verified, keys: _BatchKeys) -> None:
        """One spool commit for the batch, then its acks."""
        if batch.rows:
            await self._store_and_ack(link, batch, keys)
        self._pulse.fire()

    def _verify(self, link: Link, bodies: list[bytes], keys: KeyLookup, received_at: float,
                into: Verified | None = None) -> Verified:
        """Verify DATA bodies, count and log the rejected ones, note who was heard."""
        batch = verify_all(bodies, keys, received_at)
        for _, exc in batch.rejected:
            if isinstance(exc, ProtocolError):
                self._reject(link, exc.reason, getattr(exc, "node_id", None), str(exc))
            else:  # a decoder bug must cost one frame, not the gateway
                log.error("bug: frame from link %s could not be handled", link.name, exc_info=exc)
                self._reject(link, "internal", None, repr(exc))
        self._seen_data(link, batch.rows, received_at)
        if into is None:
            return batch
        into.rows += batch.rows
        into.synced += batch.synced
        into.shapes += batch.shapes
        return into

    async def _other(self, link: Link, frame: Frame, keys: _BatchKeys, received_at: float) -> None:
        try:
            if frame.type == _HELLO:
                hello = decode_hello(frame.body, keys.__getitem__)
                self._seen(link, hello.node_id, hello.boot, received_at, hello=True)
                await self._hello(link, hello, keys.current(hello.node_id))
            else:
                self._reject(link, "frame", None, f"unexpected frame type 0x{frame.type:02x}")
        except ProtocolError as exc:
            self._reject(link, exc.reason, getattr(exc, "node_id", None), str(exc))
        except Exception as exc:  # a decoder bug must cost one frame, not the gateway
            log.exception("bug: frame from link %s could not be handled", link.name)
            self._reject(link, "internal", None, repr(exc))

    def _seen_data(self, link: Link, rows: list[Row], now: float) -> None:
        """``_seen`` once per node for packets that arrived together: its highest boot."""
        if not rows:
            return
        boots: dict[str, int] = {}
        if len(set(map(_NODE, rows))) == 1:
            boots[rows[0][0]] = max(map(_BOOT, rows))
        else:
            for node_id, boot, *_ in rows:
                if boots.get(node_id, -1) < boot:
                    boots[node_id] = boot
            last = rows[-1][0]
            boots[last] = boots.pop(last)  # applied last: the link's node is the last one heard
        for node_id, boot in boots.items():
            self._seen(link, node_id, boot, now, hello=False)

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

    async def _store_and_ack(self, link: Link, batch: Verified, keys: _BatchKeys) -> None:
        try:
            flags = await self._spool.commit(batch.rows)
        except StorageError as exc:
            # No ack: the nodes keep the packets and send them again.
            log.error("spool commit failed, %d packets not acked: %s", len(batch.rows), exc)
            return
        for node_id, (rows, done, synced, shapes) in _by_node(batch, flags).items():
            state = self._node(node_id)
            new = done.count(True)
            state.packets += new
            if new:
                self._update_readings(state, rows, done, shapes)
            duplicates = done.count(False)
            if duplicates:
                # Routine: the node did not get our ack (lost, or the node rebooted first).
                state.duplicates += duplicates
                self.rejected["duplicate"] += duplicates
                log.debug("duplicates node=%s count=%d: acked again", node_id, duplicates)
            # A refused packet (the spool is full) is not acked: the node keeps it and resends it.
            taken = rows if None not in done else [r for r, f in zip(rows, done) if f is not None]
            acks = _acks(taken) if taken else []
            unsynced = not all(synced)
            if acks or unsynced:
                await self._control(link, node_id, acks, keys.current(node_id), with_time=unsynced)

    @staticmethod
    def _update_readings(state: NodeState, rows: list[Row], done: list[bool | None],
                         shapes: list[Shape | None]) -> None:
        # Packets of one shape carry the same channels: the newest new packet of each shape has
        # the newest value of each of its channels (a packet of no shape is a kind of its own).
        if done[-1] and shapes[-1] is not None and len(set(map(id, shapes))) == 1:  # the usual batch
            state.later(id(shapes[-1]), partial(_readings, rows[-1], shapes[-1]))
            return
        for row, fresh, shape in zip(rows, done, shapes):
            if fresh:
                state.later(id(shape if shape is not None else row), partial(_readings, row, shape))

    async def _hello(self, link: Link, hello: Hello, key: bytes | None) -> None:
        state = self._node(hello.node_id)
        state.firmware, state.backlog, state.dropped, state.flags = hello.firmware, hello.backlog, hello.dropped, hello.flags
        await self._control(link, hello.node_id, [], key, with_time=True)

    async def _control(self, link: Link, node_id: str, acks: list[Ack], key: bytes | None, *,
                       with_time: bool) -> None:
        """Acks and/or the clock to a node, sealed with ``key`` (its current one; None: not registered)."""
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
