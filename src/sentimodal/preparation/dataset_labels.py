"""A prepared dataset's labels as training reads them: the counts per split, the check that
refuses, before any training, a label set a classifier cannot learn, and the soft targets.

These read a :class:`PreparedDataset`, so they sit above it; the label rules the dataset itself
uses (order, renaming, keeping) are in :mod:`sentimodal.preparation.label_set`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sentimodal.errors import UserInputError
from sentimodal.preparation.dataset import PreparedDataset


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
