"""The one place progress is shown: rich bars on stderr, so stdout stays the command's output.

Long work (preparing, extracting, training, predicting, experiment grids) shows the same kind
of bar: what is being done, how far, how fast, how long. A bar is transient where the caller
prints its own summary line afterwards.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

#: every progress bar and status line of long work goes here; it never parses markup, so a
#: path, id or label printed is text whatever brackets it holds (style goes through ``note``)
stderr = Console(stderr=True, markup=False)


def note(*parts: str | tuple[str, str]) -> None:
    """A status line on stderr from plain strings and ``(text, style)`` pairs."""
    stderr.print(Text.assemble(*parts), highlight=False, soft_wrap=True)


class RateColumn(ProgressColumn):
    """Items per second (rich's own speed column counts bytes)."""

    def __init__(self, unit: str = "items") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        text = f"- {self.unit}/s" if speed is None else f"{speed:,.1f} {self.unit}/s"
        return Text(text, style="cyan")


def progress_bar(
    enabled: bool = True,
    *,
    unit: str = "items",
    transient: bool = False,
    extra: tuple[ProgressColumn, ...] = (),
    console: Console | None = None,
) -> Progress:
    """A bar with description, count, rate and times; ``enabled=False`` shows nothing."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *extra,
        console=console or stderr,
        transient=transient,
        disable=not enabled,
    )
