"""Label sets that come from the data: any number of classes, any label words.

A table's (or DataFrame's) labels are the values of its label column, as text. This module
holds the few rules every layer shares about them: how a cell becomes a label, the order labels
are listed in, renaming/merging (``--label-map``) and keeping a subset (``--labels-keep``). What a
prepared dataset's labels mean for training is in :mod:`sentimodal.preparation.dataset_labels`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sentimodal.errors import RecordError, UserInputError
from sentimodal.sources.table import label_text

_INTEGER = re.compile(r"[+-]?\d+")
#: a decimal number as a label cell may spell it: 1, 01, +1, 1.0, .5, 1e0, 2.5E-1
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
#: numbers whose digits or exponent go beyond this are kept as written (no huge expansions)
_NUMBER_DIGITS = 30


def is_missing(value: Any) -> bool:
    """A label cell that holds no label: None, NaN (pandas' missing values) or blank text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    try:
        return bool(value != value)  # numpy/pandas NaN and NaT compare unequal to themselves
    except (TypeError, ValueError):
        return False


def canonical_label(value: Any) -> str:
    """A label cell as its label (``sources.table.label_text``), numbers in one form: 1, 1.0,
    1e0, +1 and 01 are all the class "1", 0.50 and 5e-1 the class "0.5". A table read as text
    and one read as numbers get the same classes. Missing cells are ""."""
    text = label_text(value)
    if not _NUMBER.fullmatch(text):
        return text
    number = Decimal(text).normalize()
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)  # finite: the pattern has no inf or nan
    if len(number.as_tuple().digits) > _NUMBER_DIGITS or abs(exponent) > _NUMBER_DIGITS:
        return text
    if number == 0:
        return "0"  # -0 and 0.0 are 0
    return format(number, "f")


@dataclass
class LabelSpellings:
    """The different spellings read for each label, so that a run can say which ones the
    canonical form merged ("01" and "1" are both the class "1")."""

    seen: dict[str, set[str]] = field(default_factory=dict)

    def add(self, value: Any) -> str:
        """The canonical label of ``value``, remembering how it was written."""
        label = canonical_label(value)
        if label:
            spelling = label_text(value)
            spellings = self.seen.setdefault(label, set())
            if len(spellings) < 8:
                spellings.add(spelling)
        return label

    def merged(self) -> dict[str, list[str]]:
        """{label: its spellings} for the labels read in more than one spelling."""
        return {
            label: sorted(spellings)
            for label, spellings in sorted(self.seen.items())
            if len(spellings) > 1
        }

    def warning(self) -> str | None:
        """One line naming the merged spellings (a few), or None when there are none."""
        merged = self.merged()
        if not merged:
            return None
        shown = "; ".join(
            f"{' and '.join(repr(s) for s in spellings)} as {label!r}"
            for label, spellings in list(merged.items())[:3]
        )
        more = f" (and {len(merged) - 3} more)" if len(merged) > 3 else ""
        return f"numeric labels are read by value: {shown}{more}"


def sort_labels(labels: Iterable[str]) -> list[str]:
    """The fixed order a label set is listed in (dataset.json, score columns, confusion rows):
    numerically when every label is an integer ("2" before "10"), else by text."""
    unique = set(labels)
    if unique and all(_INTEGER.fullmatch(label) for label in unique):
        return sorted(unique, key=lambda label: (int(label), label))
    return sorted(unique)


def parse_label_map(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"old=new,other=new"`` (or a mapping) -> {old: new}; labels may hold spaces.

    The map is applied once, so what it cannot mean is refused: an entry with two ``=``, one
    label renamed twice to different labels, or a chain (``a=b,b=c``: is ``a`` then ``b`` or
    ``c``?)."""
    if spec is None:
        return {}
    pairs = spec.items() if isinstance(spec, Mapping) else _pairs(spec)
    out: dict[str, str] = {}
    for raw_old, raw_new in pairs:
        old, new = canonical_label(raw_old), canonical_label(raw_new)
        if not old or not new:
            raise UserInputError(f"label map entry {old!r}={new!r} needs both an old and a new")
        if out.get(old, new) != new:
            raise UserInputError(f"label map renames {old!r} twice: to {out[old]!r} and to {new!r}")
        out[old] = new
    chained = sorted(set(out.values()) & {old for old, new in out.items() if old != new})
    if chained:
        label = chained[0]
        raise UserInputError(
            f"label map chains {label!r}: it is renamed ({label}={out[label]}) and a target "
            f"({next(o for o, n in out.items() if n == label)}={label}); name the final label "
            "in each entry"
        )
    return out


def _pairs(spec: str) -> list[tuple[str, str]]:
    pairs = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        if item.count("=") != 1:
            raise UserInputError(f"label map entry {item!r} is not OLD=NEW")
        old, new = item.split("=", 1)
        pairs.append((old, new))
    return pairs


def parse_label_list(spec: str | Sequence[str] | None) -> list[str] | None:
    """``"a,b,c"`` (or a list) -> labels; None when not given. A list that names no label
    (``","``) is refused: keeping nothing is not a dataset, and keeping everything is not
    what was asked."""
    if spec is None:
        return None
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    labels = [label for label in dict.fromkeys(canonical_label(item) for item in items) if label]
    if not labels:
        raise UserInputError(f"labels to keep {spec!r} name no label")
    return labels


@dataclass
class LabelRules:
    """What happens to a label after the source or labeller gave it: renamed or merged by
    ``mapping``, then dropped (the post becomes a reject) unless it is in ``keep``."""

    mapping: dict[str, str] = field(default_factory=dict)
    keep: list[str] | None = None
    #: the labels given to ``apply`` that a rule names (for :meth:`check_used`; bounded by
    #: the rules' size, whatever the data holds)
    matched: set[str] = field(default_factory=set, repr=False)

    def apply(self, label: str) -> str:
        new = self.mapping.get(label, label)
        if label in self.mapping or (self.keep is not None and new in self.keep):
            self.matched.add(label)
        if self.keep is not None and new not in self.keep:
            raise RecordError(
                f"label not kept: {new!r} is not among --labels-keep {','.join(self.keep)}"
            )
        return new

    def unused(self, labels: Iterable[str]) -> list[str]:
        """The rules' entries that name a label not in ``labels`` (the labels before the
        rules): a map entry whose old label never occurs, a kept label nothing becomes."""
        present = set(labels)
        after = {self.mapping.get(label, label) for label in present}
        stale = [f"{old}={new}" for old, new in self.mapping.items() if old not in present]
        stale += [label for label in self.keep or () if label not in after]
        return stale

    def check_used(
        self, labels: Iterable[str], where: str, known: Iterable[str] | None = None
    ) -> None:
        """Refuse rules that name labels ``labels`` does not have (a typo keeps the label it
        meant to rename): one line with the entries and the labels there are (``known``,
        default ``labels``)."""
        stale = self.unused(labels)
        if stale:
            present = sort_labels(labels if known is None else known)
            shown = ", ".join(present[:10]) + (" ..." if len(present) > 10 else "")
            raise UserInputError(
                f"{where}: --label-map/--labels-keep name labels the data does not have: "
                f"{', '.join(stale[:5])} (labels kept: {shown or 'none'})"
            )

    def vocabulary(self, labels: Iterable[str]) -> list[str]:
        """A fixed label set after the rules (mapped, merged, filtered), in sorted order."""
        mapped = {self.mapping.get(label, label) for label in labels}
        return sort_labels(m for m in mapped if self.keep is None or m in self.keep)
