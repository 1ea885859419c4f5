"""The board connection's errors, as a field tech reads them."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator

import pytest
import serial

from gonggi_tools.node.board import Board, exec_error, check_port, open_error, port_holders
from gonggi_tools.node.errors import BoardError, FlashFull, NoMicroPython, PortBusy, PortNotFound, PortPermission


@pytest.fixture
def silent_port() -> Iterator[str]:
    """A serial device on which nothing answers."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    yield path
    os.close(master)


def test_a_process_holding_the_port_is_named(silent_port: str) -> None:
    with open(silent_port, "rb") as held:
        proc = subprocess.Popen(["sleep", "30"], stdin=held)
    try:
        holders = port_holders(silent_port)
        assert holders == [f"pid {proc.pid} (sleep 30)"]
        with pytest.raises(PortBusy, match=rf"port {silent_port} is open in another program: pid {proc.pid} \(sleep 30\)"):
            check_port(silent_port)
    finally:
        proc.kill()
        proc.wait()
    check_port(silent_port)


def test_a_missing_port_is_not_found() -> None:
    with pytest.raises(PortNotFound, match="no data port /dev/ttyUSB-absent"):
        check_port("/dev/ttyUSB-absent", "data port")


@pytest.mark.parametrize(("exc", "kind", "message"), [
    (serial.SerialException(errno.EACCES, "could not open port: Permission denied"), PortPermission,
     "no permission to open port /dev/ttyUSB0"),
    (serial.SerialException(errno.EAGAIN, "Could not exclusively lock port /dev/ttyUSB0"), PortBusy,
     "port /dev/ttyUSB0 is in use by another program"),
    (serial.SerialException(errno.EBUSY, "Device or resource busy"), PortBusy, "port /dev/ttyUSB0 is in use"),
])
def test_an_open_that_fails_says_why(exc: Exception, kind: type, message: str) -> None:
    error = open_error("/dev/ttyUSB0", exc)
    assert isinstance(error, kind) and error.message.startswith(message)
    assert "dialout" in PortPermission("x").hint


def test_no_answer_from_the_repl_means_no_micropython(silent_port: str) -> None:
    with pytest.raises(NoMicroPython) as err:
        Board(silent_port, timeout=0.3).open()
    assert err.value.message.startswith(f"no MicroPython REPL answered on {silent_port} within 0.3 s")
    assert "esptool" in err.value.hint


@pytest.mark.parametrize("traceback", [
    "Traceback (most recent call last):\n  File \"<stdin>\", line 3, in <module>\nOSError: [Errno 28] ENOSPC\n",
    "Traceback (most recent call last):\nOSError: 28\n",
])
def test_a_full_flash_on_the_board_is_flash_full(traceback: str) -> None:
    assert isinstance(exec_error(traceback, "writing node.mpy"), FlashFull)


def test_another_board_error_carries_its_last_line() -> None:
    error = exec_error("Traceback (most recent call last):\nImportError: no module named 'status'\n", "reading")
    assert isinstance(error, BoardError) and not isinstance(error, FlashFull)
    assert error.message == "the board failed while reading: ImportError: no module named 'status'"
