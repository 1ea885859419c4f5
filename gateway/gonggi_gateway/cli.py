"""``gonggi gateway …``: run the gateway service, check its configuration, install it, manage its nodes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gonggi_gateway.config import LOG_LEVELS, Config, load_config
from gonggi_gateway.errors import ConfigError, GatewayError
from gonggi_gateway.ops.commands import add_commands
from gonggi_gateway.ops.logs import configure_logging
from gonggi_gateway.registry import Registry

__all__ = ["add_parser", "setup_logging"]


def setup_logging(level: str, fmt: str = "text") -> None:
    """On stderr (journald keeps it): ``key=value`` text lines or JSON lines; ``level`` wins over ``-v``."""
    configure_logging(level, fmt)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``gateway run`` and ``gateway check`` on the ``gonggi`` command line."""
    gateway = subparsers.add_parser("gateway", help="run the gateway service",
                                    description="The gateway: verifies node packets, spools them, sends them upstream.")
    commands = gateway.add_subparsers(dest="gateway_command", metavar="COMMAND", required=True)
    run = commands.add_parser("run", help="run until SIGTERM/SIGINT")
    check = commands.add_parser("check", help="validate the configuration and the node registry, then exit")
    for p in (run, check):
        p.add_argument("--config", "-c", type=Path, required=True, metavar="FILE", help="gateway TOML file")
    run.add_argument("--log-level", choices=LOG_LEVELS, help="overrides [logging] level (default: info)")
    run.set_defaults(func=_run)
    check.set_defaults(func=_check)
    add_commands(commands)  # install, node add|remove|rotate|list, dead-letters list|resend|drop


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
    setup_logging(args.log_level or config.logging.level, config.logging.format)
    try:
        asyncio.run(serve(config))
    except GatewayError as exc:  # e.g. the spool cannot be opened
        print(f"gonggi gateway: {exc}", file=sys.stderr)
        return 1
    return 0
