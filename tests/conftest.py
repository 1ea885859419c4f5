"""Fixtures shared by all test folders: running code on the real MicroPython VM."""

from __future__ import annotations

import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from gonggi_emu.vm import FIRMWARE_DIR, HEAP_ESP32_WROOM, vm_command, vm_env

SUPPORT_DIR = Path(__file__).resolve().parent / "firmware" / "support"


@dataclass
class MicroPython:
    """Runs a snippet on the MicroPython VM with firmware/ on its path, in a scratch directory."""

    cwd: Path

    def run(self, code: str, *, heap: str = HEAP_ESP32_WROOM, timeout: float = 120, path: tuple[Path, ...] = ()) -> str:
        script = self.cwd / "_snippet.py"
        script.write_text(textwrap.dedent(code))
        proc = subprocess.run(
            vm_command(str(script), heap=heap),
            cwd=self.cwd,
            env=vm_env([*path, FIRMWARE_DIR, SUPPORT_DIR]),
            capture_output=True,
            timeout=timeout,
        )
        out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
        if proc.returncode != 0:
            raise AssertionError(f"MicroPython exited with {proc.returncode}:\n{out}")
        return out


@pytest.fixture
def mpy(tmp_path: Path) -> MicroPython:
    return MicroPython(tmp_path)
