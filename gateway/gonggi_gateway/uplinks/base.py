"""The Uplink interface and the drainer that feeds one uplink from the spool, never dropping."""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self

from gonggi_gateway.errors import StorageError, UplinkError
from gonggi_gateway.retry import Backoff
from gonggi_gateway.spool import Spool, SpooledPacket
from gonggi_gateway.state import UplinkStatus

__all__ = ["Uplink", "Drainer"]

log = logging.getLogger(__name__)


class Uplink(abc.ABC):
    """An upstream for spooled packets (MQTT broker, HTTP endpoint, local archive).

    ``send`` returns only when upstream has confirmed every packet of the batch (MQTT PUBACK,
    HTTP 2xx, a committed local write); otherwise it raises UplinkError and the drainer retries
    the same rows. Delivery is therefore at least once: a packet confirmed upstream whose
    confirmation got lost is sent again, byte for byte identical.
    """

    name: str

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        return None

    @abc.abstractmethod
    async def send(self, batch: Sequence[SpooledPacket]) -> None:
        """Deliver ``batch`` (in order) or raise UplinkError."""


class Drainer:
    """Moves rows from the spool to one uplink: read pending rows, send, confirm; on failure
    wait with exponential backoff and send the same rows again. Rows leave the spool only
    through ``confirm``, so an outage of any length loses nothing (disk permitting)."""

    def __init__(self, spool: Spool, uplink: Uplink, *, batch: int = 100, backoff: Backoff | None = None,
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.spool = spool
        self.uplink = uplink
        self._batch = batch
        self._backoff = backoff or Backoff()
        self._on_change = on_change
        self.delivered = 0
        self.failures = 0
        self.last_error: str | None = None

    def status(self) -> UplinkStatus:
        return UplinkStatus(self.uplink.name, self.spool.stats().pending[self.uplink.name], self.delivered,
                            self.failures, self.last_error)

    async def run(self) -> None:
        """Drain until cancelled."""
        name = self.uplink.name
        while True:
            try:
                await self._step(name)
            except StorageError as exc:
                log.error("uplink %s: spool failed, retrying with backoff: %s", name, exc)
                await self._backoff.wait()

    async def _step(self, name: str) -> None:
        rows = await self.spool.wait_pending(name, self._batch)
        try:
            await self.uplink.send(rows)
        except UplinkError as exc:
            self.failures += 1
            # Once per outage at WARNING; the retries go to DEBUG.
            log.log(logging.DEBUG if self.last_error else logging.WARNING,
                    "uplink %s failed, %d rows stay spooled, retrying with backoff: %s",
                    name, self.spool.stats().pending[name], exc)
            self.last_error = str(exc)
            self._on_change()
            await self._backoff.wait()
            return
        if self.last_error is not None:
            log.info("uplink %s is back", name)
            self.last_error = None
        self._backoff.reset()
        await self.spool.confirm(name, rows[-1].id)
        self.delivered += len(rows)
        self._on_change()
