"""What ``prepare`` needs to know of a source layout, declared once beside its reader.

Each source module (mvsa, mvso, table) declares its own options as a :class:`Config` and a
:class:`Source` naming them, how to open the reader on them, and the few facts about its
labels that decide which labelling goes with it. :mod:`sentimodal.sources.registry` lists them;
``prepare``'s config, checks, CLI choices and help are read from that list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from sentimodal.config import Config
from sentimodal.sources.record import Record

Options = TypeVar("Options", bound=Config)


@dataclass
class SourceReader:
    """An opened source: its records, their number when cheap to know (for a progress bar's
    total), the reader's dotted name and what it adds to ``dataset.json``'s provenance."""

    records: Iterator[Record]
    total: int | None
    name: str
    provenance: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        """Stop reading (finished or failed): a parsing pool ends now, not when collected."""
        close = getattr(self.records, "close", None)
        if close is not None:
            close()


def no_check(options: Any, labels: str) -> None:
    """A source with no rule of its own on its options and labelling."""


@dataclass(frozen=True)
class Source(Generic[Options]):
    """One source layout as ``prepare`` reads it."""

    name: str
    #: the source's own settings (fields of ``PrepareConfig``, read from it as this class)
    options: type[Options]
    #: the reader over a path, with those options
    open: Callable[[Options, Path], SourceReader]
    #: what PATH is for this source, in the CLI's help
    input: str
    #: where labels come from unless the config says otherwise
    default_labels: str
    #: whether the source's own labels are the sentiment classes (so ``classes`` applies)
    sentiment_labels: bool = False
    #: options that mean nothing elsewhere: given with another source, they are refused
    #: (the source's other options are ignored there)
    refused_elsewhere: tuple[str, ...] = ()
    #: refuse, before reading, options that cannot work with this labelling method
    check: Callable[[Options, str], None] = no_check
