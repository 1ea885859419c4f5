"""``gonggi gateway …``: run the gateway service, or check its configuration."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from gonggi_gateway.config import Config, load_config
from gonggi_gateway.errors import ConfigError, GatewayError
from gonggi_gateway.registry import Registry

__all__ = ["add_parser", "setup_logging"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str) -> None:
    """Lines with ``key=value`` fields on stderr (journald keeps them); ``level`` wins over ``-v``."""
    logging.basicConfig(format=LOG_FORMAT, stream=sys.stderr)  # no-op if `gonggi` set it up already
    root = logging.getLogger()
    root.setLevel(level.upper())
    for handler in root.handlers:
        handler.setLevel(level.upper())


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``gateway run`` and ``gateway check`` on the ``gonggi`` command line."""
    gateway = subparsers.add_parser("gateway", help="run the gateway service",
                                    description="The gateway: verifies node packets, spools them, sends them upstream.")
    commands = gateway.add_subparsers(dest="gateway_command", metavar="COMMAND", required=True)
    run = commands.add_parser("run", help="run until SIGTERM/SIGINT")
    check = commands.add_parser("check", help="validate the configuration and the node registry, then exit")
    for p in (run, check):
        p.add_argument("--config", "-c", type=Path, required=True, metavar="FILE", help="gateway TOML file")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=_run)
    check.set_defaults(func=_check)


def _load(path: Path) -> tuple[Config, Registry]:
    config = load_config(path)
    return config, Registry(config.gateway.registry)


def _check(args: argparse.Namespace) -> int:
    try:
        config, registry = _load(args.config)
    except ConfigError as exc:
        print(f"gonggi gateway: {exc}", file=sys.stderr)
        return 2
    print(f"{config.source}: gateway {config.gateway.id}, {len(config.links)} link(s), "
          f"uplinks {', '.join(config.uplink_names)}, {len(registry.nodes)} node(s) in {registry.path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from gonggi_gateway.service import serve

    try:
        config, _ = _load(args.config)
    except ConfigError as exc:
        print(f"gonggi gateway: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level)
    try:
        asyncio.run(serve(config))
    except GatewayError as exc:  # e.g. the spool cannot be opened
        print(f"gonggi gateway: {exc}", file=sys.stderr)
        return 1
    return 0
