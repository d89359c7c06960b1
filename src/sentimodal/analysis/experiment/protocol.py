"""How an experiment's runs are trained and tested: the dataset's own split, or k folds.

A protocol turns one prepared dataset into the views a run trains and is tested on. ``split``
keeps the dataset's train / val / test. ``kfold`` pools the posts of the named splits (by
default every post; ``[train, val]`` leaves a test split unread) and cuts them into k folds,
stratified by label and seeded: each fold is the test set once, and of the other folds a
stratified tenth validates (early stopping, a baseline's C) and the rest trains. Every view
keeps the dataset's root, so all folds share its feature cache: only the split column changes.
Small datasets make one split's test figures noisy; k folds give a mean and a spread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

import numpy as np
from pydantic import Field, TypeAdapter

from sentimodal.config import Config, Seed
from sentimodal.errors import UserInputError
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.dataset_labels import split_counts
from sentimodal.preparation.splits import assign_splits

#: the splits a run reads: trained on train, validated on val, tested on test
RUN_SPLITS: tuple[str, ...] = ("train", "val", "test")


class SplitProtocol(Config):
    """Train on the dataset's train split, validate on val, test on test: one run per seed."""

    kind: Literal["split"] = "split"

    def fold_numbers(self) -> list[int | None]:
        return [None]

    def pooled(self, dataset: PreparedDataset) -> PreparedDataset:
        """Every post: the split column says which ones train, validate and test."""
        return dataset

    def view(self, dataset: PreparedDataset, fold: int | None) -> PreparedDataset:
        missing = [s for s in RUN_SPLITS if s not in dataset.splits]
        if missing:
            raise UserInputError(
                f"{dataset.root}: the split protocol needs train, val and test splits; missing "
                f"{', '.join(missing)} (or use protocol: {{kind: kfold}})"
            )
        return dataset


class KFoldProtocol(Config):
    """k stratified, seeded folds of the pooled posts: each fold is the test set once."""

    kind: Literal["kfold"] = "kfold"
    folds: int = Field(5, ge=2)
    #: seed of the folds and of the validation tenth (the same cut for every run and seed)
    seed: Seed = 0
    #: share of each fold's training posts held out as validation, per class
    val_fraction: float = Field(0.1, gt=0, lt=1)
    #: the splits whose posts are pooled (None: every post), e.g. [train, val] to leave test unread
    pool: list[str] | None = None

    def fold_numbers(self) -> list[int | None]:
        return list(range(self.folds))

    def pooled(self, dataset: PreparedDataset) -> PreparedDataset:
        """The posts of the pooled splits (all of them without ``pool``), same root."""
        if self.pool is None:
            return dataset
        unknown = [s for s in self.pool if s not in dataset.splits]
        if unknown:
            raise UserInputError(
                f"{dataset.root}: protocol.pool names {', '.join(unknown)}, not a split here "
                f"(splits: {', '.join(dataset.splits)})"
            )
        keep = dataset.examples["split"].isin(self.pool)
        return PreparedDataset(
            dataset.examples[keep].reset_index(drop=True), dict(dataset.info), dataset.root
        )

    def view(self, dataset: PreparedDataset, fold: int | None) -> PreparedDataset:
        if fold is None or not 0 <= fold < self.folds:
            raise ValueError(f"fold {fold} of a {self.folds}-fold protocol")
        pooled = self.pooled(dataset)
        ids = pooled.examples["id"].astype(str).tolist()
        labels = pooled.examples["label"].astype(str).tolist()
        return fold_dataset(
            pooled, fold_of(ids, labels, self.folds, self.seed), fold, self.val_fraction, self.seed
        )


#: every protocol, told apart by ``kind``; new ones are added to this union only
Protocol = Annotated[SplitProtocol | KFoldProtocol, Field(discriminator="kind")]
PROTOCOL_KINDS: tuple[str, ...] = tuple(
    get_args(cls.model_fields["kind"].annotation)[0] for cls in get_args(get_args(Protocol)[0])
)


_ADAPTER: TypeAdapter[SplitProtocol | KFoldProtocol] = TypeAdapter(Protocol)


def parse_protocol(data: Mapping[str, Any]) -> SplitProtocol | KFoldProtocol:
    """A protocol from plain data (its ``kind`` picks the class)."""
    return _ADAPTER.validate_python(dict(data))


@dataclass(frozen=True)
class View:
    """One (fold of a) dataset a run trains and is tested on; ``fold`` is None for a split."""

    fold: int | None
    dataset: PreparedDataset


def views(protocol: SplitProtocol | KFoldProtocol, dataset: PreparedDataset) -> list[View]:
    """Every view of the dataset the protocol tests on, in fold order."""
    return [View(fold, protocol.view(dataset, fold)) for fold in protocol.fold_numbers()]


def fold_of(ids: list[str], labels: list[str], folds: int, seed: int) -> np.ndarray:
    """Each post's fold (0..folds-1), stratified by label: every fold holds its share of
    every class to within one post; independent of the posts' order."""
    ids_array = np.asarray(ids, dtype=object)
    labels_array = np.asarray(labels, dtype=object)
    out = np.empty(len(ids_array), dtype=np.int64)
    rng = np.random.default_rng(seed)
    start = 0  # each class's remainder starts where the last one's ended: folds stay even
    for label in sorted(set(labels_array.tolist())):
        members = np.flatnonzero(labels_array == label)
        members = rng.permutation(members[np.argsort(ids_array[members], kind="stable")])
        out[members] = (np.arange(len(members)) + start) % folds
        start += len(members)
    return out


def fold_dataset(
    dataset: PreparedDataset, folds: np.ndarray, fold: int, val_fraction: float, seed: int
) -> PreparedDataset:
    """The dataset with fold ``fold`` as test and the others as train + val (same root, so
    the feature cache is shared)."""
    examples = dataset.examples.copy()
    rest = folds != fold
    ids = examples["id"].astype(str).to_numpy()
    labels = examples["label"].astype(str).to_numpy()
    split = np.full(len(examples), "test", dtype=object)
    split[rest] = assign_splits(ids[rest], labels[rest], [1 - val_fraction, val_fraction], seed)
    examples["split"] = split
    folded = PreparedDataset(examples, {**dataset.info, "counts": {}}, dataset.root)
    folded.info["counts"] = {
        name: per for name, per in split_counts(folded).items() if name in RUN_SPLITS
    }
    if "val" not in folded.info["counts"]:
        raise UserInputError(
            f"{dataset.root}: fold {fold} leaves no validation post ({val_fraction:.0%} of "
            f"{int(rest.sum())} training posts, per class): use fewer folds or a larger "
            f"validation fraction"
        )
    return folded
