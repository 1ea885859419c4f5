"""``gonggi``: one command, subcommands registered by the modules that implement them."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

__all__ = ["main"]

# Each module exposes add_parser(subparsers) and sets a `func(args) -> int` default on its parser.
# Imported lazily per run so a gateway without the emulator extra still starts.
COMMANDS = (
    "gonggi_tools.demo",
    "gonggi_gateway.cli",
    "gonggi_emu.cli",
    "gonggi_tools.bench",
    "gonggi_tools.node.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gonggi", description=__doc__)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The level goes on the handler: loggers with a level of their own (an emulated board's,
    # which feeds its board.log at INFO) must not reach stderr below it either.
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.getLogger().setLevel(level)
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
