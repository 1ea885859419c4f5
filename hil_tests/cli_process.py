"""A long-running command a person starts in a terminal (a radio, a board, a gateway): its output
lines (stdout and stderr) appended to the test's log as they come, and waited for with expect()."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["CliProcess"]

_STOP_TIMEOUT_S = 15.0
_TAIL_LINES = 30


class CliProcess:
    """``async with CliProcess([GONGGI, "emu", "radio", ...], log) as radio: await radio.expect("^RADIO ")``.

    Leaving the block sends SIGTERM (as Ctrl-C would end it) and kills the process if it lingers.
    """

    def __init__(self, argv: Sequence[str | os.PathLike[str]], log: Path, *,
                 env: Mapping[str, str] | None = None) -> None:
        self.argv = [str(a) for a in argv]
        self.shown = shlex.join(["gonggi", *self.argv[1:]])
        self.log = log
        self.lines: list[str] = []
        self._env = dict(env) if env is not None else None
        self._changed = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._pumps: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def __aenter__(self) -> Self:
        with self.log.open("a") as f:
            f.write(f"$ {self.shown}\n")
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=self._env)
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._pumps = [asyncio.create_task(self._pump(s)) for s in (self._proc.stdout, self._proc.stderr)]
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self.running:
            await self.stop(check=False)

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        while raw := await stream.readline():
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            with self.log.open("a") as f:
                f.write(line + "\n")
            self._changed.set()
        self._changed.set()  # end of output: expect() stops waiting for more

    def _tail(self) -> str:
        return "\n".join(self.lines[-_TAIL_LINES:])

    async def expect(self, pattern: str, timeout: float = 20.0, count: int = 1) -> list[re.Match[str]]:
        """The first ``count`` lines matching ``pattern`` so far, waiting up to ``timeout`` for them."""
        assert self._proc is not None
        regex = re.compile(pattern)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    found = [m for m in map(regex.search, self.lines) if m is not None]
                    if len(found) >= count:
                        return found[:count]
                    if all(p.done() for p in self._pumps):
                        rc = await self._proc.wait()
                        raise AssertionError(f"{self.shown} ended (exit {rc}) without {count} line(s) matching "
                                             f"{pattern!r}; log {self.log}:\n{self._tail()}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{self.shown}: no {count} line(s) matching {pattern!r} within {timeout:g} s; "
                                 f"log {self.log}:\n{self._tail()}") from None

    async def stop(self, *, check: bool = True) -> int:
        """SIGTERM, as a service manager or Ctrl-C ends it; its exit status once its output is read."""
        assert self._proc is not None
        if self._proc.returncode is None:
            self._proc.send_signal(signal.SIGTERM)
        try:
            rc = await asyncio.wait_for(self._proc.wait(), _STOP_TIMEOUT_S)
        except TimeoutError:
            self._proc.kill()
            rc = await self._proc.wait()
            if check:
                raise AssertionError(f"{self.shown} ignored SIGTERM for {_STOP_TIMEOUT_S:g} s; log {self.log}:\n"
                                     f"{self._tail()}") from None
        await asyncio.gather(*self._pumps)
        with self.log.open("a") as f:
            f.write(f"[{self.shown}: exit {rc}]\n")
        return rc
