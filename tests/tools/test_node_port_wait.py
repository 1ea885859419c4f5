"""Waiting for a native USB port to come back after a reset, on a fake clock: the errors that mean
"the port went away", and the wait that polls for the path, opens it, or gives up naming it."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

import pytest
import serial

from gonggi_tools.node.errors import PortVanished
from gonggi_tools.node.port_wait import port_vanished, wait_for_port

PORT = "/dev/serial/by-id/usb-MicroPython_Board_in_FS_mode_a4cf12345678-if00"


@dataclass
class FakeUsb:
    """A device path that appears after ``appears_after`` polls and opens after ``opens_after`` more
    failed opens (udev still setting its group); time passes only in ``sleep``."""

    appears_after: int
    opens_after: int = 0
    now: float = 100.0
    polls: int = 0
    opens: list[str] = field(default_factory=list)

    def exists(self, path: str) -> bool:
        assert path == PORT
        self.polls += 1
        return self.polls > self.appears_after

    def open(self, path: str) -> str:
        self.opens.append(path)
        if len(self.opens) <= self.opens_after:
            raise serial.SerialException(errno.EACCES, f"could not open port {path}: Permission denied")
        return f"open {path}"

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


def wait(usb: FakeUsb, timeout: float) -> str:
    return wait_for_port(PORT, usb.open, timeout, exists=usb.exists, clock=usb.clock, sleep=usb.sleep, poll_s=0.25)


def test_the_port_is_opened_as_soon_as_it_is_back() -> None:
    usb = FakeUsb(appears_after=7)
    assert wait(usb, timeout=5.0) == f"open {PORT}"
    assert usb.opens == [PORT]  # never tried while the path was missing
    assert usb.now == 101.75  # seven polls, a quarter of a second apart


def test_a_port_that_exists_but_does_not_open_yet_is_tried_again() -> None:
    usb = FakeUsb(appears_after=2, opens_after=3)
    assert wait(usb, timeout=5.0) == f"open {PORT}"
    assert len(usb.opens) == 4


def test_a_port_that_stays_away_is_named_after_the_deadline() -> None:
    usb = FakeUsb(appears_after=1000)
    with pytest.raises(PortVanished) as err:
        wait(usb, timeout=2.0)
    assert err.value.message == f"the board's port {PORT} went away at the reset and did not come back within 2 s"
    assert usb.now == 102.0 and usb.opens == []
    assert "`ls /dev/ttyACM*`" in err.value.hint and "boot mode" in err.value.hint and "cable" in err.value.hint


def test_a_port_that_is_back_but_never_opens_says_why() -> None:
    usb = FakeUsb(appears_after=0, opens_after=1000)
    with pytest.raises(PortVanished, match=r"within 1 s \(it exists but does not open: .*Permission denied\)"):
        wait(usb, timeout=1.0)


def test_an_open_error_that_is_not_listed_is_not_swallowed() -> None:
    def broken(path: str) -> str:
        raise ValueError("not a port")

    usb = FakeUsb(appears_after=0)
    with pytest.raises(ValueError, match="not a port"):
        wait_for_port(PORT, broken, 1.0, exists=usb.exists, clock=usb.clock, sleep=usb.sleep)


def _pyserial_read_failure(code: int) -> serial.SerialException:
    # As pyserial raises it: inside the handler of the OS error, without an errno of its own.
    try:
        try:
            raise OSError(code, os.strerror(code))
        except OSError as e:
            raise serial.SerialException(f"read failed: {e}")
    except serial.SerialException as exc:
        return exc


@pytest.mark.parametrize("exc", [
    serial.SerialException("device reports readiness to read but returned no data "
                           "(device disconnected or multiple access on port?)"),
    _pyserial_read_failure(errno.EIO),
    OSError(errno.EIO, "Input/output error"),  # in_waiting's ioctl on a hung-up tty
    OSError(errno.ENXIO, "No such device or address"),
    OSError(errno.ENODEV, "No such device"),
], ids=["no data", "read failed EIO", "EIO", "ENXIO", "ENODEV"])
def test_what_a_vanished_port_raises_is_recognised(exc: BaseException) -> None:
    assert port_vanished(exc)


@pytest.mark.parametrize("exc", [
    serial.SerialException("write timeout"),
    _pyserial_read_failure(errno.EBADF),
    OSError(errno.ENOSPC, "No space left on device"),
], ids=["write timeout", "EBADF", "ENOSPC"])
def test_other_errors_are_not_taken_for_a_vanished_port(exc: BaseException) -> None:
    assert not port_vanished(exc)
