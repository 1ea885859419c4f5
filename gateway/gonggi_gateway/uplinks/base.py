"""The Uplink interface and the drainer that feeds one uplink from the spool, never dropping."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self

from gonggi_gateway.config import Batching
from gonggi_gateway.errors import StorageError, UplinkError, UplinkRejected
from gonggi_gateway.retry import Backoff
from gonggi_gateway.spool import Spool, SpooledPacket
from gonggi_gateway.state import UplinkStatus

__all__ = ["RESEND_POLL_S", "Uplink", "Drainer"]

log = logging.getLogger(__name__)

RESEND_POLL_S = 5.0  # an idle drainer looks this often for dead letters an operator marked for resending


class Uplink(abc.ABC):
    """An upstream for spooled packets (MQTT broker, HTTP endpoint, local archive).

    ``send`` returns only when upstream has confirmed every packet of the batch (MQTT PUBACK,
    HTTP 2xx, a committed local write); otherwise it raises UplinkError and the drainer retries
    the same rows, or UplinkRejected when upstream refused them for good (they go to the spool's
    dead letters). Delivery is therefore at least once: a packet confirmed upstream whose
    confirmation got lost is sent again, byte for byte identical.
    """

    name: str
    batching: Batching = Batching()  # how its drainer reads the spool (from the configuration)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        return None

    @abc.abstractmethod
    async def send(self, batch: Sequence[SpooledPacket]) -> None:
        """Deliver ``batch`` (in order) or raise UplinkError (or UplinkRejected)."""


class Drainer:
    """Moves rows from the spool to one uplink, in batches read from disk by the uplink's cursor.

    A batch goes out when ``batching.size`` rows wait, or when the oldest has waited
    ``flush_interval_s`` plus a random ``0..flush_jitter_s`` (so many gateways do not flush in
    lockstep), like Telegraf's metric_batch_size / flush_interval / flush_jitter; a backlog goes
    out in full batches back to back. On failure the same rows are sent again after an
    exponential backoff (or the Retry-After upstream asked for); rows upstream refused for good
    move to the dead letters. Rows leave the spool only through ``confirm`` or ``dead_letter``,
    so an outage of any length loses nothing (disk permitting).

    Dead letters of this uplink that an operator marked for resending go out before the next
    batch (the drainer looks for them at every batch, and every ``resend_poll_s`` when idle), with
    the same retries; delivered, they are deleted; refused again, they stay with the new reason."""

    def __init__(self, spool: Spool, uplink: Uplink, *, batching: Batching = Batching(),
                 backoff: Backoff | None = None, on_change: Callable[[], None] = lambda: None,
                 rng: random.Random | None = None) -> None:
        self.spool = spool
        self.uplink = uplink
        self.batching = batching
        self._backoff = backoff or Backoff()
        self._on_change = on_change
        self._rng = rng or random.Random()
        self._retrying = False
        self.resend_poll_s = RESEND_POLL_S
        self.delivered = 0
        self.failures = 0
        self.rejected = 0
        self.last_error: str | None = None

    def status(self) -> UplinkStatus:
        return UplinkStatus(self.uplink.name, self.spool.pending_count(self.uplink.name), self.delivered,
                            self.failures, self.last_error, self.rejected)

    async def run(self) -> None:
        """Drain until cancelled."""
        name = self.uplink.name
        while True:
            try:
                await self._step(name)
            except StorageError as exc:
                log.error("uplink %s: spool failed, retrying with backoff: %s", name, exc)
                await self._backoff.wait()

    def flush_delay(self) -> float:
        """How long the first row of a batch may wait for the batch to fill."""
        b = self.batching
        return b.flush_interval_s + (self._rng.uniform(0, b.flush_jitter_s) if b.flush_jitter_s else 0.0)

    def retry_delay(self, exc: UplinkError) -> float:
        """How long to wait before sending a failed batch again: the next backoff step, or what
        upstream asked for (Retry-After) if that is longer."""
        return max(self._backoff.next_delay(), exc.retry_after or 0.0)

    async def next_batch(self) -> list[SpooledPacket]:
        """The next batch: full, or whatever waits once the first row has waited its flush delay;
        empty if no row came within ``resend_poll_s`` (time to look for dead letters to resend)."""
        name, size = self.uplink.name, self.batching.size
        try:
            async with asyncio.timeout(self.resend_poll_s):
                await self.spool.wait_count(name, 1)
        except TimeoutError:
            return []
        delay = self.flush_delay()
        if not self._retrying and delay > 0 and self.spool.pending_count(name) < size:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.spool.wait_count(name, size)
        return await self.spool.pending(name, size)

    async def _step(self, name: str) -> None:
        resend = await self.spool.resend_due(name, self.batching.size)
        rows = resend or await self.next_batch()
        if not rows:
            return
        try:
            await self.uplink.send(rows)
        except UplinkRejected as exc:
            if resend:
                log.error("uplink %s rejected %d resent dead letters again (ids %d..%d), kept with the new reason: %s",
                          name, len(rows), rows[0].id, rows[-1].id, exc)
                await self.spool.rejected_again(name, rows, str(exc))
            else:
                # Sending them again cannot help: keep them for an operator, and go on with the rest.
                self.rejected += len(rows)
                log.error("uplink %s rejected %d rows for good (ids %d..%d), kept in the spool's dead_letters: %s",
                          name, len(rows), rows[0].id, rows[-1].id, exc)
                await self.spool.dead_letter(name, rows, str(exc))
            self._retrying = False
            self._on_change()
            return
        except UplinkError as exc:
            self.failures += 1
            # Once per outage at WARNING; the retries go to DEBUG.
            kept = (f"{len(rows)} resent dead letters stay marked" if resend
                    else f"{self.spool.pending_count(name)} rows stay spooled")
            log.log(logging.DEBUG if self.last_error else logging.WARNING,
                    "uplink %s failed, %s, retrying with backoff: %s", name, kept, exc)
            self.last_error = str(exc)
            self._retrying = True
            self._on_change()
            await asyncio.sleep(self.retry_delay(exc))
            return
        if self.last_error is not None:
            log.info("uplink %s is back", name)
            self.last_error = None
        self._retrying = False
        self._backoff.reset()
        if resend:
            await self.spool.resent(name, rows)
            log.info("uplink %s delivered %d resent dead letters (ids %d..%d); they leave the dead letters",
                     name, len(rows), rows[0].id, rows[-1].id)
        else:
            await self.spool.confirm(name, rows[-1].id)
            self.delivered += len(rows)
        self._on_change()
