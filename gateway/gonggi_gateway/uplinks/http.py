"""HTTP uplink (aiohttp): each batch POSTed as one SenML JSON pack (RFC 8428, application/senml+json).

The rows' packs are concatenated into one array: every packet's first record carries its node's
base name, so the pack resolves exactly as the packets do one by one (docs/mqtt.md, Payload).

What the answer means:

* 2xx: delivered, the rows leave the spool.
* 408, 429, 5xx, a timeout or a connection error: try again later (the drainer's exponential
  backoff with jitter, or the ``Retry-After`` upstream gave, whichever is longer).
* 401, 403, 404, 405, 407: the endpoint or its credentials are wrong, which no batch can fix:
  the rows stay, and the uplink keeps retrying with backoff until an operator fixes it.
* any other 3xx or 4xx: upstream refused this batch for good: UplinkRejected, with the status
  and the start of the body; the drainer moves the rows to the dead letters and goes on.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import aiohttp

from gonggi_gateway.config import HttpUplinkConfig
from gonggi_gateway.errors import UplinkError, UplinkRejected
from gonggi_gateway.spool import SpooledPacket
from gonggi_gateway.uplinks.base import Uplink

__all__ = ["CONTENT_TYPE", "HttpUplink", "senml_pack"]

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/senml+json"
_RETRY = frozenset({408, 429})  # a 4xx that asks to try again
_ENDPOINT = frozenset({401, 403, 404, 405, 407})  # a 4xx about the endpoint, not the batch
_BODY_SHOWN = 500  # characters of an error answer kept in logs and dead letters
_RETRY_AFTER_MAX = 3600.0


def senml_pack(batch: Sequence[SpooledPacket]) -> bytes:
    """One SenML JSON pack of all the rows' records, in order."""
    return ("[" + ",".join(row.records[1:-1] for row in batch) + "]").encode()


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped; None if absent."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), _RETRY_AFTER_MAX)


class HttpUplink(Uplink):
    """``async with HttpUplink(config, gateway_id) as uplink: await uplink.send(rows)``."""

    name = "http"

    def __init__(self, config: HttpUplinkConfig, gateway_id: str) -> None:
        self.config = config
        self.gateway_id = gateway_id
        self.batching = config.batch
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        cfg = self.config
        headers = {"Content-Type": CONTENT_TYPE, "User-Agent": f"gonggi-gateway ({self.gateway_id})"}
        if cfg.bearer_token is not None:
            headers["Authorization"] = f"Bearer {cfg.bearer_token}"
        elif cfg.username is not None:
            headers["Authorization"] = aiohttp.encode_basic_auth(cfg.username, cfg.password or "")
        self._session = aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=cfg.timeout_s))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, batch: Sequence[SpooledPacket]) -> None:
        if self._session is None:
            raise UplinkError("HTTP uplink is not open")
        url = self.config.url
        try:
            async with self._session.post(url, data=senml_pack(batch), allow_redirects=False) as resp:
                if 200 <= resp.status < 300:
                    return
                text = (await resp.text(errors="replace"))[:_BODY_SHOWN]
                status, retry_after = resp.status, _retry_after(resp.headers.get("Retry-After"), time.time())
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise UplinkError(f"POST {url}: {type(exc).__name__}: {exc}") from exc
        message = f"POST {url}: HTTP {status}: {text!r}"
        if status >= 500 or status in _RETRY:
            raise UplinkError(message, retry_after=retry_after)
        if status in _ENDPOINT:
            raise UplinkError(f"{message} (the endpoint or its credentials: check [http_uplink])",
                              retry_after=retry_after)
        raise UplinkRejected(message)
