"""Dead letters: rows an uplink refused for good (an HTTP 4xx), kept in the spool's ``dead_letters``
table with the reason until an operator resends or drops them (``gonggi gateway dead-letters``).

The SQL on that table, shared by the spool (which adds rows and sends the marked ones again) and
the operator's commands (which list, mark and delete rows from another process: in WAL mode both
write the file, each in a short ``BEGIN IMMEDIATE`` transaction). Every function runs inside its
caller's transaction. A mark is a ``resend_requested_at`` time; only the uplink named in the row
sends it again, so the other uplinks, which delivered the row long ago, never see it twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["DeadLetter", "delete", "mark_resend", "marked", "reject_again", "select"]


class DeadLetter(NamedTuple):
    """A row an uplink rejected for good, kept with the reason; ``resend_requested_at`` is set
    while an operator's request to send it again is pending."""

    id: int
    uplink: str
    node: str
    boot: int
    seq: int
    received_at: float
    records: str
    reason: str
    rejected_at: float
    resend_requested_at: float | None = None


_COLUMNS = "id, uplink, node, boot, seq, received_at, records, reason, rejected_at, resend_requested_at"


def _ids(ids: Sequence[int]) -> str:
    return json.dumps(list(ids))  # bound as one parameter, expanded by json_each


def select(conn: sqlite3.Connection, uplink: str | None = None, ids: Sequence[int] | None = None,
           limit: int = -1) -> list[DeadLetter]:
    """The dead letters of ``uplink`` (None: all) with these ``ids`` (None: any), oldest first;
    ``limit`` -1 for all."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM dead_letters WHERE (:uplink IS NULL OR uplink = :uplink) "
        "AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids))) ORDER BY id LIMIT :limit",
        {"uplink": uplink, "ids": None if ids is None else _ids(ids), "limit": limit},
    ).fetchall()
    return list(map(DeadLetter._make, rows))


def marked(conn: sqlite3.Connection, uplink: str, limit: int) -> list[DeadLetter]:
    """The oldest dead letters of ``uplink`` marked for resending (a partial index finds them:
    an uplink's drainer asks at every batch)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM dead_letters WHERE resend_requested_at IS NOT NULL AND uplink = :uplink "
        "ORDER BY id LIMIT :limit",
        {"uplink": uplink, "limit": limit},
    ).fetchall()
    return list(map(DeadLetter._make, rows))


def mark_resend(conn: sqlite3.Connection, ids: Sequence[int], now: float) -> int:
    """Ask for these dead letters to be sent again; returns how many were marked."""
    return conn.execute(
        "UPDATE dead_letters SET resend_requested_at = :now WHERE id IN (SELECT value FROM json_each(:ids))",
        {"now": now, "ids": _ids(ids)},
    ).rowcount


def reject_again(conn: sqlite3.Connection, ids: Sequence[int], reason: str, now: float) -> int:
    """Upstream refused these again: keep them with the new reason, unmarked."""
    return conn.execute(
        "UPDATE dead_letters SET reason = :reason, rejected_at = :now, resend_requested_at = NULL "
        "WHERE id IN (SELECT value FROM json_each(:ids))",
        {"reason": reason, "now": now, "ids": _ids(ids)},
    ).rowcount


def delete(conn: sqlite3.Connection, ids: Sequence[int]) -> int:
    """Delete these dead letters (delivered on resend, or dropped); returns how many there were."""
    return conn.execute("DELETE FROM dead_letters WHERE id IN (SELECT value FROM json_each(:ids))",
                        {"ids": _ids(ids)}).rowcount
