"""Pseudo-terminals: the ports outsiders open, and the raw ones the VM's UARTs use.

A :class:`PtyPort` behaves like the USB-serial chip of a dev board: its slave path stays the same
for the board's lifetime, anyone may open and close it, and what the board sends while nobody has
it open is lost rather than queued for the next opener.

A board with native USB (ESP32-S2/S3/C3/C6) is different: its port is a USB device of the chip's
own, which vanishes at every chip reset and comes back as a new one. Each of its enumerations is
a new :class:`PtyPort` published under the same ``link`` (as udev recreates ``/dev/ttyACM0`` and
its ``/dev/serial/by-id/`` link). Such a port holds the latest output (``hold`` bytes) for the
next opener, as MicroPython's USB CDC keeps writing into its TX FIFO while no host has it open.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import termios
import tty
from collections.abc import Callable
from pathlib import Path

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

    def __init__(self, on_data: Callable[[bytes], None], *, link: Path | None = None, hold: int = 0) -> None:
        """``link``: a symlink to the pty, the path others open (removed by :meth:`close`);
        ``hold``: bytes of the latest output kept while nobody has the port open, for the next opener."""
        self._on_data = on_data
        self._master, slave, device = open_pty()
        os.close(slave)
        self._link = link
        self.path = device if link is None else str(link)
        if link is not None:
            tmp = link.with_name(link.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(device)
            tmp.replace(link)  # appears whole: an opener never sees a half-made link
        self.connected = False
        self._backlog = bytearray()
        self._hold = hold
        self._held = bytearray()
        self._loop = asyncio.get_running_loop()
        self._probe: asyncio.Handle | None = self._loop.call_soon(self._check)
        self._closed = False

    def write(self, data: bytes) -> None:
        """Send to whoever has the port open; dropped (or held, see ``hold``) when nobody has."""
        if not data:
            return
        if not self.connected:
            if self._hold and not self._closed:
                self._held += data
                del self._held[: -self._hold]
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

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Take the port away: whoever has it open gets hang-up and EIO, as from a pulled device."""
        if self._closed:
            return
        self._closed = True
        if self._probe is not None:
            self._probe.cancel()
        if self.connected:
            self.connected = False
            self._loop.remove_reader(self._master)
            self._loop.remove_writer(self._master)
        if self._link is not None:
            with contextlib.suppress(FileNotFoundError):
                self._link.unlink()
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
        if self._held:
            held = bytes(self._held)
            self._held.clear()
            self.write(held)
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
