"""The status page: a static HTML page whose script draws ``/api/status`` every few seconds.

The page (``data/status.html``) renders nodes with their last values and sparklines (inline
SVG), link health, the spool and the uplinks, and the health checks; it inserts every value as
text, never as HTML. ``status_document`` is the JSON it reads, built from a snapshot, the
recent history and the latest health report.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import cache
from importlib.resources import files
from typing import Any

from gonggi_gateway.ops.health import HealthReport
from gonggi_gateway.ops.history import History
from gonggi_gateway.state import NodeStatus, Reading, Snapshot

__all__ = ["page", "status_document"]


@cache
def page() -> str:
    return files("gonggi_gateway.ops").joinpath("data/status.html").read_text(encoding="utf-8")


def _readings(node: NodeStatus, history: History) -> list[Reading]:
    """The node's latest values; after a restart, channels not heard since show the newest
    point the history kept."""
    latest = {r.name: r for r in history.latest(node.node_id)}
    latest.update((r.name, r) for r in node.readings)
    return [latest[name] for name in sorted(latest)]


def _node(node: NodeStatus, history: History, missing: int) -> dict[str, Any]:
    return {
        "id": node.node_id, "name": node.name, "location": node.location, "link": node.link, "boot": node.boot,
        "last_seen": node.last_seen, "packets": node.packets, "duplicates": node.duplicates,
        "rejected": node.rejected, "firmware": node.firmware, "backlog": node.backlog, "dropped": node.dropped,
        "flags": node.flags, "seq_missing": missing,
        "readings": [
            {"name": r.name, "unit": r.unit, "value": r.value, "time": r.time,
             "history": history.series(node.node_id, r.name)}
            for r in _readings(node, history)
        ],
    }


def status_document(snap: Snapshot, history: History, report: HealthReport | None) -> dict[str, Any]:
    """What ``/api/status`` answers: everything the page shows, as JSON-ready data."""
    probe = report.probe if report is not None else None
    oldest = probe.oldest_age if probe is not None else {}
    missing = probe.seq_missing if probe is not None else {}
    health = None
    if report is not None:
        health = {"healthy": report.healthy, "alive": report.alive, "checked_at": report.checked_at,
                  "checks": {name: asdict(check) for name, check in report.checks.items()}}
    return {
        "gateway": snap.gateway_id,
        "taken_at": snap.taken_at,
        "health": health,
        "spool": {"depth": snap.spool_depth, "oldest_age_s": max(oldest.values(), default=None),
                  "free_bytes": probe.free_bytes if probe is not None else None},
        "uplinks": [{**asdict(u), "oldest_age_s": oldest.get(u.name)} for u in snap.uplinks],
        "links": [{"name": ls.name, "open": ls.open, "node": ls.node_id, "frame_errors": ls.frame_errors,
                   "rssi": ls.rssi} for ls in snap.links],
        "nodes": [_node(n, history, missing.get(n.node_id, 0)) for n in snap.nodes.values()],
        "rejected": snap.rejected,
    }
