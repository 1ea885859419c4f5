"""A board whose port goes away at a reset and comes back: the ESP32-S2/S3/C3/C6 on their own USB.

A USB-serial bridge (CP210x, CH340: ``/dev/ttyUSB0``) is powered by the cable, so its port stays
while the chip resets. A chip with native USB (USB-CDC or USB-Serial-JTAG: ``/dev/ttyACM0``)
*is* the USB device: at a reset it leaves the bus, the open port starts failing (EIO, or pyserial's
"device reports readiness to read but returned no data"), and a moment later the chip enumerates
again and udev makes the device node (and its ``/dev/serial/by-id/`` link) anew.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from typing import TypeVar

from gonggi_tools.node.errors import PortVanished

__all__ = ["PORT_WAIT_S", "port_vanished", "wait_for_port"]

PORT_WAIT_S = 10.0  # a board re-enumerates in about a second; a slow hub or udev rule takes longer
_POLL_S = 0.05
_VANISHED_ERRNOS = frozenset({errno.EIO, errno.ENXIO, errno.ENODEV})
# What pyserial raises when select() says readable (a hang-up) and read() returns nothing.
_NO_DATA = "device reports readiness to read but returned no data"

T = TypeVar("T")


def port_vanished(exc: BaseException) -> bool:
    """Whether ``exc`` is what reading a port whose USB device went away raises.

    pyserial wraps the OS error of a failed read ("read failed: [Errno 5] ...") in a
    SerialException without an errno; the OSError stays in the exception's context.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, "errno", None) in _VANISHED_ERRNOS or _NO_DATA in str(seen):
            return True
        seen = seen.__context__
    return False


def wait_for_port(
    port: str,
    open_port: Callable[[str], T],
    timeout: float,
    *,
    errors: tuple[type[BaseException], ...] = (OSError,),
    exists: Callable[[str], bool] = os.path.exists,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll_s: float = _POLL_S,
) -> T:
    """``open_port(port)`` as soon as ``port`` exists again and opens without one of ``errors``.

    A new device node can exist a moment before it opens (udev still setting its group, the
    driver still starting), so a failed open is tried again too. After ``timeout`` seconds:
    :class:`PortVanished`, naming the port and the last reason it did not open.
    """
    deadline = clock() + timeout
    last: BaseException | None = None
    while True:
        if exists(port):  # follows a by-id symlink to its device: False while that is gone
            try:
                return open_port(port)
            except errors as exc:
                last = exc
        if clock() >= deadline:
            why = f" (it exists but does not open: {last})" if last is not None and exists(port) else ""
            raise PortVanished(f"the board's port {port} went away at the reset and did not come back "
                               f"within {timeout:g} s{why}")
        sleep(poll_s)
