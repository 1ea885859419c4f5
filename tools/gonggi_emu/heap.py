"""The VM heap that leaves the firmware what an ESP32 leaves it.

On the ESP32 ``machine`` and ``bluetooth`` are compiled into the firmware and cost no heap; on the
emulated board they are Python loaded at boot (``board/_boot.py``) and cost tens of KB. So the heap is enlarged by
what the board support measurably takes: boot.py then finds the same free heap as a script on a
bare VM with ``HEAP_ESP32_WROOM``, and a firmware that runs out of memory here would on the chip.
Measured once per process and heap size (two short VM runs).
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path

from gonggi_emu.board_image import BOOT_SCRIPT, board_image
from gonggi_emu.vm import HEAP_ESP32_WROOM, vm_command, vm_env

__all__ = ["board_heap", "heap_bytes"]

_FREE = re.compile(rb"heap free (\d+)")
_ROOMY = "2M"
_cache: dict[str, str] = {}


def heap_bytes(heap: str) -> int:
    """``-X heapsize`` text ("110K", "1M", "65536") in bytes."""
    match = re.fullmatch(r"(\d+)([KM]?)", heap.strip().upper())
    if match is None:
        raise ValueError(f"heap size {heap!r}: expected a number of bytes with an optional K or M")
    return int(match[1]) * {"": 1, "K": 1024, "M": 1024 * 1024}[match[2]]


async def _free_heap(args: list[str], heap: str, env: dict[str, str], cwd: Path) -> int:
    proc = await asyncio.create_subprocess_exec(
        *vm_command(*args, heap=heap),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    match = _FREE.search(out)
    if match is None:
        raise RuntimeError(f"measuring the board support's heap failed: {out.decode(errors='replace')}")
    return int(match[1])


async def board_heap(heap: str = HEAP_ESP32_WROOM) -> str:
    """The ``-X heapsize`` for an emulated board that should leave ``heap`` to the firmware."""
    if heap not in _cache:
        image = await board_image()
        with tempfile.TemporaryDirectory(prefix="gonggi-heap-") as flash:
            env = vm_env([image], GONGGI_FLASH=flash, GONGGI_BOARD=str(image), GONGGI_CALIBRATE="1")
            # Measured on a roomy heap: loading the sources needs more than they keep.
            bare_script = "import gc; gc.collect(); print('heap free', gc.mem_free())"
            bare = await _free_heap(["-c", bare_script], _ROOMY, env, image)
            booted = await _free_heap([BOOT_SCRIPT], _ROOMY, env, image)
        extra = max(0, bare - booted)
        total = heap_bytes(heap) + extra
        _cache[heap] = str(-(-total // 1024) * 1024)
    return _cache[heap]
