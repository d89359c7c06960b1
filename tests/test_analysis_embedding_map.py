"""The t-SNE map: real GloVe ANP vectors keep their groups, names do not overlap, and the HTML
page is self-contained, escaped and shows a post when a point is hovered."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from threadpoolctl import threadpool_limits

from sentimodal.analysis.clusters import cluster_coherence
from sentimodal.analysis.embedding_map import (
    default_perplexity,
    embedding_map_figure,
    embedding_map_html,
    place_labels,
    tight_names,
    tsne_coordinates,
)
from sentimodal.analysis.plots import figure_to_png
from sentimodal.errors import UserInputError
from test_analysis_clusters import anp_vectors, largest_adjectives  # noqa: F401 (fixture)
from test_analysis_report import CHROMIUM, assert_not_blank, check_html, chromium, screenshot

HOSTILE = "</script><b>bold</b> & done"


def one_thread():
    """t-SNE's OpenMP threads thrash on a small, shared CI machine; one thread is faster."""
    return threadpool_limits(limits=1)


@pytest.fixture(scope="module")
def anp_map(anp_vectors) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:  # noqa: F811
    """The ~370 ANPs of the 5 commonest adjectives, their vectors and t-SNE coordinates."""
    anps, vectors = anp_vectors
    chosen = largest_adjectives(anps, 5)
    subset, subset_vectors = anps[chosen].reset_index(drop=True), vectors[chosen]
    assert len(subset) <= 500
    with one_thread():
        return subset, subset_vectors, tsne_coordinates(subset_vectors, seed=0)


def test_perplexity_adapts_to_small_sets() -> None:
    assert default_perplexity(1000) == 30.0
    assert default_perplexity(31) == 10.0
    assert default_perplexity(4) == 2.0
    with pytest.raises(UserInputError, match="at least 4"):
        tsne_coordinates(np.eye(3))


def test_tsne_is_seeded() -> None:
    vectors = np.random.default_rng(1).normal(size=(40, 8))
    with one_thread():
        first = tsne_coordinates(vectors, seed=3, max_iter=250)
        assert np.allclose(first, tsne_coordinates(vectors, seed=3, max_iter=250))
    assert first.shape == (40, 2)


def test_tsne_keeps_adjective_groups_together(anp_map) -> None:
    anps, _, coords = anp_map
    groups = anps["adjective"].to_numpy()
    distances = np.linalg.norm(coords[:, None] - coords[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    neighbours = np.argsort(distances, axis=1)[:, :5]
    same_group = (groups[neighbours] == groups[:, None]).mean()
    assert same_group > 0.8  # chance is about 1/5


def test_bold_names_are_tighter_than_the_median_shown_group() -> None:
    tightness = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6, "e": 0.1, "f": 0.0}
    assert tight_names(["a", "b", "c", "d"], tightness) == {"a", "b"}
    assert tight_names(["c", "e", "f"], tightness) == {"c"}
    assert tight_names(["a", "b"], None) == set()


def test_place_labels_never_overlaps() -> None:
    anchors = np.array([[100.0, 100.0]] * 6 + [[400.0, 100.0]])
    sizes = np.array([[60.0, 14.0]] * 7)
    offsets = place_labels(anchors, sizes, (0.0, 0.0, 500.0, 200.0))
    assert offsets[0] == (0.0, 0.0) and offsets[6] == (0.0, 0.0)
    boxes = [
        (a[0] + o[0] - 30, a[1] + o[1] - 7, a[0] + o[0] + 30, a[1] + o[1] + 7)
        for a, o in zip(anchors, offsets, strict=True)
        if o is not None
    ]
    assert len(boxes) == 7
    for i, a in enumerate(boxes):
        assert a[0] >= 0 and a[2] <= 500 and a[1] >= 0 and a[3] <= 200
        for b in boxes[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
    crowded = place_labels(np.array([[40.0, 10.0]] * 3), sizes[:3], (0.0, 0.0, 80.0, 20.0))
    assert crowded[0] is not None and crowded[1:] == [None, None]


def test_png_names_groups_in_bold_without_overlap(anp_map) -> None:
    anps, vectors, coords = anp_map
    table, _ = cluster_coherence(vectors, anps["adjective"])
    tightness = dict(zip(table["group"], table["own_cosine"], strict=True))
    tight = set(table.nlargest(2, "own_cosine")["group"])  # above the median of 5 names
    halves = np.where(anps["score"] > anps["score"].median(), "upper half", "lower half")
    figure = embedding_map_figure(
        coords, halves, anps["adjective"], tightness, title="ANPs", colour_title="MVSO score"
    )
    ax = figure.axes[0]
    names = {t.get_text(): t for t in ax.texts}
    assert set(names) == set(anps["adjective"])
    assert {n for n, t in names.items() if t.get_fontweight() == "bold"} == tight
    renderer = figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in names.values()]
    for i, a in enumerate(boxes):
        assert all(not a.overlaps(b) for b in boxes[i + 1 :])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [f"{s} (n={(halves == s).sum()})" for s in ("lower half", "upper half")]
    with Image.open(io.BytesIO(figure_to_png(figure))) as picture:
        assert picture.width > 1000
        assert_not_blank(picture)


@pytest.fixture
def mvsa_posts(mvsa_root: Path, tmp_path: Path) -> pd.DataFrame:
    labels = pd.read_csv(mvsa_root / "labelResultAll.txt", sep="\t").head(60)
    posts = pd.DataFrame(
        {
            "id": labels["ID"].astype(str),
            "label": labels["text,image"].str.split(",").str[0],
        }
    )
    posts["text"] = [
        (mvsa_root / "data" / f"{i}.txt").read_bytes().decode("utf-8", "replace")
        for i in posts["id"]
    ]
    posts["image"] = [str(mvsa_root / "data" / f"{i}.jpg") for i in posts["id"]]
    posts.loc[0, "text"] = HOSTILE
    posts.loc[1, "image"] = str(tmp_path / "missing.jpg")
    return posts


def interactive_page(posts: pd.DataFrame, max_thumbnails: int) -> str:
    coords = np.random.default_rng(0).normal(size=(len(posts), 2))
    return embedding_map_html(
        coords,
        posts["label"],
        posts["text"].tolist(),
        posts["image"].tolist(),
        names=np.where(np.arange(len(posts)) % 2, "odd <group>", "even"),
        tightness={"even": 0.9, "odd <group>": 0.1, "not shown": 0.0},
        max_thumbnails=max_thumbnails,
        title="MVSA posts",
    )


def embedded_json(page: str, element: str) -> object:
    match = re.search(rf'<script type="application/json" id="{element}">(.*?)</script>', page)
    assert match, element
    return json.loads(match.group(1))


def test_html_is_self_contained_and_escaped(mvsa_posts: pd.DataFrame) -> None:
    page = interactive_page(mvsa_posts, max_thumbnails=20)
    check_html(page)
    points = embedded_json(page, "points")
    thumbs = embedded_json(page, "thumbs")
    assert len(points) == len(mvsa_posts) and len(thumbs) == 20
    assert points[0]["t"] == HOSTILE  # escaped in the page, intact once parsed
    assert points[1]["m"] == -1  # the missing image has no thumbnail
    assert sorted(p["m"] for p in points if p["m"] >= 0) == list(range(20))
    assert page.count("<circle ") == len(mvsa_posts)
    assert "odd &lt;group&gt;</text>" in page and 'class="name tight"' in page
    assert "http" not in page.split('<script type="application/json"')[0]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_hovering_a_point_shows_its_post(mvsa_posts: pd.DataFrame, tmp_path: Path) -> None:
    page = interactive_page(mvsa_posts, max_thumbnails=len(mvsa_posts))
    hover = (
        "<script>const dot = document.querySelector('circle[data-i=\"2\"]');"
        "const box = dot.getBoundingClientRect();"
        "dot.dispatchEvent(new MouseEvent('mousemove', {bubbles: true, clientX: box.x,"
        " clientY: box.y}));</script></body>"
    )
    path = tmp_path / "map.html"
    path.write_text(page.replace("</body>", hover), encoding="utf-8")
    dom = chromium(["--dump-dom", "--virtual-time-budget=3000", path.as_uri()], tmp_path).stdout
    tip = re.search(r'<div id="tip"[^>]*>(.*?)</div></div>', dom, re.S)
    assert tip, dom[-2000:]
    assert "hidden" not in tip.group(0).split(">", 1)[0]
    assert mvsa_posts["text"][2].split()[0] in tip.group(1)
    assert re.search(r'<img alt="" src="data:image/jpeg;base64,', tip.group(1))
    assert_not_blank(screenshot(path, tmp_path, size="1200,800"))
