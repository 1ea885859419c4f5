"""The update plan: copy only what differs, resume what an interrupted run staged, switch
``main.py`` first and the manifest last, remove what the new firmware dropped."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from gonggi_tools.firmware_image import MANIFEST
from gonggi_tools.node.update import make_plan

FILES = {
    "main.py": b"main",
    "node.mpy": b"node" * 100,
    "drivers/bme280.mpy": b"bme",
    "status.mpy": b"status",
    MANIFEST: b'{"files": {}}',
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def on_board(changes: Mapping[str, bytes] | None = None) -> dict[str, str | None]:
    """Hashes of a board that has FILES, except ``changes``."""
    return {p: sha(data) for p, data in {**FILES, **(changes or {})}.items()}


NOTHING = dict.fromkeys(FILES)


def test_a_fresh_board_gets_every_file_main_py_first_and_the_manifest_last() -> None:
    plan = make_plan(FILES, NOTHING, NOTHING, None, None)
    assert plan.copy == tuple(sorted(FILES))
    assert plan.move == ("main.py", "drivers/bme280.mpy", "node.mpy", "status.mpy", MANIFEST)
    assert plan.delete == () and plan.resumed == () and not plan.interrupted
    assert plan.copy_bytes == sum(map(len, FILES.values()))


def test_a_board_with_this_firmware_is_up_to_date() -> None:
    plan = make_plan(FILES, on_board(), NOTHING, json.dumps({"files": {"node.mpy": "x"}}), None)
    assert plan.up_to_date and plan.copy == () and plan.move == ()


def test_only_the_changed_files_are_copied() -> None:
    plan = make_plan(FILES, on_board({"node.mpy": b"old node", MANIFEST: b"old"}), NOTHING, None, None)
    assert plan.copy == ("gonggi.json", "node.mpy")
    assert plan.move == ("node.mpy", MANIFEST)


def test_files_staged_by_an_interrupted_run_are_not_copied_again() -> None:
    live = on_board({"node.mpy": b"old", "status.mpy": b"old", "main.py": b"old"})
    staged = {**NOTHING, "node.mpy": sha(FILES["node.mpy"]), "status.mpy": sha(b"half a file")}
    plan = make_plan(FILES, live, staged, None, None)
    assert plan.resumed == ("node.mpy",)
    assert plan.copy == ("main.py", "status.mpy")
    assert plan.move == ("main.py", "node.mpy", "status.mpy")


def test_an_interrupted_switch_is_finished_even_when_every_file_is_in_place() -> None:
    marker = json.dumps({"version": "abc", "delete": ["noise/old.mpy"]})
    plan = make_plan(FILES, on_board(), NOTHING, None, marker)
    assert plan.interrupted and not plan.up_to_date
    assert plan.move == () and plan.delete == ("noise/old.mpy",)


def test_files_the_new_firmware_dropped_are_removed_but_never_the_nodes_own() -> None:
    old = json.dumps({"files": {"node.mpy": "x", "legacy.mpy": "y", "drivers/old.mpy": "z"}})
    plan = make_plan(FILES, on_board(), NOTHING, old, None)
    assert plan.delete == ("drivers/old.mpy", "legacy.mpy")  # config.json, ring.bin: never in a manifest


def test_a_damaged_manifest_or_marker_does_not_stop_an_update() -> None:
    plan = make_plan(FILES, NOTHING, NOTHING, "{not json", "[]")
    assert plan.delete == () and plan.interrupted and len(plan.copy) == len(FILES)


def test_space_needed_counts_whole_blocks_per_file() -> None:
    plan = make_plan({"a.mpy": bytes(4097), "b.mpy": bytes(10)}, {}, {}, None, None)
    assert plan.space_needed(4096) == (2 + 1 + 4) * 4096
