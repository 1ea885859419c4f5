"""Running a command-line tool against the board as a field tech does: one process, its output
(stdout and stderr in order) appended to the test's log, and the port let go by the test's own
console while the tool holds it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["port_released", "run_logged"]


async def run_logged(argv: Sequence[str], log: Path, timeout: float, shown: str) -> tuple[int, str]:
    """Exit status and output of ``argv``; ``shown`` is how the command line reads in ``log``."""
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        raw, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    out = raw.decode(errors="replace")
    with log.open("a") as f:
        f.write(f"$ {shown}\n{out}[exit {proc.returncode}]\n")
    assert proc.returncode is not None
    return proc.returncode, out


@contextlib.asynccontextmanager
async def port_released(board: Any) -> AsyncIterator[None]:
    # A serial port has one reader: a real board's console (conftest.RealBoard) lets go while a
    # tool uses it. The emulated board's console never reads its REPL port, so it needs nothing.
    if hasattr(board, "close_port"):
        board.close_port()
        try:
            yield
        finally:
            board.open_port()
    else:
        yield
