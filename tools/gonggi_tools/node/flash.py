"""``gonggi node flash``: compile the firmware for the board's MicroPython, copy what changed
(safely: :mod:`gonggi_tools.node.update`), verify, reset, and see the node start and send."""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gonggi_tools.firmware_image import FirmwareBuildError, build_image
from gonggi_tools.node.board import Board, BoardInfo
from gonggi_tools.node.errors import BoardError, NodeToolError, NoPacket
from gonggi_tools.node.monitor import Packet, PacketReader, open_data_port, read_packets
from gonggi_tools.node.target import target_arch
from gonggi_tools.node.ui import Ui, size
from gonggi_tools.node.update import check_space, image_files, read_plan, stage, switch, verify

__all__ = ["Identity", "first_packet", "flash", "read_identity", "start_node"]

# What main.py and node.main() print at start-up: the node runs, or why it does not.
_STARTED = re.compile(
    rb"gonggi node (?P<node>\S+) firmware (?P<fw>\S+) boot (?P<boot>\d+)"
    rb"|gonggi: (?P<error>[^\r\n]+)\r?\n"
    rb"|(?P<traceback>Traceback \(most recent call last\):\r?\n(?:  [^\r\n]*\r?\n)*[^ \r\n][^\r\n]*)\r?\n"
)


@dataclass(frozen=True)
class Identity:
    """Who the node is, from its config.json; the key never leaves this object in text."""

    node_id: str
    key: bytes = field(repr=False)


def read_identity(board: Board) -> Identity | None:
    text = board.read_text("config.json")
    if text is None:
        return None
    try:
        raw = json.loads(text)
        return Identity(str(raw["node_id"]), bytes.fromhex(raw["key"]))
    except (ValueError, KeyError, TypeError):
        raise BoardError("the board's config.json is damaged (not the JSON gonggi writes)",
                         hint="provision the node again: gonggi node provision") from None


def flash(board: Board, info: BoardInfo, ui: Ui, *, source: Path, data_port: str | None, wait: float,
          identity: Identity | None = None) -> None:
    """Bring the board's firmware to the build of ``source``, then restart it and watch it start."""
    arch = target_arch(info)
    if not (source / "node.py").is_file():
        raise NodeToolError(f"no gonggi firmware sources in {source}", hint="pass --firmware DIR (the firmware/ folder)")
    with tempfile.TemporaryDirectory(prefix="gonggi-image-") as tmp:
        try:
            image = build_image(Path(tmp), arch=arch, source=source)
        except FirmwareBuildError as exc:
            raise NodeToolError(str(exc), hint="the firmware sources do not compile: fix them or use a release") from None
        files = image_files(image)
    ui.say(f"firmware build {image.version} for {arch} (MicroPython {info.version_text}): "
           f"{len(files)} files, {size(sum(map(len, files.values())))}")
    plan = read_plan(board, files)
    if plan.up_to_date:
        ui.ok("the board already runs this build: nothing to copy")
    else:
        check_space(plan, info)
        if plan.interrupted:
            ui.say("finishing an update that was cut off")
        if plan.resumed:
            ui.say(f"resuming: {len(plan.resumed)} file(s) already copied by an earlier run")
        if plan.copy:
            ui.say(f"copying {len(plan.copy)} changed file(s), {size(plan.copy_bytes)}; "
                   f"{len(files) - len(plan.move)} unchanged")
            with ui.progress("copying", plan.copy_bytes) as advance:
                stage(board, plan, advance)
        switch(board, plan, image.version)
        verify(board, files)
        ui.ok(f"all {len(files)} files verified on the board (SHA-256)")
    identity = identity or read_identity(board)
    if identity is None:
        board.reset()
        ui.say("the board has no config.json yet, so no node starts: `gonggi node provision` gives it one")
        return
    start_node(board, identity, ui, data_port=data_port, wait=wait)


def start_node(board: Board, identity: Identity, ui: Ui, *, data_port: str | None, wait: float) -> None:
    """Reset the board, wait for the node's start-up line and, with a data port, its first packet."""
    deadline = time.monotonic() + wait
    with open_data_port(data_port) if data_port else contextlib.nullcontext() as line:
        board.reset()
        match, seen = board.console_expect(
            _STARTED, wait, on_reenumerated=lambda: ui.say("the board re-enumerated its USB port (native USB); "
                                                           f"reading its console on {board.port} again"))
        if match is None:
            tail = seen[-300:].decode(errors="replace").strip() or "nothing"
            raise BoardError(f"the node did not start within {wait:g} s after the reset; the console said: {tail}",
                             hint="look at the console: mpremote connect PORT repl, then press the EN button")
        if match["node"] is None:
            said = match["error"] and b"gonggi: " + match["error"] or match["traceback"].splitlines()[-1]
            raise BoardError(f"the node does not start; it says: {said.decode(errors='replace').strip()}",
                             hint="run `gonggi node check` for the details")
        boot = int(match["boot"])
        ui.ok(f"node {match['node'].decode()} started: firmware {match['fw'].decode()}, boot {boot}")
        if line is None:
            return
        packet = first_packet(read_packets(line, _reader(identity), deadline), identity, boot, data_port or "")
        ui.ok(f"first packet on {data_port}: {packet.kind} seq {packet.seq}, verified with the node's key")


def _reader(identity: Identity) -> PacketReader:
    return PacketReader(lambda node_id: identity.key if node_id == identity.node_id else None)


def first_packet(packets: Iterable[Packet], identity: Identity, boot: int, port: str) -> Packet:
    """The first verified packet of ``identity``'s node from ``boot`` among ``packets``."""
    others: dict[str, int] = {}
    for packet in packets:
        if packet.verified and packet.node_id == identity.node_id and packet.boot == boot:
            return packet
        label = f"{packet.kind} {packet.status}" + (f" from {packet.node_id}" if packet.node_id else "")
        others[label] = others.get(label, 0) + 1
    seen = "; saw " + ", ".join(f"{n}× {what}" for what, n in others.items()) if others else "; the line was silent"
    raise NoPacket(f"the node started (boot {boot}) but sent no valid packet on {port} in time{seen}")
