"""A board at the end of a serial port, reached through mpremote's ``SerialTransport``.

mpremote calls its transport a library API that is still settling, so everything gonggi uses of
it passes through here: open the port exclusively, enter the raw REPL *without* a soft reset
(Ctrl-C stops the node; nothing restarts it behind our back), run code, write a file, close.
Its exceptions become the field tools' errors (:mod:`gonggi_tools.node.errors`) here, once.
A board with native USB loses its port at a reset; reading the console afterwards waits for it
to come back (:mod:`gonggi_tools.node.port_wait`).
"""

from __future__ import annotations

import ast
import contextlib
import errno
import io
import os
import re
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import serial
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from gonggi_tools.node.errors import (
    BoardError,
    BoardLost,
    FlashFull,
    NoMicroPython,
    NodeToolError,
    PortBusy,
    PortNotFound,
    PortPermission,
)
from gonggi_tools.node.port_wait import PORT_WAIT_S, port_vanished, wait_for_port

__all__ = ["BAUDRATE", "Board", "BoardInfo", "check_port", "exec_error", "open_error", "port_holders"]

BAUDRATE = 115200
# A pyserial read returns after this long without data, so mpremote's own timeouts can act.
_READ_TIMEOUT_S = 1.0
_LOST_ERRNOS = frozenset({errno.EIO, errno.ENXIO, errno.ENODEV, errno.EBADF, errno.EPIPE})

# Board identity in one round trip: MicroPython version and .mpy ABI, platform, MAC-derived id,
# flash and RAM. Runs on any MicroPython, with or without gonggi on it.
_PROBE = """\
import sys, os, gc, machine
from binascii import hexlify
_i = sys.implementation
_s = os.statvfs('/')
gc.collect()
print(repr((tuple(_i.version[:3]), getattr(_i, '_mpy', 0), sys.platform, getattr(_i, '_machine', ''),
 hexlify(machine.unique_id()).decode(), _s[0], _s[0] * _s[2], _s[0] * _s[4], gc.mem_free())))
"""

# SHA-256 of files on the board, computed there (hardware-accelerated on the ESP32): only 64 hex
# digits per file cross the cable. None for a file that does not exist.
_HASH_HELPER = """\
import hashlib
from binascii import hexlify
def _gg_hash(p, _b=bytearray(256)):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    h = hashlib.sha256()
    mv = memoryview(_b)
    while True:
        n = f.readinto(_b)
        if not n:
            break
        h.update(mv[:n])
    f.close()
    return hexlify(h.digest()).decode()
"""

# Renames over an existing file (atomic on littlefs; FAT refuses, so there the old one goes
# first), removal that tolerates absence, mkdir -p, rm -r.
_FS_HELPER = """\
import os
def _gg_mv(src, dst):
    try:
        os.rename(src, dst)
    except OSError:
        os.remove(dst)
        os.rename(src, dst)
def _gg_rm(p):
    try:
        os.remove(p)
    except OSError:
        pass
def _gg_mkdirs(p):
    d = ''
    for part in p.split('/'):
        d = d + '/' + part if d else part
        try:
            os.mkdir(d)
        except OSError:
            pass
def _gg_rmtree(p):
    try:
        entries = list(os.ilistdir(p))
    except OSError:
        return
    for e in entries:
        q = p + '/' + e[0]
        if e[1] == 0x4000:
            _gg_rmtree(q)
        else:
            os.remove(q)
    os.rmdir(p)
"""


@dataclass(frozen=True)
class BoardInfo:
    version: tuple[int, int, int]
    mpy: int  # sys.implementation._mpy: .mpy version, sub-version and native architecture
    platform: str
    machine: str
    uid: str  # machine.unique_id() in hex: the ESP32's MAC
    flash_block: int
    flash_total: int
    flash_free: int
    mem_free: int

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


def port_holders(port: str) -> list[str]:
    """Other processes that have ``port`` open, as "pid 123 (screen /dev/ttyUSB0)" (Linux /proc)."""
    target = os.path.realpath(port)
    found = []
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            held = any(os.readlink(fd) == target for fd in (entry / "fd").iterdir())
            if held:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                found.append(f"pid {entry.name} ({cmd[:60]})")
        except OSError:
            continue  # gone meanwhile, or another user's
    return found


def check_port(port: str, what: str = "port") -> None:
    """Raise PortNotFound or PortBusy before opening ``port`` (a device path or a pyserial URL)."""
    if "://" in port:
        return
    if not os.path.exists(port):
        from gonggi_tools.node.listing import attached_ports

        seen = ", ".join(attached_ports()) or "none"
        raise PortNotFound(f"no {what} {port} (boards attached: {seen})")
    holders = port_holders(port)
    if holders:
        raise PortBusy(f"{what} {port} is open in another program: {'; '.join(holders)}")


def open_error(port: str, exc: BaseException, what: str = "port") -> NodeToolError:
    """The field tools' error for a failed open of ``port``."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code == errno.EACCES or "Permission denied" in text:
        return PortPermission(f"no permission to open {what} {port}")
    if code in (errno.EBUSY, errno.EAGAIN) or "lock" in text:
        return PortBusy(f"{what} {port} is in use by another program ({text})")
    if code == errno.ENOENT:
        return PortNotFound(f"no {what} {port}")
    return NodeToolError(f"cannot open {what} {port}: {text}")


class Board:
    """The board on ``port`` at its raw REPL, with the node (if any) stopped: ``with Board(p) as b:``."""

    def __init__(self, port: str, *, timeout: float = 5.0, port_wait: float = PORT_WAIT_S) -> None:
        """``timeout``: for the REPL to answer; ``port_wait``: for a native USB port to come back after a reset."""
        self.port = port
        self.timeout = timeout
        self.port_wait = port_wait
        self._t: SerialTransport | None = None
        self._hash_ready = False
        self._fs_ready = False

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- connection ------------------------------------------------------------------------

    def open(self) -> None:
        check_port(self.port)
        try:
            self._t = self._connect(self.port)
        except TransportError:
            # mpremote swallows the reason; ask pyserial for it.
            try:
                serial.Serial(self.port, exclusive=True).close()
            except (serial.SerialException, OSError) as exc:
                raise open_error(self.port, exc) from None
            raise NodeToolError(f"cannot open port {self.port}") from None
        try:
            # mpremote prints what it got back when it gives up: not for the field tech's screen.
            with contextlib.redirect_stdout(io.StringIO()):
                self._t.enter_raw_repl(soft_reset=False, timeout_overall=self.timeout)
        except TransportError:
            self.close()
            raise NoMicroPython(f"no MicroPython REPL answered on {self.port} within {self.timeout:g} s") from None
        except OSError as exc:  # serial.SerialException included
            self.close()
            raise BoardLost(f"lost the board on {self.port} while connecting ({exc})") from None

    @staticmethod
    def _connect(port: str) -> SerialTransport:
        return SerialTransport(port, baudrate=BAUDRATE, exclusive=True, timeout=_READ_TIMEOUT_S)

    def close(self) -> None:
        if self._t is not None:
            t, self._t = self._t, None
            with contextlib.suppress(OSError, serial.SerialException):
                t.close()  # after a pulled cable, even resetting RTS fails

    @property
    def transport(self) -> SerialTransport:
        if self._t is None:
            raise BoardLost(f"the connection to {self.port} is closed")
        return self._t

    @contextlib.contextmanager
    def _talking(self, what: str) -> Iterator[None]:
        """Translate what mpremote and pyserial raise into the field tools' errors."""
        try:
            yield
        except TransportExecError as exc:
            raise exec_error(exc.error_output, what) from None
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise FlashFull(f"the board's flash is full (while {what})") from None
            if isinstance(exc, serial.SerialException) or exc.errno in _LOST_ERRNOS:
                raise BoardLost(f"lost the board on {self.port} while {what} ({exc})") from None
            raise BoardError(f"the board failed while {what}: {exc}") from None
        except (TransportError, struct.error) as exc:
            raise BoardLost(f"the board on {self.port} stopped answering while {what} ({exc})") from None

    # -- running code ------------------------------------------------------------------------

    def exec(self, code: str, what: str = "running a command") -> str:
        with self._talking(what):
            return self.transport.exec(code).decode(errors="replace")

    def eval(self, code: str, what: str = "running a command") -> Any:
        """Run ``code``, whose last line prints a Python literal; return that literal."""
        out = self.exec(code, what).strip().splitlines()
        try:
            return ast.literal_eval(out[-1])
        except (IndexError, ValueError, SyntaxError) as exc:
            raise BoardError(f"unexpected answer from the board while {what}: {out[-3:]!r}") from exc

    def probe(self) -> BoardInfo:
        version, mpy, platform, machine, uid, block, total, free, mem = self.eval(_PROBE, "reading the board")
        return BoardInfo(tuple(version), mpy, platform, machine, uid, block, total, free, mem)

    # -- files -------------------------------------------------------------------------------

    def write_file(self, path: str, data: bytes, progress: Callable[[int], None] | None = None) -> None:
        """Write ``data`` to ``path`` in chunks; ``progress(n)`` after each chunk of n bytes."""
        done = 0

        def advance(written: int, total: int) -> None:
            nonlocal done
            if progress is not None:
                progress(written - done)
            done = written

        with self._talking(f"writing {path}"):
            self.transport.fs_writefile(path, data, progress_callback=advance)

    def _fs(self, call: str, what: str) -> None:
        if not self._fs_ready:
            self.exec(_FS_HELPER, "preparing the board")
            self._fs_ready = True
        self.exec(call, what)

    def move(self, src: str, dst: str) -> None:
        """Rename ``src`` over ``dst`` (atomically where the filesystem can)."""
        self._fs(f"_gg_mv({src!r}, {dst!r})", f"moving {src} to {dst}")

    def remove(self, path: str) -> None:
        """Remove ``path`` if it exists."""
        self._fs(f"_gg_rm({path!r})", f"removing {path}")

    def makedirs(self, path: str) -> None:
        self._fs(f"_gg_mkdirs({path!r})", f"creating {path}")

    def rmtree(self, path: str) -> None:
        self._fs(f"_gg_rmtree({path!r})", f"removing {path}")

    def replace_file(self, path: str, data: bytes) -> None:
        """Write ``path`` so that a cut leaves the old file or the new one, never half of one."""
        self.write_file(path + ".new", data)
        self.move(path + ".new", path)

    def read_text(self, path: str) -> str | None:
        """The text of ``path`` on the board, or None if there is no such file."""
        code = (f"try:\n f = open({path!r})\nexcept OSError:\n print('None')\n"
                f"else:\n print(repr(f.read()))\n f.close()")
        value = self.eval(code, f"reading {path}")
        return value if isinstance(value, str) else None

    def hashes(self, paths: Iterable[str]) -> dict[str, str | None]:
        """SHA-256 (hex) of each file on the board, None where there is none."""
        paths = list(paths)
        if not paths:
            return {}
        if not self._hash_ready:
            self.exec(_HASH_HELPER, "preparing to hash files")
            self._hash_ready = True
        out = self.exec(f"for _p in {paths!r}:\n print(_gg_hash(_p))", "hashing files on the board").split()
        if len(out) != len(paths):
            raise BoardError(f"unexpected answer from the board while hashing files: {out[-3:]!r}")
        return {p: (None if h == "None" else h) for p, h in zip(paths, out)}

    # -- restarting --------------------------------------------------------------------------

    def reset(self) -> None:
        """Hard-reset the board (``machine.reset()``); the port stays open to read its console
        (a native USB port vanishes meanwhile: :meth:`console_expect` follows it)."""
        with self._talking("resetting the board"):
            # As mpremote's own `reset`: the pause lets the REPL's answer cross the cable before a
            # native USB port vanishes with the chip (it would be lost, and the reset look failed).
            self.transport.exec_raw_no_follow("import time, machine\ntime.sleep_ms(100)\nmachine.reset()")
            self.transport.in_raw_repl = False
        self._hash_ready = self._fs_ready = False  # the helpers went with the reset

    def restart_node(self) -> None:
        """Leave the raw REPL and soft-reset from the friendly one, which runs main.py again."""
        with self._talking("restarting the node"):
            t = self.transport
            t.exit_raw_repl()
            t.read_until(1, b">>> ", timeout=self.timeout)
            t.serial.write(b"\x04")

    def console_expect(self, regex: re.Pattern[bytes], timeout: float,
                       on_reenumerated: Callable[[], None] | None = None) -> tuple[re.Match[bytes] | None, bytes]:
        """Read the console until ``regex`` matches: (the match or None after ``timeout`` s, what was read).

        If the port vanishes meanwhile (a native USB board after its reset), wait up to
        ``port_wait`` s for it to come back, open it again and read on; ``on_reenumerated()``
        is called the first time. PortVanished if it does not come back.
        """
        seen = bytearray()
        deadline = time.monotonic() + timeout
        reenumerated = False
        with self._talking("waiting for the node to start"):
            while time.monotonic() < deadline:
                try:
                    port = self.transport.serial
                    seen += port.read(max(1, port.in_waiting))
                except OSError as exc:  # serial.SerialException included
                    if not port_vanished(exc):
                        raise
                    self._come_back()
                    if not reenumerated and on_reenumerated is not None:
                        on_reenumerated()
                    reenumerated = True
                    continue
                match = regex.search(seen)
                if match is not None:
                    return match, bytes(seen)
        return None, bytes(seen)

    def _come_back(self) -> None:
        # Let go of the dead port first: while it is held open, the kernel keeps its ttyACM number
        # and the board comes back as the next one (ttyACM1).
        self.close()
        self._t = wait_for_port(self.port, self._connect, self.port_wait, errors=(OSError, TransportError))


def exec_error(output: str, what: str) -> NodeToolError:
    """The field tools' error for a traceback from code run on the board."""
    if "ENOSPC" in output or "Errno 28" in output or re.search(r"OSError: 28\b", output):
        return FlashFull(f"the board's flash is full (while {what})")
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return BoardError(f"the board failed while {what}: {lines[-1] if lines else 'no error text'}")
