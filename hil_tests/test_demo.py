"""``gonggi demo`` as the README runs it: emulated nodes reach the archive, and it says so."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from gonggi_tools.demo import Summary

GONGGI = str(Path(sys.executable).with_name("gonggi"))


async def test_demo_runs_for_its_duration_and_summarises(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        GONGGI, "demo", "--nodes", "2", "--duration", "14", "--workdir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    raw, _ = await proc.communicate()
    out = raw.decode(errors="replace")
    assert proc.returncode == 0, out
    stored = {m[1]: int(m[2]) for m in re.finditer(r"^(demo-\d\d): (\d+) packets stored$", out, re.M)}
    assert set(stored) == {"demo-01", "demo-02"} and all(stored.values()), out
    archived = re.search(r"^archive: (\d+) packets; rejected: none$", out, re.M)
    assert archived and int(archived[1]) == sum(stored.values()), out
    assert "demo OK" in out
    # --workdir keeps what a user wants to look at afterwards.
    assert (tmp_path / "archive.sqlite").exists() and (tmp_path / "demo-01" / "log" / "console.log").exists()


def test_the_summary_fails_a_silent_node_or_a_missing_archive_row() -> None:
    assert Summary({"a": 3, "b": 2}, 5, {}).ok
    assert not Summary({"a": 3, "b": 0}, 3, {}).ok
    assert not Summary({"a": 3, "b": 2}, 4, {}).ok
