"""Prometheus metrics of one gateway, read from what it already counts.

Every gateway has its own ``CollectorRegistry`` (never prometheus-client's global one), so one
process — a test, a bench — can run several. Nearly everything comes from ``Gateway.snapshot()``
and the health monitor's latest spool probe through one custom collector, read at scrape time:
no second set of counters to keep in step. The one thing a snapshot cannot give, how long each
uplink takes to confirm a batch, is measured by wrapping the uplinks the drainers send through
(``GatewayMetrics.timed``). The metric reference is docs/operations.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gonggi_gateway.ops.health import HealthReport
from gonggi_gateway.spool import SpooledPacket, SpoolStats
from gonggi_gateway.state import Snapshot
from gonggi_gateway.uplinks.base import Uplink

__all__ = ["BATTERY_CHANNEL", "GatewayMetrics", "SnapshotCollector", "TimedUplink"]

BATTERY_CHANNEL = "bat.v"  # the battery sensor's voltage channel (firmware/drivers/battery.py)
_SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class TimedUplink(Uplink):
    """An uplink as its drainer sees it, timing every batch the real one confirms."""

    def __init__(self, inner: Uplink, seconds: Histogram) -> None:
        self.inner = inner
        self.name = inner.name
        self._seconds = seconds.labels(uplink=inner.name)

    def __getattr__(self, attr: str) -> Any:  # anything else an uplink offers (settings, topics)
        return getattr(self.inner, attr)

    async def send(self, batch: Sequence[SpooledPacket]) -> None:
        started = time.perf_counter()
        await self.inner.send(batch)  # failures are counted by the drainer: errors{uplink}
        self._seconds.observe(time.perf_counter() - started)


class GatewayMetrics:
    """The registry of one gateway; ``render()`` is the /metrics body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.uplink_seconds = Histogram(
            "gonggi_uplink_send_seconds", "Time from sending a batch to its confirmation by the uplink",
            ["uplink"], registry=self.registry, buckets=_SEND_BUCKETS)

    def timed(self, uplink: Uplink) -> Uplink:
        return TimedUplink(uplink, self.uplink_seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _spool_limits(stats: SpoolStats) -> Iterator[Metric]:
    """The disk bound's policy at work (docs/gateway.md, "A bounded disk") and the dead letters."""
    refused = _counter("gonggi_spool_refused", "New packets refused, not acked, because the spool was full "
                       "(the nodes keep them and send them again)")
    refused.add_metric([], stats.refused)
    full = _gauge("gonggi_spool_full", "1 while the spool refuses new packets (spool_max_mb or the disk reserve)")
    full.add_metric([], 1 if stats.full else 0)
    used = _gauge("gonggi_spool_used_bytes", "Bytes of pages the spool file uses (rows, replay state, dead letters)")
    used.add_metric([], stats.used_bytes)
    yield from (refused, full, used)
    if stats.max_bytes is not None:
        cap = _gauge("gonggi_spool_max_bytes", "The spool's configured cap (spool_max_mb)")
        cap.add_metric([], stats.max_bytes)
        yield cap
    dead = _counter("gonggi_uplink_dead_letters", "Rows the uplink refused for good, kept as dead letters", ["uplink"])
    resent = _counter("gonggi_uplink_resent", "Dead letters delivered after an operator's resend", ["uplink"])
    again = _counter("gonggi_uplink_resend_rejected", "Resent dead letters refused again", ["uplink"])
    for family, counts in ((dead, stats.dead_letters), (resent, stats.resent), (again, stats.resend_rejected)):
        for name, count in sorted(counts.items()):
            family.add_metric([name], count)
    yield from (dead, resent, again)


def _counter(name: str, doc: str, labels: Sequence[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


class SnapshotCollector(Collector):
    """Turns the gateway's snapshot and the latest health report into metric families."""

    def __init__(self, snapshot: Callable[[], Snapshot], report: Callable[[], HealthReport | None]) -> None:
        self._snapshot = snapshot
        self._report = report

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        yield from self._packets(snap)
        yield from self._nodes(snap)
        yield from self._links(snap)
        yield from self._spool_and_uplinks(snap, self._report())

    @staticmethod
    def _packets(snap: Snapshot) -> Iterator[Metric]:
        stored = sum(n.packets for n in snap.nodes.values())
        duplicates = sum(n.duplicates for n in snap.nodes.values())
        rejected = _counter("gonggi_packets_rejected", "Messages rejected, by reason (duplicate included)", ["reason"])
        for reason, count in sorted(snap.rejected.items()):
            rejected.add_metric([reason], count)
        failed = sum(count for reason, count in snap.rejected.items() if reason != "duplicate")
        received = _counter("gonggi_packets_received", "Packets received: stored, duplicates and rejected")
        received.add_metric([], stored + duplicates + failed)
        verified = _counter("gonggi_packets_verified", "Packets whose MAC verified (stored and duplicates)")
        verified.add_metric([], stored + duplicates)
        spooled = _counter("gonggi_packets_stored", "New packets committed to the spool")
        spooled.add_metric([], stored)
        yield from (received, verified, spooled, rejected)

    @staticmethod
    def _nodes(snap: Snapshot) -> Iterator[Metric]:
        node_label = ["node"]
        packets = _counter("gonggi_node_packets", "New packets stored, per node", node_label)
        duplicates = _counter("gonggi_node_duplicates", "Packets received again, per node", node_label)
        rejected = _counter("gonggi_node_rejected", "Messages naming the node that failed, by reason",
                            ["node", "reason"])
        last_seen = _gauge("gonggi_node_last_seen_timestamp_seconds", "Unix time of the node's last valid message",
                           node_label)
        battery = _gauge("gonggi_node_battery_volts", f"The node's battery voltage (its {BATTERY_CHANNEL} channel)",
                         node_label)
        reading = _gauge("gonggi_node_reading", "The latest value of every numeric channel",
                         ["node", "channel", "unit"])
        backlog = _gauge("gonggi_node_backlog", "Unacked packets in the node's flash (its last HELLO)", node_label)
        dropped = _gauge("gonggi_node_dropped", "Packets the node's full ring buffer overwrote (its last HELLO)",
                         node_label)
        for node_id, node in snap.nodes.items():
            packets.add_metric([node_id], node.packets)
            duplicates.add_metric([node_id], node.duplicates)
            for reason, count in sorted(node.rejected.items()):
                rejected.add_metric([node_id, reason], count)
            if node.last_seen is not None:
                last_seen.add_metric([node_id], node.last_seen)
            backlog.add_metric([node_id], node.backlog)
            dropped.add_metric([node_id], node.dropped)
            for r in node.readings:
                if isinstance(r.value, bool) or not isinstance(r.value, (int, float)):
                    continue
                reading.add_metric([node_id, r.name, r.unit or ""], r.value)
                if r.name == BATTERY_CHANNEL:
                    battery.add_metric([node_id], r.value)
        yield from (packets, duplicates, rejected, last_seen, battery, reading, backlog, dropped)

    @staticmethod
    def _links(snap: Snapshot) -> Iterator[Metric]:
        up = _gauge("gonggi_link_up", "1 while the link's port or connection is usable", ["link"])
        errors = _counter("gonggi_link_frame_errors", "Damaged frames dropped, by reason", ["link", "reason"])
        rssi = _gauge("gonggi_link_rssi_dbm", "Received signal strength of a radio link", ["link"])
        for link in snap.links:
            up.add_metric([link.name], 1 if link.open else 0)
            for reason, count in sorted(link.frame_errors.items()):
                errors.add_metric([link.name, reason], count)
            if link.rssi is not None:
                rssi.add_metric([link.name], link.rssi)
        yield from (up, errors, rssi)

    @staticmethod
    def _spool_and_uplinks(snap: Snapshot, report: HealthReport | None) -> Iterator[Metric]:
        depth = _gauge("gonggi_spool_depth", "Packets in the spool (not yet confirmed by every uplink)")
        depth.add_metric([], snap.spool_depth)
        pending = _gauge("gonggi_uplink_pending", "Spooled packets this uplink has not confirmed", ["uplink"])
        delivered = _counter("gonggi_uplink_delivered", "Packets the uplink confirmed", ["uplink"])
        errors = _counter("gonggi_uplink_errors", "Failed send attempts", ["uplink"])
        up = _gauge("gonggi_uplink_up", "1 unless the uplink's last send failed", ["uplink"])
        for u in snap.uplinks:
            pending.add_metric([u.name], u.pending)
            delivered.add_metric([u.name], u.delivered)
            errors.add_metric([u.name], u.failures)
            up.add_metric([u.name], 1 if u.last_error is None else 0)
        yield from (depth, pending, delivered, errors, up)
        if snap.spool is not None:
            yield from _spool_limits(snap.spool)
        if report is None:
            return
        healthy = _gauge("gonggi_healthy", "1 when every health check passes (/healthz answers 200)")
        healthy.add_metric([], 1 if report.healthy else 0)
        check = _gauge("gonggi_health_check_ok", "1 when this health check passes", ["check"])
        for name, c in report.checks.items():
            check.add_metric([name], 1 if c.ok else 0)
        yield from (healthy, check)
        if report.probe is None:
            return
        oldest = _gauge("gonggi_spool_oldest_age_seconds",
                        "Age of the oldest spooled packet (at the last health check)")
        oldest.add_metric([], max(report.probe.oldest_age.values(), default=0.0))
        per_uplink = _gauge("gonggi_uplink_oldest_age_seconds",
                            "Age of the oldest packet this uplink has not confirmed", ["uplink"])
        for name, age in report.probe.oldest_age.items():
            per_uplink.add_metric([name], age)
        missing = _gauge("gonggi_node_seq_missing",
                         "Packets lost or still in flight: sequence numbers missing below the highest received",
                         ["node"])
        for node_id in snap.nodes:
            missing.add_metric([node_id], report.probe.seq_missing.get(node_id, 0))
        yield from (oldest, per_uplink, missing)
