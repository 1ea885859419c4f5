"""How new firmware gets onto a board so that a pulled cable never leaves it booting a mix.

1. **Plan**: the board hashes its files (SHA-256, on the board) and the tool compares them with
   the new image's manifest. Only files that differ are copied; files already waiting in the
   staging directory from an interrupted run, with the right hash, are not copied again.
2. **Stage**: each changed file is written to ``/.gonggi-staging/<path>`` and its hash checked
   on the board. The running firmware is untouched: a cut here leaves the old firmware whole.
3. **Switch**: the marker ``/gonggi.update`` is renamed into place (written in full first), then
   every staged file is renamed over its live copy, ``main.py`` first and the manifest
   ``gonggi.json`` last, then files the new firmware no longer has are removed, then the marker.
   Each rename is atomic on littlefs. While the marker exists, ``main.py`` does not start the
   node (firmware/main.py), so a cut here leaves a board at its REPL, waiting for a re-run.
4. **Verify**: the board hashes every live file again against the manifest.

A re-run after a cut resumes: the plan sees what is already staged or switched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from gonggi_tools.firmware_image import MANIFEST, FirmwareImage
from gonggi_tools.node.board import Board, BoardInfo
from gonggi_tools.node.errors import BoardError, FlashFull
from gonggi_tools.node.ui import size

__all__ = ["MARKER", "STAGING", "Plan", "check_space", "image_files", "make_plan", "read_plan", "stage", "switch", "verify"]

STAGING = ".gonggi-staging"
MARKER = "gonggi.update"
_FIRST = "main.py"  # switched first: from then on, the new main.py guards the boot


@dataclass(frozen=True)
class Plan:
    files: Mapping[str, bytes]  # every file of the new firmware, manifest included: path -> content
    copy: tuple[str, ...]  # to write into the staging directory
    move: tuple[str, ...]  # to switch into place, in order
    delete: tuple[str, ...]  # live files of the old firmware that the new one does not have
    resumed: tuple[str, ...]  # staged by an earlier, interrupted run, and correct
    interrupted: bool  # a switch was cut off: the board does not start the node until it is done

    @property
    def up_to_date(self) -> bool:
        return not (self.move or self.delete or self.interrupted)

    @property
    def copy_bytes(self) -> int:
        return sum(len(self.files[p]) for p in self.copy)

    def space_needed(self, block: int) -> int:
        """Flash the staged copies take next to the live files: whole blocks per file (littlefs
        keeps small files inline, so this errs on the safe side), and a few for the staging
        directories' metadata and the marker."""
        return (sum(-(-len(self.files[p]) // block) for p in self.copy) + 4) * block


def image_files(image: FirmwareImage) -> dict[str, bytes]:
    files = {path: (image.root / path).read_bytes() for path in image.files}
    files[MANIFEST] = (image.root / MANIFEST).read_bytes()
    return files


def make_plan(files: Mapping[str, bytes], live: Mapping[str, str | None], staged: Mapping[str, str | None],
              old_manifest: str | None, marker: str | None) -> Plan:
    """The plan from what the board reported: hashes of the live and staged copies of ``files``,
    its current manifest and its update marker (their text, None when absent)."""
    want = {p: hashlib.sha256(data).hexdigest() for p, data in files.items()}
    move = [p for p in want if live.get(p) != want[p]]
    copy = [p for p in move if staged.get(p) != want[p]]
    resumed = [p for p in move if p not in copy]
    move.sort(key=lambda p: (p != _FIRST, p == MANIFEST, p))
    old: set[str] = set()
    for text, key in ((old_manifest, "files"), (marker, "delete")):
        old |= set(_json_field(text, key))
    delete = sorted(old - set(want) - {MANIFEST})
    return Plan(dict(files), tuple(sorted(copy)), tuple(move), tuple(delete), tuple(sorted(resumed)), marker is not None)


def _json_field(text: str | None, key: str) -> Iterable[str]:
    if text is None:
        return ()
    try:
        value = json.loads(text).get(key, ())
    except (ValueError, AttributeError):
        return ()  # a damaged manifest or marker: its files are overwritten anyway
    return [p for p in value if isinstance(p, str)]


def read_plan(board: Board, files: Mapping[str, bytes]) -> Plan:
    """Ask the board what it has and plan the update."""
    paths = list(files)
    live = board.hashes(paths)
    staged = board.hashes(f"{STAGING}/{p}" for p in paths)
    return make_plan(files, live, {p: staged[f"{STAGING}/{p}"] for p in paths},
                     board.read_text(MANIFEST), board.read_text(MARKER))


def check_space(plan: Plan, info: BoardInfo) -> None:
    need = plan.space_needed(info.flash_block)
    if need > info.flash_free:
        raise FlashFull(
            f"not enough flash: the {len(plan.copy)} changed files need {size(need)}, "
            f"the board has {size(info.flash_free)} free of {size(info.flash_total)}"
        )


def stage(board: Board, plan: Plan, progress: Callable[[int], None]) -> None:
    """Write and verify each file to copy in the staging directory; the live firmware is untouched."""
    for d in sorted({str(PurePosixPath(STAGING, p).parent) for p in plan.copy}):
        board.makedirs(d)
    for path in plan.copy:
        target = f"{STAGING}/{path}"
        board.write_file(target, plan.files[path], progress)
        want = hashlib.sha256(plan.files[path]).hexdigest()
        got = board.hashes([target])[target]
        if got != want:
            raise BoardError(f"{path} did not verify after copying (board hash {got}, expected {want[:16]}…)",
                             hint="run the same command again; if it fails again, the board's flash may be worn")


def switch(board: Board, plan: Plan, version: str) -> None:
    """Move the staged files into place behind the update marker, then drop the marker."""
    marker = json.dumps({"version": version, "delete": list(plan.delete)}).encode()
    board.makedirs(STAGING)
    board.write_file(f"{STAGING}/{MARKER}", marker)
    board.move(f"{STAGING}/{MARKER}", MARKER)
    for d in sorted({str(PurePosixPath(p).parent) for p in plan.move} - {"."}):
        board.makedirs(d)
    for path in plan.move:
        board.move(f"{STAGING}/{path}", path)
    for path in plan.delete:
        board.remove(path)
    board.remove(MARKER)
    board.rmtree(STAGING)


def verify(board: Board, files: Mapping[str, bytes]) -> None:
    """Every file of the firmware, hashed on the board, against the manifest."""
    got = board.hashes(files)
    bad = sorted(p for p, data in files.items() if got[p] != hashlib.sha256(data).hexdigest())
    if bad:
        raise BoardError(f"after the update, {len(bad)} file(s) differ from the manifest: {', '.join(bad[:5])}",
                         hint="run the same command again")
