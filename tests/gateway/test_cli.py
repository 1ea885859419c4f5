"""``gonggi gateway``: a configuration error is one clear line and exit status 2."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gateway_helpers import KEY, NODE, write_registry
from gonggi_gateway.cli import add_parser


def gonggi(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="gonggi")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_check_summarises_a_valid_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_registry(tmp_path / "nodes.toml", {NODE: KEY})
    config = tmp_path / "gateway.toml"
    config.write_text('[gateway]\nid = "gw1"\n[[serial]]\nport = "/dev/ttyUSB0"\n')
    assert gonggi("gateway", "check", "--config", str(config)) == 0
    assert capsys.readouterr().out == (
        f"{config}: gateway gw1, 1 link(s), uplinks archive, 1 node(s) in {tmp_path / 'nodes.toml'}\n"
    )


@pytest.mark.parametrize("command", ["check", "run"])
def test_configuration_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       command: str) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[gateway]\nid = "gw1"\n[mqtt]\nhost = "x"\nport = 0\n')
    assert gonggi("gateway", command, "--config", str(config)) == 2
    err = capsys.readouterr().err
    assert err == f"gonggi gateway: {config}: [mqtt] port: must be an integer from 1 to 65535, got 0\n"


def test_a_missing_registry_is_a_configuration_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[gateway]\nid = "gw1"\n')
    assert gonggi("gateway", "run", "--config", str(config)) == 2
    assert "nodes.toml: node registry not found" in capsys.readouterr().err
