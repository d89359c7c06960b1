"""Train / validation / test splits: shuffled, stratified by label, seeded.

Each class is cut by the largest-remainder rule, so every split holds its target share of
every class to within one post. Posts are ordered by id before the seeded shuffle, so the
assignment does not depend on the order the source was read in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
ALL_SPLIT = "all"
DEFAULT_FRACTIONS: tuple[float, ...] = (0.7, 0.2, 0.1)


def parse_split(spec: str | Sequence[float] | None) -> list[float] | None:
    """``"0.7,0.2,0.1"`` -> fractions; ``"none"`` (or None) -> no split (one split ``all``)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec.strip().lower() in ("none", "all", ""):
            return None
        try:
            fractions = [float(part) for part in spec.split(",")]
        except ValueError:
            raise ValueError(
                f"split {spec!r} is not 'none' or fractions like 0.7,0.2,0.1"
            ) from None
    else:
        fractions = [float(part) for part in spec]
    if not 1 <= len(fractions) <= len(SPLIT_NAMES):
        raise ValueError(f"split takes 1 to {len(SPLIT_NAMES)} fractions (train,val,test)")
    if any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    return fractions


def split_names(fractions: Sequence[float] | None) -> list[str]:
    """The names of the splits a fraction list makes."""
    return [ALL_SPLIT] if fractions is None else list(SPLIT_NAMES[: len(fractions)])


def split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """``n`` posts cut by the largest-remainder rule: each count within one of ``n * f``."""
    exact = [n * f for f in fractions]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


def assign_splits(
    ids: Sequence[str],
    labels: Sequence[str],
    fractions: Sequence[float] | None = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> np.ndarray:
    """The split name of each post (aligned with ``ids``), stratified by ``labels``."""
    ids_array = np.asarray(ids, dtype=object)
    if fractions is None:
        return np.full(len(ids_array), ALL_SPLIT, dtype=object)
    groups = label_groups(ids_array, labels)
    codes = assign_split_codes(groups, len(ids_array), fractions, seed)
    return np.asarray(split_names(fractions), dtype=object)[codes]


def label_groups(ids: Sequence[str], labels: Sequence[str]) -> list[np.ndarray]:
    """The positions of each label's posts ordered by id, one array per label in sorted label
    order: all that seeded balancing and splitting depend on."""
    ids_array = np.asarray(ids, dtype=object)
    labels_array = np.asarray(labels, dtype=object)
    groups = []
    for label in sorted(set(labels_array.tolist())):
        members = np.flatnonzero(labels_array == label)
        groups.append(members[np.argsort(ids_array[members], kind="stable")])
    return groups


def assign_split_codes(
    groups: Iterable[np.ndarray], size: int, fractions: Sequence[float], seed: int = 0
) -> np.ndarray:
    """Each position's split as an index into :func:`split_names` (-1 where no group holds
    it), from :func:`label_groups`-shaped groups, which may be read from disk instead."""
    codes = np.full(size, -1, dtype=np.int8)
    rng = np.random.default_rng(seed)
    for members in groups:
        shuffled = rng.permutation(members)
        start = 0
        for code, count in enumerate(split_counts(len(shuffled), fractions)):
            codes[shuffled[start : start + count]] = code
            start += count
    return codes
