"""Cross-validation folds, the generalised zero-shot figures and KL, on crafted and real data."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sentimodal.analysis.experiment.protocol import fold_of
from sentimodal.analysis.zeroshot import (
    gzsl_chance,
    gzsl_metrics,
    stacking_bias,
    unseen_sets,
    with_bias,
)
from sentimodal.errors import UserInputError
from sentimodal.evaluation.metrics import kl_divergence
from sentimodal.interfaces.cli import app

runner = CliRunner()


def test_folds_are_stratified_seeded_and_cover_every_post() -> None:
    ids = [str(i) for i in range(53)]
    labels = ["a"] * 30 + ["b"] * 20 + ["c"] * 3
    folds = fold_of(ids, labels, 5, seed=0)
    assert sorted(Counter(folds).values()) == [10, 10, 11, 11, 11]
    for label in set(labels):
        per_fold = Counter(folds[np.asarray(labels) == label])
        assert max(per_fold.values()) - min(per_fold.get(f, 0) for f in range(5)) <= 1, label
    assert (fold_of(ids[::-1], labels[::-1], 5, 0)[::-1] == folds).all()  # order-free
    assert not (fold_of(ids, labels, 5, 1) == folds).all()


def test_gzsl_figures_by_hand() -> None:
    labels = ["a", "b", "c", "d"]
    truth = np.array(["a", "a", "b", "c", "c", "d"])
    scores = np.array(
        [
            [0.9, 0.1, 0.0, 0.0],  # a -> a
            [0.1, 0.9, 0.0, 0.5],  # a -> b
            [0.0, 0.9, 0.0, 0.0],  # b -> b
            [0.5, 0.0, 0.4, 0.1],  # c -> a (among unseen c, d: c)
            [0.0, 0.0, 0.7, 0.1],  # c -> c
            [0.0, 0.3, 0.4, 0.2],  # d -> c (among unseen: c)
        ]
    )
    figures = gzsl_metrics(truth, scores, labels, ["c", "d"])
    assert figures["seen_accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    assert figures["unseen_accuracy"] == pytest.approx((0.5 + 0.0) / 2)
    assert figures["harmonic_mean"] == pytest.approx(2 * 0.75 * 0.25 / (0.75 + 0.25))
    assert figures["zsl_accuracy"] == pytest.approx((1.0 + 0.0) / 2)
    assert gzsl_chance(labels, ["c", "d"])["zsl_accuracy"] == 0.5
    assert len(unseen_sets([str(i) for i in range(6)], 2)) == 15
    with pytest.raises(UserInputError, match="fewer than two seen"):
        unseen_sets(["a", "b", "c"], 2)


def test_calibrated_stacking_uses_seen_posts_only() -> None:
    labels = ["a", "b", "u"]
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(300, 3))
    scores[:, 2] -= 2.0  # the unseen label starts far behind
    truth = np.array(["a", "b", "u"] * 100)
    bias = stacking_bias(scores, truth, labels, ["u"])
    shifted = with_bias(scores, labels, ["u"], bias)
    seen = truth != "u"
    sent = (shifted[seen].argmax(axis=1) == 2).mean()
    assert sent == pytest.approx(1 / 3, abs=0.01)  # the share a uniform prior expects
    scores[~seen, 2] += 100.0  # unseen posts never move the bias: it is label-free
    assert stacking_bias(scores, truth, labels, ["u"]) == bias


def test_kl_divergence() -> None:
    target = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    assert kl_divergence(target, target) == pytest.approx(0.0, abs=1e-9)
    predicted = np.array([[0.25, 0.75, 0.0], [0.5, 0.25, 0.25]])
    expected = (0.5 * np.log(2) + 0.5 * np.log(0.5 / 0.75) + np.log(2)) / 2
    assert kl_divergence(target, predicted) == pytest.approx(expected)


def test_crossval_command_on_emotion6_images(tmp_path: Path, shared_data: Path) -> None:
    root = shared_data / "emotion6" / "images"
    rows = [
        {"image": str(path), "label": folder.name}
        for folder in sorted(root.iterdir())
        for path in sorted(folder.glob("*.jpg"), key=lambda p: int(p.stem))[:10]
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "e6.csv", index=False)
    data, out = tmp_path / "data", tmp_path / "cv"
    prepare = ["prepare", "table", str(tmp_path / "e6.csv"), "--out", str(data), "--quiet"]
    result = runner.invoke(app, [*prepare, "--image-column", "image", "--label-column", "label"])
    assert result.exit_code == 0, result.output
    args = ["crossval", str(data), "--out", str(out), "--image-encoders", "pixels32"]
    args += ["--folds", "3", "--epochs", "2", "--c-values", "1", "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    folds = pd.read_csv(out / "folds.csv")
    assert set(folds["model"]) == {
        "majority class",
        "logistic regression (pixels32)",
        "softmax head (pixels32)",
        "embedding head (pixels32)",
    }
    assert (folds.groupby("model").size() == 3).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"].startswith("sentimodal crossval")
    majority = next(r for r in summary["rows"] if r["model"] == "majority class")
    assert majority["accuracy"] < 0.25  # six balanced classes: about 1/6
    assert "Command: `sentimodal crossval" in (out / "report.md").read_text()
    # too few posts for a validation set in a fold: one clear line, not a traceback
    # (two folds leave 5 posts per class to train on: a tenth of that rounds to none)
    result = runner.invoke(app, [*args[:4], "--folds", "2", "--no-logreg", "--quiet"])
    assert result.exit_code == 2 and "leaves no validation post" in result.stderr
