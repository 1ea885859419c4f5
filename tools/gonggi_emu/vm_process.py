"""One run of the MicroPython VM, its console on a pty that is its controlling terminal.

Being the controlling terminal with ISIG on is what makes a Ctrl-C byte interrupt running code
(the tty sends SIGINT), as the ESP32's UART driver does. ECHO and output processing are off so
the console shows exactly what the VM prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import termios
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["VmProcess"]

_EOF_WAIT_S = 2.0
_MAX_INPUT_BACKLOG = 1 << 16


def _take_terminal() -> None:
    # In the child, after setsid(): make the console pty our controlling terminal. Ctrl-C is
    # ignored until MicroPython installs its own handler (an early one must not kill CPython).
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class VmProcess:
    """A started VM: ``write()`` types on its console, ``on_output`` gets what it prints."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int, on_output: Callable[[bytes], None]) -> None:
        self._proc = proc
        self._master = master
        self._on_output = on_output
        self._loop = asyncio.get_running_loop()
        self._eof = asyncio.Event()
        self._backlog = bytearray()
        self.killed = False
        self._loop.add_reader(master, self._readable)

    @classmethod
    async def start(
        cls, argv: list[str], env: Mapping[str, str], cwd: Path, on_output: Callable[[bytes], None]
    ) -> VmProcess:
        master, slave = os.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.OPOST
        attrs[3] &= ~(termios.ECHO | termios.ECHONL)
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        os.set_blocking(master, False)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=cwd,
                env=dict(env),
                start_new_session=True,
                preexec_fn=_take_terminal,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return cls(proc, master, on_output)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc.returncode is None and not self.killed

    def write(self, data: bytes) -> None:
        if not self.running:
            return
        if not self._backlog:
            try:
                n = os.write(self._master, data)
            except BlockingIOError:
                n = 0
            except OSError:
                return
            data = data[n:]
            if not data:
                return
            self._loop.add_writer(self._master, self._flush)
        self._backlog += data[: _MAX_INPUT_BACKLOG - len(self._backlog)]

    def kill(self) -> None:
        """Stop at once, as a reset or a power cut stops a chip."""
        if self._proc.returncode is None and not self.killed:
            self.killed = True
            self._proc.kill()

    async def wait(self) -> int:
        """Wait for the end of the run and of its output; returns the exit status."""
        code = await self._proc.wait()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_EOF_WAIT_S):
                await self._eof.wait()
        self._close()
        return code

    def _flush(self) -> None:
        try:
            n = os.write(self._master, self._backlog)
        except BlockingIOError:
            return
        except OSError:
            n = len(self._backlog)
        del self._backlog[:n]
        if not self._backlog:
            self._loop.remove_writer(self._master)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError:  # EIO: every slave fd is closed, the VM is gone
            data = b""
        if data:
            self._on_output(data)
            return
        self._loop.remove_reader(self._master)
        self._eof.set()

    def _close(self) -> None:
        self._loop.remove_reader(self._master)
        self._loop.remove_writer(self._master)
        self._backlog.clear()
        with contextlib.suppress(OSError):
            os.close(self._master)
