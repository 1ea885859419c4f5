"""`gonggi gateway node add|remove|rotate|list`: atomic registry edits a running gateway picks up,
with a grace period for a rotated-out key; keys never printed."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway_helpers import KEY, NODE, OTHER_KEY, MemoryLink, SimNode, write_registry
from gonggi_gateway.cli import add_parser
from gonggi_gateway.errors import ConfigError
from gonggi_gateway.protocol import Frame, decode_control
from gonggi_gateway.registry import NodeInfo, Registry, edit_registry, format_registry
from gonggi_gateway.service import Gateway
from gonggi_gateway.state import Snapshot
from ops_helpers import ops_config, running

NEW_NODE = "gg-new"
THIRD_KEY = bytes(range(200, 232))


def gonggi(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="gonggi")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def key_file(path: Path, key: bytes) -> str:
    path.write_text(key.hex() + "\n")
    return str(path)


def test_node_commands_edit_atomically_keep_mode_and_never_print_keys(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = write_registry(tmp_path / "nodes.toml", {NODE: KEY})
    registry.chmod(0o640)
    inode = registry.stat().st_ino
    r = str(registry)
    assert gonggi("gateway", "node", "add", "gg-b", "-r", r, "--key-file", key_file(tmp_path / "k", OTHER_KEY),
                  "--name", 'Mapo "west" 2', "--location", "37.55,126.91") == 0
    assert registry.stat().st_ino != inode  # a new file renamed over the old one
    assert registry.stat().st_mode & 0o777 == 0o640  # the gateway's group still reads it
    assert sorted(p.name for p in tmp_path.iterdir()) == [".nodes.toml.lock", "k", "nodes.toml"]  # no temp left
    assert gonggi("gateway", "node", "add", "gg-c", "-r", r, "--generate-key", str(tmp_path / "gg-c.key")) == 0
    generated = tmp_path / "gg-c.key"
    assert generated.stat().st_mode & 0o777 == 0o600
    assert gonggi("gateway", "node", "rotate", NODE, "-r", r, "--key-file", key_file(tmp_path / "k3", THIRD_KEY),
                  "--grace", "2h") == 0
    assert gonggi("gateway", "node", "remove", "gg-b", "-r", r) == 0
    assert gonggi("gateway", "node", "list", "-r", r) == 0

    nodes = Registry(registry).nodes
    assert sorted(nodes) == ["gg-c", NODE]
    assert nodes["gg-c"].key == bytes.fromhex(generated.read_text())
    rotated = nodes[NODE]
    assert (rotated.key, rotated.previous_key) == (THIRD_KEY, KEY)
    assert rotated.previous_key_expires is not None and 7100 < rotated.previous_key_expires - time.time() <= 7200
    assert (rotated.name, rotated.location) == (f"{NODE} name", "lab")  # rotation keeps the rest
    out, err = capsys.readouterr()
    assert "previous key until" in out and "2 node(s)" in out
    for key in (KEY, OTHER_KEY, THIRD_KEY, nodes["gg-c"].key):
        assert key.hex() not in out + err
        assert key.hex() not in repr(nodes)  # nor in a log line or traceback


def test_refused_edits_leave_the_registry_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = write_registry(tmp_path / "nodes.toml", {NODE: KEY})
    before = registry.read_text()
    r = str(registry)
    assert gonggi("gateway", "node", "add", NODE, "-r", r, "--key-file", key_file(tmp_path / "k", OTHER_KEY)) == 2
    assert "already registered (to re-key it: rotate)" in capsys.readouterr().err
    assert gonggi("gateway", "node", "remove", "gg-nobody", "-r", r) == 2
    assert gonggi("gateway", "node", "rotate", NODE, "-r", r, "--key-file", key_file(tmp_path / "same", KEY)) == 2
    assert gonggi("gateway", "node", "add", "gg-short", "-r", r, "--key-file", key_file(tmp_path / "s", b"\1" * 8)) == 2
    assert "hex key of at least 16 bytes" in capsys.readouterr().err
    assert gonggi("gateway", "node", "add", "bad/id", "-r", r, "--generate-key", str(tmp_path / "bad.key")) == 2
    assert not (tmp_path / "bad.key").exists()  # the generated key went with the refused edit
    assert registry.read_text() == before
    with pytest.raises(ConfigError, match="does not read back"):  # a writer bug never reaches the gateway
        edit_registry(registry, lambda nodes: {**nodes, "gg-x": NodeInfo("gg-y", KEY)})
    assert registry.read_text() == before


def test_an_edit_drops_rotated_out_keys_whose_grace_is_over(tmp_path: Path) -> None:
    registry = tmp_path / "nodes.toml"
    past, future = float(int(time.time()) - 10), float(int(time.time()) + 3600)
    registry.write_text(format_registry({
        NODE: NodeInfo(NODE, KEY, previous_key=OTHER_KEY, previous_key_expires=past),
        "gg-b": NodeInfo("gg-b", OTHER_KEY, previous_key=THIRD_KEY, previous_key_expires=future),
    }))
    assert Registry(registry).keys(NODE) == (KEY,)  # expired: no longer accepted
    assert Registry(registry).keys("gg-b") == (OTHER_KEY, THIRD_KEY)
    assert gonggi("gateway", "node", "add", "gg-c", "-r", str(registry),
                  "--key-file", key_file(tmp_path / "c.key", bytes(range(50, 82)))) == 0
    nodes = Registry(registry).nodes
    assert nodes[NODE].previous_key is None  # the next edit removed it from the file
    assert nodes["gg-b"].previous_key == THIRD_KEY  # still in its grace period


def test_reload_reads_an_edit_the_signature_missed(tmp_path: Path) -> None:
    registry = write_registry(tmp_path / "nodes.toml", {NODE: KEY})
    reg = Registry(registry)
    st = registry.stat()
    with registry.open("r+") as f:  # same size, same inode, same mtime: invisible to the signature
        f.write(registry.read_text().replace(KEY.hex(), OTHER_KEY.hex()))
    os.utime(registry, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert reg.lookup(NODE) == KEY
    assert reg.reload()  # SIGHUP
    assert reg.lookup(NODE) == OTHER_KEY


def test_a_running_gateway_follows_add_rotate_and_remove(tmp_path: Path) -> None:
    config = ops_config(tmp_path)
    registry = str(config.gateway.registry)
    now = [time.time()]
    new = SimNode(node_id=NEW_NODE, key=OTHER_KEY)

    async def main() -> None:
        async with Gateway(config, clock=lambda: now[0]) as gateway, running(gateway):
            link = MemoryLink()
            served = asyncio.create_task(gateway.serve_link(link))

            async def send(frame: Frame, done: Callable[[Snapshot], bool]) -> None:
                link.deliver(frame)
                await asyncio.wait_for(gateway.wait_until(done), 10)

            await send(new.data_frame(0), lambda s: s.rejected.get("unknown_node") == 1)
            assert gonggi("gateway", "node", "add", NEW_NODE, "-r", registry,
                          "--key-file", key_file(tmp_path / "new.key", OTHER_KEY)) == 0
            await send(new.data_frame(0), lambda s: NEW_NODE in s.nodes and s.nodes[NEW_NODE].packets == 1)
            assert link.controls(OTHER_KEY)[-1].acks  # acked with its key

            # Re-key: the node's backlog, sealed with the old key, still verifies during the grace.
            assert gonggi("gateway", "node", "rotate", NEW_NODE, "-r", registry, "--grace", "1h",
                          "--key-file", key_file(tmp_path / "third.key", THIRD_KEY)) == 0
            await send(new.data_frame(1), lambda s: s.nodes[NEW_NODE].packets == 2)  # old key
            await send(new.data_frame(2, key=THIRD_KEY), lambda s: s.nodes[NEW_NODE].packets == 3)  # new key
            assert decode_control(link.sent[-1].body, THIRD_KEY).acks  # answered with the current key
            now[0] += 3601  # the grace is over
            await send(new.data_frame(3), lambda s: s.nodes[NEW_NODE].rejected.get("bad_mac") == 1)

            assert gonggi("gateway", "node", "remove", NEW_NODE, "-r", registry) == 0
            await send(new.data_frame(4, key=THIRD_KEY), lambda s: s.rejected.get("unknown_node") == 2)
            link.end()
            await served

    asyncio.run(main())
