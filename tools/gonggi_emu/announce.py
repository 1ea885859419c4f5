"""Where running emulated boards say which ports they have, so ``gonggi node list`` finds them.

A USB board shows up in ``serial.tools.list_ports``; a pty does not. Each running
:class:`~gonggi_emu.supervisor.EmulatedBoard` keeps one small JSON file in a per-user directory::

    {"repl": "/dev/pts/5", "uarts": {"1": "/dev/pts/6"}, "pid": 4242, "uid": "a4cf12...", "flash": "/tmp/b1"}

and removes it when it stops. A board whose process died without cleaning up is skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AnnouncedBoard", "announce", "announced_boards", "boards_dir", "withdraw"]


@dataclass(frozen=True)
class AnnouncedBoard:
    repl: str
    uarts: Mapping[int, str]
    pid: int
    uid: str
    flash: str


def boards_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"gonggi-{os.getuid()}" / "emulated-boards"


def _path(uid: str) -> Path:
    return boards_dir() / f"{os.getpid()}-{uid}.json"


def announce(board: AnnouncedBoard) -> None:
    """Publish (or update, after a re-plug) ``board``; written whole, then renamed into place."""
    path = _path(board.uid)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"repl": board.repl, "uarts": {str(k): v for k, v in board.uarts.items()},
                               "pid": board.pid, "uid": board.uid, "flash": board.flash}))
    os.replace(tmp, path)


def withdraw(uid: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        _path(uid).unlink()


def announced_boards() -> list[AnnouncedBoard]:
    """The emulated boards running now, by REPL path."""
    found = []
    for path in sorted(boards_dir().glob("*.json")):
        try:
            raw = json.loads(path.read_text())
            board = AnnouncedBoard(str(raw["repl"]), {int(k): str(v) for k, v in raw["uarts"].items()},
                                   int(raw["pid"]), str(raw["uid"]), str(raw["flash"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # not a board's announcement
        if _alive(board.pid) and os.path.exists(board.repl):
            found.append(board)
    return sorted(found, key=lambda b: b.repl)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
