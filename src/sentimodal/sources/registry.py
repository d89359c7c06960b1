"""Every source layout ``prepare`` reads, by name: the one list its config, checks and CLI
choices are derived from (a new source is one more entry here)."""

from __future__ import annotations

from typing import Any, Literal

from sentimodal.sources import mvsa, mvso, table
from sentimodal.sources.source import Source

SOURCES: dict[str, Source[Any]] = {s.name: s for s in (mvsa.SOURCE, mvso.SOURCE, table.SOURCE)}
#: a source's name, as configs and the CLI give it
SourceKind = Literal[tuple(SOURCES)]  # type: ignore[valid-type]


def source_names() -> str:
    """The names as a sentence lists them: "mvsa, mvso or table"."""
    *rest, last = SOURCES
    return f"{', '.join(rest)} or {last}" if rest else last
