"""Label sets that come from the data: any number of classes, any label words.

A table's (or DataFrame's) labels are the values of its label column, as text. This module
holds the few rules every layer shares about them: how a cell becomes a label, the order labels
are listed in, renaming/merging (``--label-map``) and keeping a subset (``--labels-keep``), and
the check that refuses, before any training, a label set a classifier cannot learn.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sentimodal.errors import RecordError, UserInputError
from sentimodal.sources.table import label_text

if TYPE_CHECKING:
    from sentimodal.preparation.dataset import PreparedDataset

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


def split_counts(dataset: PreparedDataset) -> dict[str, dict[str, int]]:
    """{split: {label: n}} counted from the examples (every label of the set, zeros included)."""
    examples = dataset.examples
    counts: dict[str, dict[str, int]] = {}
    for split in dict.fromkeys([*dataset.splits, *examples["split"].astype(str)]):
        labels = examples.loc[examples["split"].astype(str) == split, "label"]
        per = dict.fromkeys(dataset.labels, 0)
        for label, n in labels.dropna().astype(str).value_counts().items():
            per[label] = per.get(label, 0) + int(n)
        counts[split] = per
    return counts


def _describe(counts: Mapping[str, Mapping[str, int]], label: str) -> str:
    return ", ".join(f"{split} {per.get(label, 0)}" for split, per in counts.items())


def check_trainable(dataset: PreparedDataset, train_splits: Sequence[str] = ("train",)) -> None:
    """Refuse, before any training, a label set a classifier cannot learn: fewer than two
    classes, or a class with no post in the training splits. One line names the class and its
    count in every split."""
    counts = split_counts(dataset)
    where = dataset.root if dataset.root is not None else "the dataset"
    labels = dataset.labels
    if len(labels) < 2:
        named = f"one class ({labels[0]!r}: {_describe(counts, labels[0])})" if labels else "none"
        raise UserInputError(
            f"{where}: a classifier needs at least two classes; this label set has {named}"
        )
    train = " + ".join(train_splits)
    for label in labels:
        if sum(counts.get(split, {}).get(label, 0) for split in train_splits) == 0:
            raise UserInputError(
                f"{where}: class {label!r} has no {train} posts ({_describe(counts, label)}); "
                f"drop it (prepare --labels-keep) or merge it (--label-map) before training"
            )
    trained = {label for split in train_splits for label, n in counts.get(split, {}).items() if n}
    unknown = sorted(trained - set(labels))
    if unknown:
        raise UserInputError(
            f"{where}: {train} labels {unknown} are not in the dataset's label set {labels}"
        )


def soft_targets(dataset: PreparedDataset, ids: Sequence[str], head: str) -> np.ndarray:
    """The label distributions of ``ids`` (N, labels), in the dataset's label order, as soft
    training targets; refused for embedding heads and for posts without a distribution."""
    if head != "softmax":
        raise UserInputError(f"soft targets train softmax heads (cross-entropy), not {head} heads")
    by_id = dataset.examples.set_index(dataset.examples["id"].astype(str))["label_distribution"]
    rows = by_id.loc[list(ids)].tolist()
    width = len(dataset.labels)
    lacking = [i for i, row in zip(ids, rows, strict=True) if row is None or len(row) != width]
    if lacking:
        raise UserInputError(
            f"{dataset.root}: soft targets need a label distribution for every training post; "
            f"{len(lacking)} have none (e.g. {lacking[0]!r}): prepare with "
            f"--label-distribution-columns"
        )
    matrix = np.asarray(rows, dtype=np.float32)
    return matrix / matrix.sum(axis=1, keepdims=True)
