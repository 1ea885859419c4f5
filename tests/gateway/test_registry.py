"""The node registry: keys by node id, validation errors naming file and key, reload on change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway_helpers import KEY, NODE, OTHER_KEY, write_registry
from gonggi_gateway.errors import ConfigError
from gonggi_gateway.registry import NodeInfo, Registry

REPO = Path(__file__).resolve().parents[2]


def touch_later(path: Path) -> None:
    # Editors change mtime; make sure the change is visible even within one timestamp tick.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_lookup(registry_file: Path) -> None:
    reg = Registry(registry_file)
    assert reg.lookup(NODE) == KEY
    assert reg.lookup("gg-nobody") is None
    assert reg.get(NODE) == NodeInfo(NODE, KEY, f"{NODE} name", "lab")


def test_example_registry_loads() -> None:
    assert "gg-a4cf12" in Registry(REPO / "examples" / "nodes.example.toml").nodes


def test_adding_a_node_and_rotating_a_key_need_no_restart(registry_file: Path) -> None:
    reg = Registry(registry_file)
    write_registry(registry_file, {NODE: OTHER_KEY, "gg-new": KEY})
    touch_later(registry_file)
    assert reg.lookup(NODE) == OTHER_KEY
    assert reg.lookup("gg-new") == KEY
    write_registry(registry_file, {"gg-new": KEY})
    touch_later(registry_file)
    assert reg.lookup(NODE) is None


def test_a_broken_edit_keeps_the_old_keys(registry_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    reg = Registry(registry_file)
    registry_file.write_text('[nodes."gg-test01"]\nkey = "abcd"\n')
    touch_later(registry_file)
    assert reg.lookup(NODE) == KEY
    assert "registry reload failed" in caplog.text and "key: must be hex of at least 16 bytes" in caplog.text
    caplog.clear()
    assert reg.lookup(NODE) == KEY
    assert caplog.text == ""  # the same broken file is reported once
    write_registry(registry_file, {NODE: OTHER_KEY})
    touch_later(registry_file)
    assert reg.lookup(NODE) == OTHER_KEY


def test_a_deleted_registry_keeps_the_old_keys(registry_file: Path) -> None:
    reg = Registry(registry_file)
    registry_file.unlink()
    assert reg.lookup(NODE) == KEY


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[nodes."gg-1"]\nkey = "00112233"\n', '[nodes."gg-1"] key: must be hex of at least 16 bytes (32 hex digits)'),
        ('[nodes."gg-1"]\nkey = "zz' + "0" * 40 + '"\n', '[nodes."gg-1"] key: must be hex'),
        ('[nodes."gg-1"]\nname = "x"\n', '[nodes."gg-1"] key: must be hex'),
        ('[nodes."gg-1"]\nkey = "' + "0" * 32 + '"\nkee = 1\n',
         '[nodes."gg-1"] unknown key \'kee\' (allowed: key, name, location, previous_key, previous_key_expires)'),
        ('[nodes."gg-1"]\nkey = "' + "0" * 32 + '"\nname = 5\n', '[nodes."gg-1"] name: must be a string'),
        ('[nodes."gg/1"]\nkey = "' + "0" * 32 + '"\n', '[nodes."gg/1"]: node id must be 1..23 letters'),
        ('[nodes."' + "n" * 24 + '"]\nkey = "' + "0" * 32 + '"\n', "node id must be 1..23"),
        ('[node."gg-1"]\nkey = "' + "0" * 32 + '"\n', "unknown key 'node' (allowed: nodes)"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "nodes.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        Registry(path)
    assert str(err.value).startswith(f"{path}")
    assert expected in str(err.value)


def test_missing_registry_is_an_error_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="node registry not found"):
        Registry(tmp_path / "nodes.toml")
