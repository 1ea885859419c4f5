"""Links to nodes behind one interface; ``open_link`` picks the adapter for a configuration."""

from __future__ import annotations

from gonggi_gateway.config import LinkConfig, SerialConfig
from gonggi_gateway.links.base import Link

__all__ = ["Link", "open_link"]


def open_link(spec: LinkConfig) -> Link:
    """The link for ``spec``, not yet entered (``async with open_link(spec) as link``).

    Adapters are imported only when configured, so a gateway without serial ports never needs
    pyserial and one without BLE never imports bleak.
    """
    if isinstance(spec, SerialConfig):
        from gonggi_gateway.links.serial import SerialLink

        return SerialLink(spec)
    raise TypeError(f"no link adapter for {type(spec).__name__}")
