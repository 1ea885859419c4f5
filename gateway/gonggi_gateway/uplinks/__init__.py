"""Upstreams for spooled packets behind one interface; ``open_uplinks`` builds the configured ones."""

from __future__ import annotations

from gonggi_gateway.config import Config
from gonggi_gateway.uplinks.base import Drainer, Uplink
from gonggi_gateway.uplinks.ha_discovery import Describe, by_node_id

__all__ = ["Drainer", "Uplink", "open_uplinks"]


def open_uplinks(config: Config, *, describe: Describe = by_node_id) -> list[Uplink]:
    """The uplinks of ``config``, not yet entered; adapters are imported only when configured.
    ``describe`` names the nodes in Home Assistant discovery (registry name, location, firmware)."""
    uplinks: list[Uplink] = []
    if config.mqtt is not None:
        from gonggi_gateway.uplinks.mqtt import MqttUplink

        uplinks.append(MqttUplink(config.mqtt, config.gateway.id, describe=describe))
    if config.http_uplink is not None:
        from gonggi_gateway.uplinks.http import HttpUplink

        uplinks.append(HttpUplink(config.http_uplink, config.gateway.id))
    if config.archive is not None:
        from gonggi_gateway.uplinks.archive import ArchiveUplink

        uplinks.append(ArchiveUplink(config.archive.path, synchronous=config.gateway.synchronous,
                                     batching=config.archive.batch))
    assert tuple(u.name for u in uplinks) == config.uplink_names
    return uplinks
