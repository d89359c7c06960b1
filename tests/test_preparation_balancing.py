"""Seeded downsampling to the smallest class."""

from __future__ import annotations

from collections import Counter

import numpy as np

from sentimodal.preparation.balancing import downsample_to_smallest


def test_every_class_keeps_the_smallest_count() -> None:
    ids = [str(i) for i in range(100)]
    labels = ["positive"] * 60 + ["negative"] * 30 + ["neutral"] * 10
    keep = downsample_to_smallest(ids, labels, seed=0)
    assert Counter(np.asarray(labels)[keep]) == {"positive": 10, "negative": 10, "neutral": 10}


def test_choice_is_seeded_and_independent_of_order() -> None:
    ids = [str(i) for i in range(50)]
    labels = ["a"] * 35 + ["b"] * 15
    kept = set(np.asarray(ids)[downsample_to_smallest(ids, labels, seed=7)])
    reversed_keep = downsample_to_smallest(ids[::-1], labels[::-1], seed=7)
    assert set(np.asarray(ids[::-1])[reversed_keep]) == kept
    other = set(np.asarray(ids)[downsample_to_smallest(ids, labels, seed=8)])
    assert other != kept and len(other) == len(kept) == 30


def test_empty_input() -> None:
    assert downsample_to_smallest([], [], seed=0).shape == (0,)
