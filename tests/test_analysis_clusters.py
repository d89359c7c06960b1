"""Cluster numbers: exact on a hand-made space, meaningful on GloVe vectors of MVSO ANPs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentimodal.analysis.clusters import cluster_coherence, cluster_markdown
from sentimodal.errors import UserInputError


@pytest.fixture(scope="session")
def anp_vectors(shared_data: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """MVSO English ANPs and the mean GloVe vector of their two words (real vectors)."""
    resources = pytest.importorskip("sentimodal.features.resources")
    glove = resources.glove_table()
    anps = pd.read_csv(
        shared_data / "ontologies" / "mvso_english_anp_sentiment.csv",
        header=None,
        names=["anp", "score"],
    )
    anps["adjective"] = anps["anp"].str.split("_").str[0]
    vectors = np.stack([glove.mean_vector(anp.split("_")) for anp in anps["anp"]])
    known = np.linalg.norm(vectors, axis=1) > 0
    return anps[known].reset_index(drop=True), vectors[known]


def largest_adjectives(anps: pd.DataFrame, count: int) -> np.ndarray:
    return anps["adjective"].isin(anps["adjective"].value_counts().head(count).index).to_numpy()


def test_exact_numbers_on_separated_groups() -> None:
    vectors = np.array([[1, 0], [2, 0], [0, 1], [0, 3], [1, 1]], dtype=float)
    table, summary = cluster_coherence(vectors, ["a", "a", "b", "b", "c"])
    rows = table.set_index("group")
    assert rows["own_cosine"].tolist() == pytest.approx([1.0, 1.0])
    assert rows["other_cosine"].tolist() == pytest.approx([0.0, 0.0])
    assert rows["silhouette"].tolist() == pytest.approx([1.0, 1.0])
    assert rows.loc["a", "nearest_group"] == "b"
    assert summary["points_left_out"] == 1  # "c" has one member
    assert summary["silhouette"] == pytest.approx(1.0)


def test_own_centroid_leaves_the_point_out() -> None:
    # Two members at 90 degrees: each one's own centroid is the other one, cosine 0.
    vectors = np.array([[1, 0], [0, 1], [-1, 0], [-1, 0.01]], dtype=float)
    table, _ = cluster_coherence(vectors, ["a", "a", "b", "b"])
    assert table.set_index("group").loc["a", "own_cosine"] == pytest.approx(0.0, abs=1e-9)


def test_adjective_groups_are_tighter_than_shuffled(anp_vectors) -> None:
    anps, vectors = anp_vectors
    chosen = largest_adjectives(anps, 8)
    table, summary = cluster_coherence(vectors[chosen], anps["adjective"][chosen])
    assert summary["groups"] == 8
    assert (table["own_cosine"] > table["other_cosine"] + 0.15).all()
    assert summary["silhouette"] > 0.2
    shuffled = np.random.default_rng(0).permutation(anps["adjective"][chosen].to_numpy())
    _, control = cluster_coherence(vectors[chosen], shuffled)
    assert abs(control["own_cosine"] - control["other_cosine"]) < 0.01
    assert control["silhouette"] < 0.0


def test_strongly_polar_anps_group_by_sign(anp_vectors) -> None:
    anps, vectors = anp_vectors
    strong = (anps["score"].abs() > 1).to_numpy()
    signs = np.where(anps["score"][strong] > 0, "positive", "negative")
    table, summary = cluster_coherence(vectors[strong], signs)
    assert (table["own_cosine"] > table["other_cosine"]).all()
    assert summary["silhouette"] > 0.1


def test_markdown_shows_most_and_least_coherent(anp_vectors) -> None:
    anps, vectors = anp_vectors
    chosen = largest_adjectives(anps, 30)
    table, summary = cluster_coherence(vectors[chosen], anps["adjective"][chosen])
    text = cluster_markdown(table, summary, top=5)
    assert f"Overall cosine silhouette **{summary['silhouette']:.3f}**" in text
    assert text.count("\n| ") == 2 * (2 + 5)  # two tables: header, rule, five rows
    assert f"| {table['group'].iloc[0]} |" in text and f"| {table['group'].iloc[-1]} |" in text


def test_zero_vectors_are_refused() -> None:
    with pytest.raises(UserInputError, match="all zeros"):
        cluster_coherence(np.array([[0.0, 0.0], [1, 0], [1, 1], [0, 1]]), list("aabb"))
