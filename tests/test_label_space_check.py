"""The ANP label-space check on a real subset of the MVSO English ANPs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sentimodal.analysis.label_space_check import (
    AnpCheckConfig,
    agreement,
    model_scores,
    pole_scores,
    read_anp_scores,
    run_anp_check,
)
from sentimodal.errors import UserInputError
from sentimodal.interfaces.cli import app
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.run_config import RunConfig

N_SUBSET = 295


@pytest.fixture(scope="module")
def anp_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every 15th MVSO ANP (the file is sorted by nothing in particular): 295 phrases."""
    lines = (shared_data / "ontologies" / "mvso_english_anp_sentiment.csv").read_text()
    chosen = lines.splitlines()[::15]
    path = tmp_path_factory.mktemp("anp") / "anps.csv"
    path.write_text("\n".join(chosen) + "\n")
    return path


def test_read_anp_scores(anp_subset: Path, tmp_path: Path):
    anps = read_anp_scores(anp_subset)
    assert len(anps) == N_SUBSET
    assert list(anps.columns) == ["anp", "phrase", "score"]
    assert all(" " in p and "_" not in p for p in anps["phrase"].head(20))
    bad = tmp_path / "bad.csv"
    bad.write_text("nice_smile,2.0\nbroken_row\n")
    with pytest.raises(UserInputError, match="bad.csv:2"):
        read_anp_scores(bad)
    with pytest.raises(UserInputError, match="not found"):
        read_anp_scores(tmp_path / "absent.csv")


def test_pole_scores_and_agreement_on_crafted_vectors():
    positive, negative = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    vectors = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [0.0, 0.0]])
    scores = pole_scores(vectors, positive, negative)
    np.testing.assert_allclose(scores[:3], [1.0, -1.0, 0.0], atol=1e-12)
    assert np.isnan(scores[3])
    predicted = np.array([0.5, 0.2, 0.1, -0.3, np.nan])
    truth = np.array([1.0, 2.0, -1.0, -2.0, 1.0])
    result = agreement(predicted, truth)
    assert result["n"] == 4 and result["n_unscored"] == 1
    assert result["sign_agreement"] == pytest.approx(0.75)
    assert result["balanced_sign_agreement"] == pytest.approx((1.0 + 0.5) / 2)
    assert result["spearman"] == pytest.approx(0.8)


@pytest.mark.parametrize("source", ["glove_6b_50d", pytest.param("minilm", marks=pytest.mark.slow)])
def test_label_spaces_rank_real_anps_with_mvso(anp_subset: Path, source: str):
    table, scores = run_anp_check(AnpCheckConfig(anp_scores=anp_subset, sources=[source]))
    assert len(table) == 2  # 2 pole pairs
    assert len(scores) == N_SUBSET
    # the space knows sentiment words: a clear positive rank correlation on real ANPs
    assert (table["spearman"] > 0.15).all(), table
    assert (table["n"] > 0.95 * N_SUBSET).all()
    assert table["sign_agreement"].between(0, 1).all()


def test_trained_text_model_scores_phrases(anp_subset: Path, mvsa_root: Path, tmp_path: Path):
    texts, labels = [], []
    for line in (mvsa_root / "labelResultAll.txt").read_text().splitlines()[1:400]:
        post, pair = line.split("\t")
        text_label, _ = pair.split(",")
        if text_label != "neutral":
            raw = (mvsa_root / "data" / f"{post}.txt").read_bytes()
            texts.append(raw.decode("utf-8", "replace"))
            labels.append(text_label)
    frame = pd.DataFrame({"text": texts, "label": labels})
    run = RunConfig(
        model="text",
        text_encoder="glove_mean",
        train={"epochs": 5, "patience": None},
        feature_workers=0,
    )
    model = SentimentModel(run).fit(frame, image_column=None, work_dir=tmp_path, progress=False)
    scores, kind = model_scores(model, ["nice smile", "infinite sadness", "old house"])
    assert kind == "probability"
    assert scores.shape == (3,) and np.all(np.abs(scores) <= 1.0)
    model_dir = model.save(tmp_path / "model")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["zeroshot", "anp", "--anp-scores", str(anp_subset), "--model", str(model_dir),
         "--sources", "glove_6b_50d", "--poles", "good/bad", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert "trained text model (softmax head)" in report
    assert "zeroshot anp --anp-scores" in report
    written = pd.read_csv(out / "anp_scores.csv")
    assert {"anp", "score", "glove_6b_50d:good-bad", "model"} <= set(written.columns)
    assert AnpCheckConfig.load(out / "config.yaml").poles == [("good", "bad")]


def test_anp_cli_refuses_bad_poles(anp_subset: Path, tmp_path: Path):
    result = CliRunner().invoke(
        app,
        ["zeroshot", "anp", "--anp-scores", str(anp_subset), "--poles", "good",
         "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "POSITIVE/NEGATIVE" in result.output
