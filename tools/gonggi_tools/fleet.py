"""Emulated nodes with their gateway-side paperwork: flash, bench, scenario, registry entry.

The demo and the HIL tests build the same thing: boards running the real firmware (compiled as a
field tech's ``gonggi node flash`` would), each with a key the gateway's registry knows, and a
gateway configuration whose serial links are the boards' data UARTs::

    spec = NodeSpec.make("demo-01", sensors=[...], bench={...}, scenario={...})
    async with EmulatedNode(spec, workdir) as node:
        node.board.uart_paths[1]          # the gateway opens this
    registry_toml([spec])                 # the gateway's node registry
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from gonggi_emu.bench import Bench
from gonggi_emu.scenario import Scenario
from gonggi_emu.supervisor import EmulatedBoard
from gonggi_tools.firmware_image import provision_flash

__all__ = ["DATA_UART", "EmulatedNode", "NodeSpec", "gateway_toml", "registry_toml"]

DATA_UART = 1  # the firmware's default link: UART1 at 115200 (UART0 is the REPL)


@dataclass(frozen=True)
class NodeSpec:
    node_id: str
    key: bytes
    sensors: Sequence[Mapping[str, Any]]
    bench: Mapping[str, Any]
    scenario: Mapping[str, Any]
    settings: Mapping[str, Any] = field(default_factory=dict)  # sample_s, report_s, ...

    @classmethod
    def make(cls, node_id: str, **kw: Any) -> NodeSpec:
        """A spec with a fresh 32-byte key, as ``gonggi node provision`` makes one."""
        return cls(node_id, secrets.token_bytes(32), **kw)

    def firmware_config(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "key": self.key.hex(), "sensors": list(self.sensors), **self.settings}


class EmulatedNode:
    """A provisioned emulated board for ``spec`` under ``workdir/<node id>/``."""

    def __init__(self, spec: NodeSpec, workdir: Path, *, env: Mapping[str, str] | None = None) -> None:
        self.spec = spec
        self.root = Path(workdir) / spec.node_id
        self.flash = self.root / "flash"
        self.flash.mkdir(parents=True, exist_ok=True)
        provision_flash(self.flash, spec.firmware_config())
        self.board = EmulatedBoard(
            self.flash, Bench.from_dict(dict(spec.bench)), Scenario.from_dict(dict(spec.scenario)),
            self.root / "log", env=env,
        )

    @property
    def data_port(self) -> str:
        return self.board.uart_paths[DATA_UART]

    async def __aenter__(self) -> Self:
        await self.board.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.board.__aexit__(exc_type, exc, tb)


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def registry_toml(specs: Iterable[NodeSpec], *, names: Mapping[str, str] | None = None) -> str:
    """The gateway's node registry (docs/gateway.md) for ``specs``."""
    lines = []
    for spec in specs:
        lines += [f"[nodes.{_toml_str(spec.node_id)}]", f"key = {_toml_str(spec.key.hex())}"]
        if names and spec.node_id in names:
            lines.append(f"name = {_toml_str(names[spec.node_id])}")
        lines.append("")
    return "\n".join(lines)


def gateway_toml(gateway_id: str, *, ports: Iterable[str], registry: Path, spool: Path,
                 archive: Path | None = None, mqtt: tuple[str, int] | None = None) -> str:
    """A gateway configuration serving ``ports`` into the given upstreams."""
    lines = [
        "[gateway]",
        f"id = {_toml_str(gateway_id)}",
        f"spool = {_toml_str(str(spool))}",
        f"registry = {_toml_str(str(registry))}",
        "",
    ]
    for port in ports:
        lines += ["[[serial]]", f"port = {_toml_str(port)}", ""]
    if mqtt is not None:
        lines += ["[mqtt]", f"host = {_toml_str(mqtt[0])}", f"port = {mqtt[1]}", ""]
    if archive is not None:
        lines += ["[archive]", f"path = {_toml_str(str(archive))}", ""]
    return "\n".join(lines)
