"""Class balancing by seeded downsampling: every class keeps as many posts as the smallest.

The choice depends only on the (id, label) pairs and the seed, never on the order the posts
were read in, so a rerun over the same data keeps the same posts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def downsample_to_smallest(ids: Sequence[str], labels: Sequence[str], seed: int = 0) -> np.ndarray:
    """A boolean mask (aligned with ``ids``) of the posts kept, the same number per label."""
    ids_array = np.asarray(ids, dtype=object)
    labels_array = np.asarray(labels, dtype=object)
    keep = np.zeros(len(ids_array), dtype=bool)
    if len(ids_array) == 0:
        return keep
    classes = sorted(set(labels_array.tolist()))
    quota = min(int(np.sum(labels_array == label)) for label in classes)
    rng = np.random.default_rng(seed)
    for label in classes:
        members = np.flatnonzero(labels_array == label)
        members = members[np.argsort(ids_array[members], kind="stable")]
        keep[rng.permutation(members)[:quota]] = True
    return keep
