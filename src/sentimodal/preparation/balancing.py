"""Class balancing by seeded downsampling: every class keeps as many posts as the smallest.

The choice depends only on the (id, label) pairs and the seed, never on the order the posts
were read in, so a rerun over the same data keeps the same posts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sentimodal.preparation.splits import label_groups


def downsample_to_smallest(ids: Sequence[str], labels: Sequence[str], seed: int = 0) -> np.ndarray:
    """A boolean mask (aligned with ``ids``) of the posts kept, the same number per label."""
    return downsample_groups(label_groups(ids, labels), len(ids), seed)


def downsample_groups(groups: Sequence[np.ndarray], size: int, seed: int = 0) -> np.ndarray:
    """The same from :func:`~sentimodal.preparation.splits.label_groups`-shaped groups (each
    label's positions ordered by id, labels sorted), which may be read from disk instead."""
    keep = np.zeros(size, dtype=bool)
    if not groups:
        return keep
    quota = min(len(members) for members in groups)
    rng = np.random.default_rng(seed)
    for members in groups:
        keep[rng.permutation(members)[:quota]] = True
    return keep
