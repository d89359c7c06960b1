"""Label sets that come from the data: any number of classes, any label words.

A table's (or DataFrame's) labels are the values of its label column, as text. This module
holds the few rules every layer shares about them: how a cell becomes a label, the order labels
are listed in, renaming/merging (``--label-map``) and keeping a subset (``--labels-keep``). What a
prepared dataset's labels mean for training is in :mod:`sentimodal.preparation.dataset_labels`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sentimodal.errors import RecordError, UserInputError
from sentimodal.sources.table import label_text

_INTEGER = re.compile(r"[+-]?\d+")


def sort_labels(labels: Iterable[str]) -> list[str]:
    """The fixed order a label set is listed in (dataset.json, score columns, confusion rows):
    numerically when every label is an integer ("2" before "10"), else by text."""
    unique = set(labels)
    if unique and all(_INTEGER.fullmatch(label) for label in unique):
        return sorted(unique, key=lambda label: (int(label), label))
    return sorted(unique)


def parse_label_map(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"old=new,other=new"`` (or a mapping) -> {old: new}; labels may hold spaces."""
    if spec is None:
        return {}
    pairs = spec.items() if isinstance(spec, Mapping) else _pairs(spec)
    out: dict[str, str] = {}
    for old, new in pairs:
        old, new = label_text(old), label_text(new)
        if not old or not new:
            raise UserInputError(f"label map entry {old!r}={new!r} needs both an old and a new")
        out[old] = new
    return out


def _pairs(spec: str) -> list[tuple[str, str]]:
    pairs = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        if "=" not in item:
            raise UserInputError(f"label map entry {item!r} is not OLD=NEW")
        old, new = item.split("=", 1)
        pairs.append((old, new))
    return pairs


def parse_label_list(spec: str | Sequence[str] | None) -> list[str] | None:
    """``"a,b,c"`` (or a list) -> labels; None when not given."""
    if spec is None:
        return None
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    labels = [label_text(item) for item in items]
    return [label for label in dict.fromkeys(labels) if label] or None


@dataclass
class LabelRules:
    """What happens to a label after the source or labeller gave it: renamed or merged by
    ``mapping``, then dropped (the post becomes a reject) unless it is in ``keep``."""

    mapping: dict[str, str] = field(default_factory=dict)
    keep: list[str] | None = None

    def apply(self, label: str) -> str:
        new = self.mapping.get(label, label)
        if self.keep is not None and new not in self.keep:
            raise RecordError(
                f"label not kept: {new!r} is not among --labels-keep {','.join(self.keep)}"
            )
        return new

    def vocabulary(self, labels: Iterable[str]) -> list[str]:
        """A fixed label set after the rules (mapped, merged, filtered), in sorted order."""
        mapped = {self.mapping.get(label, label) for label in labels}
        return sort_labels(m for m in mapped if self.keep is None or m in self.keep)
