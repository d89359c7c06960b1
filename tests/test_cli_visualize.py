"""`sentimodal visualize` on a small real MVSA-Single subset: pictures, page and numbers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sentimodal.analysis.embedding_space import VisualizeConfig
from sentimodal.interfaces.cli import app
from sentimodal.preparation.dataset import PreparedDataset, count_by_split, post_to_row
from sentimodal.sources.mvsa import read_mvsa
from sentimodal.sources.record import Post
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.run_config import RunConfig

LABELS = ["negative", "neutral", "positive"]
PER_LABEL = {"train": 40, "test": 20}


@pytest.fixture(scope="module")
def dataset(mvsa_root: Path, tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    """The first 60 posts of each label: 40 train, 20 test."""
    taken: Counter[str] = Counter()
    rows = []
    for record in read_mvsa(mvsa_root):
        if not isinstance(record, Post) or taken[record.label] >= 60:
            continue
        split = "train" if taken[record.label] < PER_LABEL["train"] else "test"
        taken[record.label] += 1
        rows.append(post_to_row(record, split))
        if all(taken[label] >= 60 for label in LABELS):
            break
    examples = pd.DataFrame(rows)
    counts = count_by_split(examples["split"].tolist(), examples["label"].tolist(), LABELS)
    root = tmp_path_factory.mktemp("mvsa")
    return PreparedDataset(examples, {"labels": LABELS, "counts": counts}).save(root)


def _model(dataset: PreparedDataset, head: str, directory: Path) -> Path:
    run = RunConfig(
        model="text",
        head=head,
        text_encoder="glove_mean",
        train={"epochs": 4, "patience": None},
        feature_workers=0,
    )
    SentimentModel(run).fit(dataset, progress=False).save(directory)
    return directory


@pytest.mark.parametrize("head", ["embedding", "softmax"])
def test_visualize_writes_map_page_and_cluster_numbers(dataset, head, tmp_path):
    model_dir = _model(dataset, head, tmp_path / "model")
    out = tmp_path / "map"
    result = CliRunner().invoke(
        app,
        ["visualize", str(model_dir), str(dataset.root), "--out", str(out),
         "--color-by", "label", "--name-by", "image_label", "--threads", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    png = out / "embedding_map.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size < 300_000
    page = (out / "embedding_map.html").read_text()
    assert page.count("<circle") == 60
    first_text = dataset.texts(dataset.split("test").head(1))[0][:40]
    assert first_text.split()[0] in page  # hover text of the posts is in the page
    assert "data:image/jpeg;base64," in page  # and thumbnails
    markdown = (out / "embedding_space.md").read_text()
    assert "silhouette" in markdown and "Grouped by `image_label`" in markdown
    what = "label-space vectors" if head == "embedding" else "penultimate features"
    assert what in markdown
    coordinates = pd.read_csv(out / "coordinates.csv")
    assert len(coordinates) == 60 and {"x", "y", "label", "image_label"} <= set(coordinates)
    assert VisualizeConfig.load(out / "config.yaml").name_by == "image_label"


def test_visualize_refuses_unknown_columns(dataset, tmp_path):
    model_dir = _model(dataset, "embedding", tmp_path / "model")
    for option in ("--color-by", "--name-by"):
        result = CliRunner().invoke(
            app,
            ["visualize", str(model_dir), str(dataset.root), "--out", str(tmp_path / "o"),
             option, "mood"],
        )  # fmt: skip
        assert result.exit_code == 2
        assert "no such column" in result.output
    empty = CliRunner().invoke(
        app,
        ["visualize", str(model_dir), str(dataset.root), "--out", str(tmp_path / "o"),
         "--name-by", "anp"],
    )  # fmt: skip
    assert empty.exit_code == 2 and "empty" in empty.output
