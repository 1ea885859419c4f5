"""Registering a node: a new key, the same key on a re-run, another key only when asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from gonggi_gateway.registry import Registry, key_fingerprint
from gonggi_tools.node.errors import SiteError
from gonggi_tools.node.provision import read_key_file, register

NODE = "gg-a4cf12345678"


def test_a_new_node_gets_a_fresh_32_byte_key_in_a_registry_only_its_owner_reads(tmp_path: Path) -> None:
    path = tmp_path / "nodes.toml"
    first = register(path, NODE, name="Jongno-gu 3")
    info = Registry(path).get(NODE)
    assert info is not None and info.key == first.identity.key and len(info.key) == 32
    assert info.name == "Jongno-gu 3"
    assert first.outcome == "registered" and first.fingerprint == key_fingerprint(info.key)
    assert path.stat().st_mode & 0o077 == 0
    assert register(tmp_path / "other.toml", NODE).identity.key != info.key


def test_provisioning_again_keeps_the_key_and_the_name(tmp_path: Path) -> None:
    path = tmp_path / "nodes.toml"
    first = register(path, NODE, name="Jongno-gu 3")
    again = register(path, NODE)
    assert again.identity.key == first.identity.key
    assert again.outcome == "already registered, key kept"
    assert Registry(path).nodes[NODE].name == "Jongno-gu 3"


def test_a_new_key_replaces_the_old_only_with_rekey_and_the_old_one_verifies_a_while(tmp_path: Path) -> None:
    path = tmp_path / "nodes.toml"
    old = register(path, NODE).identity.key
    given = bytes(range(32))
    with pytest.raises(SiteError) as err:
        register(path, NODE, key=given)
    assert f"node {NODE} is registered with another key ({key_fingerprint(old)})" in err.value.message
    assert err.value.hint == "to give it this key, add --rekey"
    rekeyed = register(path, NODE, key=given, rekey=True)
    assert rekeyed.outcome.startswith("re-keyed (the old key verifies for another 24h)")
    info = Registry(path).nodes[NODE]
    assert info.key == given and info.previous_key == old
    assert register(path, NODE, rekey=True).identity.key not in (given, old)


def test_a_node_id_the_gateway_cannot_take_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SiteError, match="must be 1..23 letters, digits"):
        register(tmp_path / "nodes.toml", "gg/a4cf12345678")
    assert not (tmp_path / "nodes.toml").exists()


def test_a_key_file_must_hold_at_least_16_bytes_of_hex(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(bytes(range(16)).hex() + "\n")
    assert read_key_file(path) == bytes(range(16))
    path.write_text("00ff")
    with pytest.raises(SiteError, match="must hold a hex key of at least 16 bytes"):
        read_key_file(path)
