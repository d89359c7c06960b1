"""What a training loop shows while an epoch runs: batches done, posts per second, loss and
time left, on stderr; ``-q`` (``progress=False``) shows nothing.

In a terminal that is a live bar. When stderr is a file or a pipe (a log, ``tee``, a batch
job) a live bar shows nothing until it ends, so there the same facts come as a plain line
every ``every`` seconds. Data-parallel workers send these calls to the driver, which shows
them here once (see :mod:`sentimodal.training.ray_train`), not once per worker.
"""

from __future__ import annotations

import time
from typing import Protocol

from rich.console import Console
from rich.progress import Progress, TaskID, TextColumn

from sentimodal.progress import progress_bar, stderr


class EpochProgress(Protocol):
    def start(self, epoch: int, epochs: int, batches: int) -> None: ...

    def advance(self, rows: int, loss: float, batches: int = 1) -> None: ...

    def line(self, text: str) -> None: ...

    def close(self) -> None: ...


class Silent:
    """Shows nothing (``-q``, workers other than the first)."""

    def start(self, epoch: int, epochs: int, batches: int) -> None:
        pass

    def advance(self, rows: int, loss: float, batches: int = 1) -> None:
        pass

    def line(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ConsoleProgress:
    """A live bar per epoch in a terminal, a line every ``every`` seconds elsewhere."""

    def __init__(self, console: Console | None = None, every: float = 30.0) -> None:
        self.console = console or stderr
        self.every = every
        self.live = self.console.is_terminal
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def start(self, epoch: int, epochs: int, batches: int) -> None:
        self.what = f"epoch {epoch}/{epochs}"
        self.batches, self.done, self.rows, self.loss = batches, 0, 0, 0.0
        self.began = self.last = time.perf_counter()
        if self.live:
            if self.bar is None:
                self.bar = progress_bar(
                    unit="batches",
                    transient=True,
                    extra=(
                        TextColumn("{task.fields[posts]:,.0f} posts/s"),
                        TextColumn("loss {task.fields[loss]:.4f}"),
                    ),
                    console=self.console,
                )
                self.bar.start()
            self.task = self.bar.add_task(self.what, total=batches, loss=0.0, posts=0.0)

    def advance(self, rows: int, loss: float, batches: int = 1) -> None:
        self.done += batches
        self.rows += rows
        self.loss = loss
        now = time.perf_counter()
        rate = self.rows / max(now - self.began, 1e-9)
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, advance=batches, loss=loss, posts=rate)
        elif now - self.last >= self.every and self.done < self.batches:
            self.last = now
            left = (self.batches - self.done) * (now - self.began) / self.done
            self.console.print(
                f"{self.what}  batch {self.done}/{self.batches}  {rate:,.0f} posts/s  "
                f"loss {loss:.4f}  {_clock(left)} left",
                highlight=False,
            )

    def line(self, text: str) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None
        self.console.print(text, highlight=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def epoch_progress(enabled: bool, console: Console | None = None) -> EpochProgress:
    return ConsoleProgress(console) if enabled else Silent()
