"""``gonggi gateway dead-letters list|resend|drop``: the rows an uplink refused for good, for an operator.

The commands open the spool named by the gateway's configuration, whether the gateway runs or
not: in WAL mode each change is one short transaction beside the gateway's own. ``resend`` only
marks rows; the uplink that refused them sends them again before its next batch (within
``RESEND_POLL_S`` when idle, or when a stopped gateway starts). ``drop`` deletes only with
``--yes``; without it, it shows what would go and exits 1. Errors are one line naming the file,
exit status 2 (docs/gateway.md, "Dead letters").
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from gonggi_gateway import dead_letters as letters
from gonggi_gateway.config import Config, load_config
from gonggi_gateway.db import Database, transaction
from gonggi_gateway.dead_letters import DeadLetter
from gonggi_gateway.errors import ConfigError, GatewayError, StorageError
from gonggi_gateway.spool import MIGRATIONS
from gonggi_gateway.uplinks.base import RESEND_POLL_S

__all__ = ["add_dead_letter_commands"]

_REASON_SHOWN = 72  # characters of a reason in the listing (the spool keeps it whole)
_HEADER = ("id", "uplink", "node", "boot", "seq", "received", "rejected", "resend", "reason")
_NUMERIC = frozenset({"id", "boot", "seq"})


def add_dead_letter_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``dead-letters list|resend|drop`` under ``gonggi gateway``."""
    parser = commands.add_parser("dead-letters", help="list, resend or drop the rows an uplink refused for good")
    sub = parser.add_subparsers(dest="dead_letters_command", metavar="COMMAND", required=True)
    listing = sub.add_parser("list", help="the dead letters: ids, nodes, times, reasons")
    resend = sub.add_parser("resend", help="have the uplink that refused them send them again (gateway running or not)")
    drop = sub.add_parser("drop", help="delete them (with --yes; without, show what would be deleted)")
    for p in (listing, resend, drop):
        p.add_argument("--config", "-c", type=Path, required=True, metavar="FILE",
                       help="gateway TOML file (it names the spool)")
        p.add_argument("--uplink", metavar="NAME", help="only the dead letters of this uplink (mqtt, http, archive)")
    for p, required in ((resend, False), (drop, True)):
        which = p.add_mutually_exclusive_group(required=required)
        which.add_argument("--id", dest="ids", type=int, nargs="+", action="extend", metavar="N",
                           help="these dead letters (ids from list)")
        which.add_argument("--all", action="store_true", help="every dead letter (of --uplink, if given)")
    drop.add_argument("--yes", action="store_true", help="really delete them")
    listing.set_defaults(func=partial(_command, action=_list))
    resend.set_defaults(func=partial(_command, action=_resend))
    drop.set_defaults(func=partial(_command, action=_drop))


@dataclass(frozen=True)
class _Selection:
    """Which dead letters a command is about, and the configuration that names the uplinks."""

    uplink: str | None
    ids: tuple[int, ...] | None  # None: every one (of the uplink)
    config: Config


_Action = Callable[[Config, argparse.Namespace], Awaitable[int]]


def _command(args: argparse.Namespace, action: _Action) -> int:
    try:
        return asyncio.run(action(load_config(args.config), args))
    except GatewayError as exc:
        return _fail(str(exc))


def _fail(message: str, status: int = 2) -> int:
    print(f"gonggi gateway: {message}", file=sys.stderr)
    return status


@asynccontextmanager
async def _spool(config: Config) -> AsyncIterator[Database]:
    path = config.gateway.spool
    if not path.is_file():  # Database would make an empty one
        raise StorageError(f"{path}: no spool there ([gateway] spool of {config.source}); "
                           "the gateway makes it when it first starts")
    async with Database(path, MIGRATIONS, synchronous=config.gateway.synchronous, what="spool") as db:
        yield db


def _choose(conn: sqlite3.Connection, selection: _Selection, where: str) -> list[DeadLetter]:
    """The selected dead letters; a ConfigError for ids that are not there, or a mistyped uplink."""
    uplink, ids, config = selection.uplink, selection.ids, selection.config
    chosen = letters.select(conn, uplink, ids)
    of = f" of uplink {uplink}" if uplink else ""
    unknown = sorted(set(ids or ()) - {d.id for d in chosen})
    if unknown:
        raise ConfigError(f"{where}: no dead letter{of} with id {', '.join(map(str, unknown))} "
                          "(gonggi gateway dead-letters list shows them)")
    if not chosen and uplink is not None and uplink not in config.uplink_names:
        raise ConfigError(f"{where}: no dead letters of uplink {uplink}, which {config.source} does not configure "
                          f"(its uplinks: {', '.join(config.uplink_names)})")
    return chosen


def _apply(conn: sqlite3.Connection, selection: _Selection, where: str,
           change: Callable[[sqlite3.Connection, list[DeadLetter]], object]) -> list[DeadLetter]:
    """Choose and change in one transaction: nothing changes if an id is unknown."""
    with transaction(conn):
        chosen = _choose(conn, selection, where)
        if chosen:
            change(conn, chosen)
    return chosen


def _mark(config: Config, where: str, conn: sqlite3.Connection, chosen: list[DeadLetter]) -> None:
    orphans = sorted({d.uplink for d in chosen} - set(config.uplink_names))
    if orphans:  # nothing would ever send them
        raise ConfigError(f"{where}: the dead letters of uplink {', '.join(orphans)}, which {config.source} does "
                          "not configure, cannot be resent: nothing marked (choose others with --uplink or --id)")
    letters.mark_resend(conn, [d.id for d in chosen], time.time())


def _delete(conn: sqlite3.Connection, chosen: list[DeadLetter]) -> None:
    letters.delete(conn, [d.id for d in chosen])


def _selection(config: Config, args: argparse.Namespace) -> _Selection:
    ids = getattr(args, "ids", None)  # list has no --id
    return _Selection(args.uplink, None if ids is None else tuple(ids), config)


def _counts(chosen: Sequence[DeadLetter]) -> str:
    per_uplink = Counter(d.uplink for d in chosen)
    return ", ".join(f"{n} of uplink {name}" for name, n in sorted(per_uplink.items()))


async def _list(config: Config, args: argparse.Namespace) -> int:
    async with _spool(config) as db:
        chosen = await db.run(_choose, _selection(config, args), str(db.path))
    if not chosen:
        print(f"no dead letters{f' of uplink {args.uplink}' if args.uplink else ''} in {db.path}")
        return 0
    print("\n".join(_table(chosen)))
    marked = sum(d.resend_requested_at is not None for d in chosen)
    print(f"{len(chosen)} dead letter(s) in {db.path}" + (f", {marked} marked for resending" if marked else ""))
    return 0


async def _resend(config: Config, args: argparse.Namespace) -> int:
    if args.ids is None and not args.all and args.uplink is None:
        return _fail("dead-letters resend: say which: --id N ..., --uplink NAME or --all")
    async with _spool(config) as db:
        where = str(db.path)
        chosen = await db.run(_apply, _selection(config, args), where, partial(_mark, config, where))
    if not chosen:
        print(f"no dead letters to resend in {where}")
        return 0
    print(f"marked {len(chosen)} dead letter(s) for resending ({_counts(chosen)}) in {where}: the uplink that "
          f"refused them sends them again before its next batch (within {RESEND_POLL_S:g} s when idle; "
          "a stopped gateway when it starts)")
    return 0


async def _drop(config: Config, args: argparse.Namespace) -> int:
    selection = _selection(config, args)
    async with _spool(config) as db:
        where = str(db.path)
        if args.yes:
            chosen = await db.run(_apply, selection, where, _delete)
        else:
            chosen = await db.run(_choose, selection, where)
    if not chosen:
        print(f"no dead letters to drop in {where}")
        return 0
    if not args.yes:
        print("\n".join(_table(chosen)))
        return _fail(f"would drop {len(chosen)} dead letter(s) ({_counts(chosen)}) from {where}; nothing deleted: "
                     "run again with --yes to delete them", 1)
    print(f"dropped {len(chosen)} dead letter(s) ({_counts(chosen)}) from {where}")
    return 0


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _short(reason: str) -> str:
    flat = " ".join(reason.split())
    return flat if len(flat) <= _REASON_SHOWN else flat[:_REASON_SHOWN - 1] + "…"


def _table(chosen: Sequence[DeadLetter]) -> list[str]:
    rows = [_HEADER] + [
        (str(d.id), d.uplink, d.node, str(d.boot), str(d.seq), _utc(d.received_at), _utc(d.rejected_at),
         "-" if d.resend_requested_at is None else "marked", _short(d.reason))
        for d in chosen
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER) - 1)]
    return ["  ".join([*(cell.rjust(w) if name in _NUMERIC else cell.ljust(w)
                         for name, cell, w in zip(_HEADER, row, widths)), row[-1]]) for row in rows]
