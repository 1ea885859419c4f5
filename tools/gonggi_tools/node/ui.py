"""What the field tools print: short lines, a progress bar while copying, errors with what to do."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from gonggi_tools.node.errors import NodeToolError

__all__ = ["Ui", "size"]


def size(n: int) -> str:
    """Bytes as people read them: 900 B, 63.3 KB, 1.4 MB, 81.2 GB."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class Ui:
    def __init__(self, console: Console | None = None) -> None:
        # Piped into a log or a test, lines stay whole rather than folded at 80 columns.
        self.console = console or Console(highlight=False, soft_wrap=True,
                                          width=None if sys.stdout.isatty() else 160)
        self._err = Console(file=sys.stderr, highlight=False, soft_wrap=True)

    def say(self, text: str) -> None:
        self.console.print(escape(text))

    def ok(self, text: str) -> None:
        self.console.print(f"[green]✓[/green] {escape(text)}")

    def fail(self, error: NodeToolError) -> None:
        self._err.print(f"[bold red]error:[/bold red] {escape(error.message)}")
        if error.hint:
            self._err.print(f"[yellow]what to do:[/yellow] {escape(error.hint)}")

    @contextlib.contextmanager
    def progress(self, what: str, total: int) -> Iterator[Callable[[int], None]]:
        """A byte-counting progress bar: call what it yields with each chunk's size."""
        bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                       TimeRemainingColumn(), console=self.console)
        with bar:
            task = bar.add_task(what, total=total)
            yield lambda n: bar.advance(task, n)
