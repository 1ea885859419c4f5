"""Pseudo-terminals: the ports outsiders open, and the raw ones the VM's UARTs use.

A :class:`PtyPort` behaves like the USB-serial chip of a dev board: its slave path stays the same
for the board's lifetime, anyone may open and close it, and what the board sends while nobody has
it open is lost rather than queued for the next opener.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import termios
import tty
from collections.abc import Callable

__all__ = ["PtyPort", "inq", "open_pty", "set_raw"]

# How often a port nobody has open is checked for an opener (a closed slave makes the master
# report hang-up continuously, so it cannot simply be watched).
_PROBE_S = 0.02
# Output held while the opener is slower than the board; beyond it, output is lost.
_MAX_BACKLOG = 1 << 20


def set_raw(fd: int, *, vmin: int = 1) -> None:
    """Binary-safe: no echo, no signals, no CR/LF translation; reads return after ``vmin`` bytes."""
    tty.setraw(fd)
    attrs = termios.tcgetattr(fd)
    attrs[6][termios.VMIN] = vmin
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def open_pty(*, vmin: int = 1) -> tuple[int, int, str]:
    """A raw pty pair: (master, slave, slave path), the master non-blocking."""
    master, slave = os.openpty()
    set_raw(slave, vmin=vmin)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


def inq(fd: int) -> int:
    """Bytes waiting in the input queue of the tty ``fd``."""
    return int.from_bytes(fcntl.ioctl(fd, termios.TIOCINQ, b"\0\0\0\0"), "little")


class PtyPort:
    """The master side of a pty whose slave path others open; ``on_data`` gets what they write.

    The slave starts raw, as terminal programs and pyserial set it anyway: a cooked slave would
    echo the board's own output back to it as input.
    """

    def __init__(self, on_data: Callable[[bytes], None]) -> None:
        self._on_data = on_data
        self._master, slave, self.path = open_pty()
        os.close(slave)
        self.connected = False
        self._backlog = bytearray()
        self._loop = asyncio.get_running_loop()
        self._probe: asyncio.Handle | None = self._loop.call_soon(self._check)
        self._closed = False

    def write(self, data: bytes) -> None:
        """Send to whoever has the port open; dropped when nobody has."""
        if not self.connected or not data:
            return
        if self._backlog:
            self._backlog += data[: _MAX_BACKLOG - len(self._backlog)]
            return
        try:
            n = os.write(self._master, data)
        except BlockingIOError:
            n = 0
        except OSError:
            self._disconnected()
            return
        if n < len(data):
            self._backlog += data[n:_MAX_BACKLOG]
            self._loop.add_writer(self._master, self._flush)

    def close(self) -> None:
        self._closed = True
        if self._probe is not None:
            self._probe.cancel()
        if self.connected:
            self._loop.remove_reader(self._master)
            self._loop.remove_writer(self._master)
        os.close(self._master)

    def _flush(self) -> None:
        try:
            n = os.write(self._master, self._backlog)
        except BlockingIOError:
            return
        except OSError:
            self._disconnected()
            return
        del self._backlog[:n]
        if not self._backlog:
            self._loop.remove_writer(self._master)

    def _check(self) -> None:
        # Probe a port nobody had open: EIO means still nobody.
        self._probe = None
        if self._closed:
            return
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            data = b""
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            self._probe = self._loop.call_later(_PROBE_S, self._check)
            return
        self.connected = True
        self._loop.add_reader(self._master, self._readable)
        if data:
            self._on_data(data)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError:
            self._disconnected()
            return
        if data:
            self._on_data(data)

    def _disconnected(self) -> None:
        self.connected = False
        self._backlog.clear()
        self._loop.remove_reader(self._master)
        self._loop.remove_writer(self._master)
        if not self._closed:
            self._probe = self._loop.call_later(_PROBE_S, self._check)
