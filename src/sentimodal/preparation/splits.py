"""Train / validation / test splits: shuffled, stratified by label, seeded.

Each class is cut by the largest-remainder rule, so every split holds its target share of
every class to within one post. Posts are ordered by id before the seeded shuffle, so the
assignment does not depend on the order the source was read in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from sentimodal.errors import UserInputError

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


def posts_for_every_split(fractions: Sequence[float]) -> int:
    """The fewest posts a class needs for one in every split of non-zero fraction."""
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    # n >= 1/f gives every split a post; the largest-remainder rule may need fewer
    enough = math.ceil(1 / min(fractions[i] for i in wanted))
    if enough > 1_000_000:
        return enough
    n = 1
    while n < enough and any(split_counts(n, fractions)[i] == 0 for i in wanted):
        n += 1
    return n


def thin_classes(sizes: Mapping[str, int], fractions: Sequence[float] | None) -> dict[str, int]:
    """{label: posts} of the classes too small for ``fractions``: at least one split of
    non-zero fraction would get none of their posts (one split "all" needs one post)."""
    need = 1 if fractions is None else posts_for_every_split(fractions)
    return {label: n for label, n in sizes.items() if n < need}


def check_class_sizes(sizes: Mapping[str, int], fractions: Sequence[float] | None) -> str | None:
    """Refuse, before the dataset is written, a label set too large for its posts: one where
    every class is too small to reach some split that the posts, as one class, would fill,
    so that split is empty (nothing to validate or test on) only because of the classes.
    Classes too small for some split are a warning, returned as one line (None when there are
    none); a dataset too small for a split at all is left to its counts."""
    if fractions is None or not sizes:
        return None
    names = split_names(fractions)
    per_class = {label: split_counts(n, fractions) for label, n in sizes.items()}
    spec = ",".join(f"{f:g}" for f in fractions)
    need = posts_for_every_split(fractions)
    as_one = split_counts(sum(sizes.values()), fractions)
    for i, name in enumerate(names):
        if as_one[i] and not any(counts[i] for counts in per_class.values()):
            largest = max(sizes.values())
            posts = f"{largest} post{'s' if largest != 1 else ''}"
            raise UserInputError(
                f"split {name!r} would be empty: the {len(sizes):,} classes hold at most "
                f"{posts} each, and a class needs {need} for one in each split {spec}; "
                "drop or merge rare classes (--labels-keep, --label-map), or use --split none"
            )
    thin = thin_classes(sizes, fractions)
    if not thin or min(as_one[i] for i, f in enumerate(fractions) if f > 0) == 0:
        return None
    label = min(thin, key=lambda x: (thin[x], x))
    lacking = [names[i] for i, n in enumerate(per_class[label]) if fractions[i] > 0 and n == 0]
    return (
        f"{len(thin):,} of {len(sizes):,} classes have fewer than the {need} posts a class "
        f"needs for one in each split {spec} (e.g. {label!r}: {thin[label]}, none in "
        f"{' and '.join(lacking)}): they cannot be scored there"
    )


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
