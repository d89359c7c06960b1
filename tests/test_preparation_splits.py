"""Stratified, seeded splits within one post of the target fractions per class."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from sentimodal.preparation.splits import assign_splits, parse_split, split_counts


def test_parse_split() -> None:
    assert parse_split("0.7,0.2,0.1") == [0.7, 0.2, 0.1]
    assert parse_split("0.8, 0.2") == [0.8, 0.2]
    assert parse_split("none") is None and parse_split(None) is None
    assert parse_split([0.5, 0.5]) == [0.5, 0.5]
    for bad in ("0.7,0.2", "a,b", "0.5,0.5,0.5,-0.5", "0.2,0.2,0.2,0.2,0.2", "1.2,-0.2"):
        with pytest.raises(ValueError):
            parse_split(bad)


def test_split_counts_stay_within_one_post() -> None:
    rng = random.Random(0)
    for _ in range(500):
        n = rng.randrange(0, 3000)
        cuts = sorted(rng.random() for _ in range(2))
        fractions = [cuts[0], cuts[1] - cuts[0], 1 - cuts[1]]
        counts = split_counts(n, fractions)
        assert sum(counts) == n
        assert all(abs(c - n * f) < 1 for c, f in zip(counts, fractions, strict=True))


def test_assignment_is_stratified_seeded_and_order_free() -> None:
    ids = [f"post{i}" for i in range(1000)]
    labels = ["positive"] * 617 + ["negative"] * 301 + ["neutral"] * 82
    splits = assign_splits(ids, labels, [0.7, 0.2, 0.1], seed=3)
    for label, n in Counter(labels).items():
        got = Counter(s for s, lab in zip(splits, labels, strict=True) if lab == label)
        for name, fraction in (("train", 0.7), ("val", 0.2), ("test", 0.1)):
            assert abs(got[name] - n * fraction) < 1
    # The same posts in another order land in the same splits.
    order = np.random.default_rng(1).permutation(len(ids))
    shuffled = assign_splits(
        [ids[i] for i in order], [labels[i] for i in order], [0.7, 0.2, 0.1], 3
    )
    assert dict(zip((ids[i] for i in order), shuffled, strict=True)) == dict(
        zip(ids, splits, strict=True)
    )
    # Shuffled, not cut in id order; and another seed gives another assignment.
    assert list(splits[:20]) != ["train"] * 20 or list(splits[600:617]) != ["test"] * 17
    assert list(assign_splits(ids, labels, [0.7, 0.2, 0.1], seed=4)) != list(splits)


def test_no_split_puts_everything_in_all() -> None:
    assert list(assign_splits(["a", "b"], ["x", "y"], None)) == ["all", "all"]
