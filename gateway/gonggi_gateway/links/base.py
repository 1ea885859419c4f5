"""The Link interface: the only way the gateway talks to nodes (serial now, BLE later)."""

from __future__ import annotations

import abc
from collections.abc import Callable
from types import TracebackType
from typing import Self

from gonggi_gateway.protocol import Frame
from gonggi_gateway.state import LinkStatus

__all__ = ["Link"]


class Link(abc.ABC):
    """A channel to one node: frames in, frames out.

    A link keeps itself up: if its port disappears it logs once, closes, and reopens with
    backoff, while ``receive()`` simply waits. ``node_id`` is the node last authenticated on it
    (set by ingest after a valid message; reset by the link when the channel is reopened, since
    another node may be plugged in).
    """

    name: str
    node_id: str | None = None
    on_change: Callable[[], None] | None = None  # the gateway's hook: called when is_open changes

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        return None

    @abc.abstractmethod
    async def receive(self) -> list[Frame]:
        """Wait until at least one valid frame arrived; return every frame received so far.

        Raises LinkError once the link has ended for good (a BLE connection that closed); a link
        that reopens its port itself (serial) just keeps waiting.
        """

    @abc.abstractmethod
    async def send(self, ftype: int, body: bytes) -> None:
        """Send one frame to the node. Raises LinkError if the link is down or cannot keep up."""

    @property
    @abc.abstractmethod
    def is_open(self) -> bool:
        """Whether the underlying port/connection is currently usable."""

    @property
    @abc.abstractmethod
    def frame_errors(self) -> dict[str, int]:
        """Damaged frames dropped so far, by reason (see FrameDecoder)."""

    def status(self) -> LinkStatus:
        return LinkStatus(self.name, self.is_open, self.node_id, dict(self.frame_errors))
