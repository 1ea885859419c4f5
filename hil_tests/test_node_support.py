"""What the ``gonggi node`` HIL tests share: the command run as a field tech runs it, the site
file, and the bench it expects.

The bench these tests assume, emulated or real (``--hil-port``, ``--hil-data-port``): a BME280
at 0x76 on I2C0 (SCL 22, SDA 21), and the node's data UART (UART1) on the data port.

Test modules import the fixtures they use from here; this module holds no tests.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gonggi_emu.bench import Bench
from gonggi_emu.vm import FIRMWARE_DIR
from gonggi_gateway.registry import NodeInfo, Registry

from cli_runner import port_released, run_logged

GONGGI = str(Path(sys.executable).with_name("gonggi"))
RUN_TIMEOUT_S = 90.0

SITE = """\
[node]
sample_s = 1
report_s = 2

[[sensors]]
driver = "bme280"
name = "bme"
"""


@dataclass(frozen=True)
class Run:
    """What the field tech saw: exit status and everything printed (stdout and stderr, in order)."""

    rc: int
    out: str


Gonggi = Callable[..., Awaitable[Run]]


async def run_gonggi(log: Path, *args: str) -> Run:
    return Run(*await run_logged([GONGGI, *args], log, RUN_TIMEOUT_S, "gonggi " + " ".join(args)))


@pytest.fixture
def gonggi(board: Any, hil_log_dir: Path) -> Gonggi:
    """``await gonggi("node", "check", "--port", board.repl_path)``: the real CLI, in a process of its own."""

    async def run(*args: str) -> Run:
        async with port_released(board):
            return await run_gonggi(hil_log_dir / "gonggi.log", *args)

    return run


@pytest.fixture
def gonggi_alone(hil_log_dir: Path) -> Gonggi:
    """The CLI for tests without a board."""
    return lambda *args: run_gonggi(hil_log_dir / "gonggi.log", *args)


@pytest.fixture
def bench() -> Bench:
    return Bench.from_dict({"device": [{"kind": "bme280", "bus": "i2c0"}]})


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(SITE)
    return path


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return tmp_path / "nodes.toml"


@pytest.fixture
def data_port(board: Any) -> str:
    port = board.uart_paths.get(1)
    if port is None:
        pytest.skip("needs the board's data UART: --hil-data-port")
    return str(port)


def firmware_tree(tmp_path: Path, version: str) -> Path:
    """A copy of the firmware that differs in every file (a header line shifts all line numbers
    in the bytecode) and says it is ``version``."""
    tree = tmp_path / f"firmware-{version}"
    shutil.copytree(FIRMWARE_DIR, tree, ignore=shutil.ignore_patterns("__pycache__"))
    for src in tree.rglob("*.py"):
        src.write_text(f"# build {version}\n" + src.read_text())
    node = tree / "node.py"
    node.write_text(re.sub(r'^FIRMWARE = ".*"$', f'FIRMWARE = "{version}"', node.read_text(), flags=re.M))
    return tree


async def provisioned(gonggi: Gonggi, board: Any, site: Path, registry: Path, data_port: str,
                      *extra: str) -> NodeInfo:
    """The one-command provisioning a field tech starts with; the node as the registry has it."""
    run = await gonggi("node", "provision", "--port", board.repl_path, "--site", str(site),
                       "--registry", str(registry), "--data-port", data_port, *extra)
    assert run.rc == 0, run.out
    (info,) = Registry(registry).nodes.values()
    return info
