"""Is the gateway alive, and is it healthy? Checked every few seconds, from what it really does.

Each check (``HealthMonitor.check``) measures:

* ``loop``: the event loop ran the monitor's timer on time (late by less than ``stall_after``):
  every link, the ingest and the drainers share this loop, so a blocked loop stalls them all.
* ``spool``: the spool answers and can be written, within ``stall_after``. The gateway's own
  spool thread reads each uplink's oldest unconfirmed row (queued behind any commit in flight:
  a commit stuck in fsync on a dying SD card stalls it), then a separate connection takes the
  spool's write lock and gives it back (``BEGIN IMMEDIATE``; ``ROLLBACK``: a read-only
  filesystem, a lock held elsewhere or a missing file fail it) and reads the sequence gaps; the
  disk must have at least ``MIN_FREE_BYTES`` free. A probe still running from the previous
  check is waited for, never started twice.
* ``uplink:<name>``: an uplink with rows waiting has confirmed some within
  ``uplink_down_after`` (broker unreachable, endpoint refusing, a hung connection all fail it).

*Alive* (``loop`` and ``spool``) is what the systemd watchdog is pinged on: a restart can cure
those. *Healthy* also needs every uplink: ``/healthz`` answers 503 otherwise, but a restart
cannot bring a broker back, so the watchdog keeps being pinged while rows wait in the spool.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gonggi_gateway.config import HealthConfig
from gonggi_gateway.errors import StorageError
from gonggi_gateway.replay import SeqSet
from gonggi_gateway.state import Pulse

if TYPE_CHECKING:
    from gonggi_gateway.service import Gateway

__all__ = ["MIN_FREE_BYTES", "Check", "HealthMonitor", "HealthReport", "SpoolProbe", "probe_spool"]

MIN_FREE_BYTES = 1 << 20  # below this a commit may not fit: the spool counts as not writable


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


@dataclass(frozen=True)
class SpoolProbe:
    oldest_age: dict[str, float]  # per uplink: seconds its oldest unconfirmed row has waited (0: none)
    seq_missing: dict[str, int]  # per node: sequence numbers not (yet) received below the highest one
    free_bytes: int


@dataclass(frozen=True)
class HealthReport:
    checked_at: float  # Unix time
    checks: dict[str, Check]  # "loop", "spool", "uplink:<name>"
    probe: SpoolProbe | None  # the last successful spool probe

    @property
    def alive(self) -> bool:
        """What the watchdog is pinged on: the loop runs and the spool takes commits."""
        return self.checks["loop"].ok and self.checks["spool"].ok

    @property
    def healthy(self) -> bool:
        return all(c.ok for c in self.checks.values())

    def problems(self) -> list[str]:
        return [f"{name}: {c.detail}" for name, c in self.checks.items() if not c.ok]


def _missing(seqs: SeqSet) -> int:
    # Gaps: from the low-water mark to the first range, and between consecutive ranges.
    gaps = 0
    previous_end = seqs.low - 1
    for start, end in zip(seqs.starts, seqs.ends, strict=True):
        gaps += start - previous_end - 1
        previous_end = end
    return gaps


def probe_spool(path: Path, timeout: float) -> tuple[dict[str, int], int]:
    """Take the spool's write lock and release it, then read its sequence gaps per node.

    Reads the spool's ``replay`` table (docs/gateway.md): only rows with ranges have gaps.
    Raises sqlite3.Error or OSError when the spool cannot be written.
    """
    st = os.statvfs(path.parent)
    free = st.f_bavail * st.f_frsize
    if free < MIN_FREE_BYTES:
        raise OSError(f"only {free} bytes free on the spool's filesystem")
    # mode=rw: never create a stray empty spool if the file is gone.
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=timeout, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        missing: dict[str, int] = {}
        for node, low, ranges in conn.execute("SELECT node, low, ranges FROM replay WHERE length(ranges) > 0"):
            missing[node] = missing.get(node, 0) + _missing(SeqSet.from_row(low, ranges))
    finally:
        conn.close()
    return missing, free


@dataclass
class _Progress:
    delivered: int  # the uplink's count when last seen to change
    since: float  # monotonic time of its last confirmation (or of an empty queue)


class HealthMonitor:
    """Runs the checks every ``interval`` seconds (see ``run``); ``report`` is the latest result."""

    def __init__(self, gateway: Gateway, config: HealthConfig, *,
                 on_report: Callable[[HealthReport], None] = lambda report: None) -> None:
        self.gateway = gateway
        self.config = config
        self.report: HealthReport | None = None
        self.reported = Pulse()  # fires after every check
        self._on_report = on_report
        self._probe: asyncio.Task[SpoolProbe] | None = None
        self._probe_started = 0.0
        self._last_probe: SpoolProbe | None = None
        self._progress: dict[str, _Progress] = {}

    async def run(self, interval: float) -> None:
        """Check every ``interval`` seconds until cancelled (``check()`` once first for a report now)."""
        try:
            while True:
                started = time.monotonic()
                await asyncio.sleep(interval)
                await self.check(max(0.0, time.monotonic() - started - interval))
        finally:
            if self._probe is not None:
                self._probe.cancel()

    async def check(self, lag: float = 0.0) -> HealthReport:
        """Run every check once; ``lag`` is how late the event loop ran the last timer."""
        cfg = self.config
        checks = {"loop": Check(lag < cfg.stall_after, f"timers run {lag:.3f} s late")}
        checks["spool"] = await self._check_spool()
        snap = self.gateway.snapshot()
        now = time.monotonic()
        for uplink in snap.uplinks:
            progress = self._progress.setdefault(uplink.name, _Progress(uplink.delivered, now))
            if uplink.delivered != progress.delivered or uplink.pending == 0:
                progress.delivered, progress.since = uplink.delivered, now
            waited = now - progress.since
            if uplink.pending and waited >= cfg.uplink_down_after:
                error = f"; last error: {uplink.last_error}" if uplink.last_error else ""
                checks[f"uplink:{uplink.name}"] = Check(
                    False, f"{uplink.pending} rows waiting, none confirmed for {waited:.1f} s{error}")
            else:
                checks[f"uplink:{uplink.name}"] = Check(
                    True, f"{uplink.pending} rows waiting, {uplink.delivered} delivered")
        self.report = HealthReport(snap.taken_at, checks, self._last_probe)
        self._on_report(self.report)
        self.reported.fire()
        return self.report

    async def _check_spool(self) -> Check:
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._measure(), name="spool probe")
            self._probe_started = time.monotonic()
        done, _ = await asyncio.wait({self._probe}, timeout=self.config.stall_after)
        if not done:
            return Check(False, f"spool probe unanswered for {time.monotonic() - self._probe_started:.1f} s")
        try:
            probe = self._probe.result()
        except (StorageError, sqlite3.Error, OSError) as exc:
            return Check(False, f"not writable: {exc}")
        self._last_probe = probe
        return Check(True, f"{self.gateway.spool.depth()} rows, {probe.free_bytes >> 20} MiB free")

    async def _measure(self) -> SpoolProbe:
        spool = self.gateway.spool
        now = self.gateway.snapshot().taken_at
        oldest = {}
        for name in spool.uplinks:
            rows = await spool.pending(name, 1)
            oldest[name] = max(0.0, now - rows[0].received_at) if rows else 0.0
        # Half the stall limit for the lock: a lock held elsewhere shows as such, not as a stall.
        missing, free = await asyncio.to_thread(probe_spool, spool.path, self.config.stall_after / 2)
        return SpoolProbe(oldest, missing, free)
