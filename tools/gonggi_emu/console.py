"""The board's console output: cooked like the ESP32's stdout, logged, and kept for ``expect()``."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

__all__ = ["RAW_REPL_BANNER", "Console", "ExpectTimeout"]

RAW_REPL_BANNER = b"raw REPL; CTRL-B to exit\r\n"
_FRIENDLY_BANNER = b'Type "help()" for more information.\r\n'
_LONE_LF = re.compile(rb"(?<!\r)\n")
_TAIL = 4000  # bytes of console shown by a failed expect()
_MARK = "\u25b8"


class ExpectTimeout(AssertionError):
    """``expect()`` saw no match in time; the message shows the console tail and the log path."""


class Console:
    """Everything the board prints, in order: to ``sink`` (the REPL port), the log and a buffer."""

    def __init__(self, log_path: Path, sink: Callable[[bytes], None], limit: int = 1 << 20) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab", buffering=0)
        self._sink = sink
        self._limit = limit
        self._buf = bytearray()
        self._base = 0  # absolute offset of _buf[0]
        self._cursor = 0  # absolute offset where the next expect() starts looking
        self._changed = asyncio.Event()
        self._after_cr = False
        self._mode_tail = b""
        self.in_raw_repl = False
        self._hold: bytes | None = None
        self._held = bytearray()
        self._hold_timer: asyncio.TimerHandle | None = None

    @property
    def text(self) -> str:
        return self._buf.decode(errors="replace")

    def feed_vm(self, data: bytes) -> None:
        """Output of the VM, whose pty does no output processing: LF becomes CR LF, as
        MicroPython's ESP32 stdout does (the REPL's own CR LF pass unchanged)."""
        if not data:
            return
        cooked = _LONE_LF.sub(b"\r\n", data)
        if self._after_cr and data[:1] == b"\n":
            cooked = cooked[1:]  # the CR came at the end of the previous chunk
        self._after_cr = data[-1:] == b"\r"
        if self._hold is not None:
            self._held += cooked
            at = self._held.find(self._hold)
            if at < 0:
                return
            cooked = bytes(self._held[at:])
            self.release()
        self.emit(cooked)

    def hold_until(self, marker: bytes, at_most: float) -> None:
        """Show nothing until ``marker`` is printed (then from the marker on), or ``at_most`` s."""
        self.release()
        self._hold = marker
        self._hold_timer = asyncio.get_running_loop().call_later(at_most, self.release)

    def release(self) -> None:
        """Stop holding output back, discarding what was held."""
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        self._hold = None
        self._held.clear()

    def emit(self, data: bytes) -> None:
        """Show ``data`` on the console as is (supervisor messages, ROM boot lines)."""
        self._log.write(data)
        self._buf += data
        if len(self._buf) > self._limit:
            drop = len(self._buf) - self._limit // 2
            del self._buf[:drop]
            self._base += drop
        self._track_mode(data)
        self._changed.set()
        self._sink(data)

    def _track_mode(self, data: bytes) -> None:
        window = self._mode_tail + data
        raw, friendly = window.rfind(RAW_REPL_BANNER), window.rfind(_FRIENDLY_BANNER)
        if raw >= 0 or friendly >= 0:
            self.in_raw_repl = raw > friendly
        self._mode_tail = window[-len(_FRIENDLY_BANNER) :]

    def reset_mode(self) -> None:
        """A hard reset: the board boots to the friendly REPL."""
        self.in_raw_repl = False

    async def expect(self, pattern: bytes | str | re.Pattern[bytes], timeout: float) -> re.Match[bytes]:
        """Wait for ``pattern`` in the output after the previous match; consume up to its end."""
        if isinstance(pattern, str):
            pattern = pattern.encode()
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            start = max(self._cursor - self._base, 0)
            match = regex.search(self._buf, start)
            if match is not None:
                self._cursor = self._base + match.end()
                return match
            left = deadline - loop.time()
            if left <= 0:
                raise ExpectTimeout(self._timeout_message(regex, timeout, start))
            self._changed.clear()
            try:
                async with asyncio.timeout(left):
                    await self._changed.wait()
            except TimeoutError:
                pass

    def _timeout_message(self, regex: re.Pattern[bytes], timeout: float, start: int) -> str:
        first = max(0, len(self._buf) - _TAIL)
        seen = self._buf[first:start].decode(errors="replace") if start > first else ""
        unread = self._buf[max(start, first) :].decode(errors="replace")
        cut = "…" if first else ""
        return (
            f"no {regex.pattern!r} on the console within {timeout:g} s "
            f"(console below, {_MARK} where this expect() started looking):\n"
            f"{cut}{seen}{_MARK}{unread}\n"
            f"--- full console log: {self.log_path}"
        )

    def close(self) -> None:
        self.release()
        self._log.close()
