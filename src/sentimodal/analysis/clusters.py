"""How tight are groups (ANPs, labels, any column) in an embedding space, and which groups
blur into each other?

Numbers that belong next to a t-SNE picture: t-SNE distorts distances, so whether a group
really is a cluster is measured in the original space, by cosine.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import silhouette_samples

from sentimodal.analysis.report import markdown_table
from sentimodal.errors import UserInputError


def unit_rows(vectors: ArrayLike) -> np.ndarray:
    """Rows scaled to length 1, so dot products are cosines; zero rows have no direction."""
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"expected an (N, D) array, got shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1)
    zero = int((norms == 0).sum())
    if zero:
        raise UserInputError(f"{zero} of {len(matrix)} vectors are all zeros: cosine is undefined")
    return matrix / norms[:, None]


def cluster_coherence(
    vectors: ArrayLike, groups: ArrayLike, min_size: int = 2
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per group: mean cosine to its own centroid vs to the other groups', and silhouette.

    The own centroid of a member leaves that member out, so a small group is not rewarded
    for containing the point it is compared with, and own/other are measured alike.
    Groups with fewer than ``min_size`` members are left out and counted in the summary.
    Rows are sorted from the most to the least coherent group (by cosine silhouette).
    """
    if min_size < 2:
        raise ValueError("min_size must be at least 2 (a leave-one-out centroid needs two)")
    unit = unit_rows(vectors)
    names = pd.Series(list(np.asarray(groups, dtype=object))).astype(str).to_numpy()
    if len(names) != len(unit):
        raise ValueError(f"{len(names)} group names for {len(unit)} vectors")
    group_names, sizes = np.unique(names, return_counts=True)
    kept_names = group_names[sizes >= min_size]
    if len(kept_names) < 2:
        raise UserInputError(
            f"need at least two groups with {min_size}+ members to compare, got {len(kept_names)}"
        )
    kept = np.isin(names, kept_names)
    unit, names = unit[kept], names[kept]
    codes = np.searchsorted(kept_names, names)
    n_groups = len(kept_names)

    sums = np.zeros((n_groups, unit.shape[1]))
    np.add.at(sums, codes, unit)
    counts = np.bincount(codes, minlength=n_groups)
    centroids = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    to_centroids = unit @ centroids.T  # (N, G) cosine of each point to each group centroid

    rest = sums[codes] - unit  # own group without the point itself
    rest_norm = np.linalg.norm(rest, axis=1)
    own = np.einsum("ij,ij->i", unit, rest) / np.where(rest_norm > 0, rest_norm, 1.0)
    others = to_centroids.copy()
    others[np.arange(len(codes)), codes] = np.nan
    other_mean = np.nanmean(others, axis=1)
    silhouette = silhouette_samples(unit, codes, metric="cosine")

    rows = []
    for g, name in enumerate(kept_names):
        members = codes == g
        to_other_groups = to_centroids[members].mean(axis=0)
        to_other_groups[g] = -np.inf
        nearest = int(np.argmax(to_other_groups))
        rows.append(
            {
                "group": name,
                "n": int(counts[g]),
                "own_cosine": float(own[members].mean()),
                "other_cosine": float(other_mean[members].mean()),
                "margin": float(own[members].mean() - other_mean[members].mean()),
                "nearest_group": kept_names[nearest],
                "nearest_cosine": float(to_other_groups[nearest]),
                "silhouette": float(silhouette[members].mean()),
            }
        )
    table = pd.DataFrame(rows).sort_values(["silhouette", "group"], ascending=[False, True])
    table = table.reset_index(drop=True)
    top = min(3, n_groups // 2) or 1
    summary: dict[str, Any] = {
        "points": int(len(unit)),
        "groups": n_groups,
        "points_left_out": int((~kept).sum()),
        "silhouette": float(silhouette.mean()),
        "own_cosine": float(own.mean()),
        "other_cosine": float(other_mean.mean()),
        "most_coherent": table["group"].head(top).tolist(),
        "least_coherent": table["group"].tail(top).iloc[::-1].tolist(),
    }
    return table, summary


def cluster_markdown(table: pd.DataFrame, summary: dict[str, Any], top: int = 10) -> str:
    """A summary sentence and the most/least coherent groups as Markdown tables."""
    lines = [
        f"{summary['groups']} groups, {summary['points']} points "
        f"({summary['points_left_out']} left out in groups too small to compare). "
        f"Overall cosine silhouette **{summary['silhouette']:.3f}**; mean cosine to the own "
        f"group's centroid {summary['own_cosine']:.3f} vs {summary['other_cosine']:.3f} to "
        "the other groups' centroids.",
        "",
        f"Most coherent: {', '.join(summary['most_coherent'])}. "
        f"Least coherent: {', '.join(summary['least_coherent'])}.",
        "",
    ]
    if len(table) <= 2 * top:
        lines.append(markdown_table(table))
    else:
        lines += [
            f"**The {top} most coherent groups**",
            "",
            markdown_table(table.head(top)),
            "",
            f"**The {top} least coherent groups**",
            "",
            markdown_table(table.tail(top)),
        ]
    return "\n".join(lines)
