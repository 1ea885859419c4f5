"""Fixtures of the gateway tests; the helpers themselves live in gateway_helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_helpers import KEY, NODE, write_registry


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    return write_registry(tmp_path / "nodes.toml", {NODE: KEY})
