"""Experiment protocols: k folds of a spec's runs, branch scores, hidden modalities, out-of-fold
scores, and baselines per fold, on the embedded sample with cheap encoders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sentimodal.analysis.experiment import (
    PROTOCOL_KINDS,
    SCORES_FILE,
    ExperimentSpec,
    KFoldProtocol,
    SplitProtocol,
    load_spec,
    run_experiment,
)
from sentimodal.analysis.experiment.protocol import fold_of, parse_protocol
from sentimodal.analysis.experiment.scoring import ScoresConfig, hide, variants
from sentimodal.errors import UserInputError
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path

CHEAP_BASE = {
    "text_encoder": "glove_mean",
    "image_encoder": "pixels32",
    "feature_workers": 0,
    "train": {"epochs": 1, "patience": None},
}
FOLDS = 3


@pytest.fixture(scope="module")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    out = tmp_path_factory.mktemp("sample") / "dataset"
    return prepare("mvsa", sample_path(), out, progress=False)


def cv_spec(**changes: object) -> ExperimentSpec:
    data = {
        "name": "cv",
        "base": CHEAP_BASE,
        "grid": {"model": ["text", "late"]},
        "seeds": [0],
        "protocol": {"kind": "kfold", "folds": FOLDS, "pool": ["train", "val"]},
        "scores": {"branches": True, "hide": ["image", "text"], "out_of_fold": True},
        "baselines": ["majority", {"name": "logreg", "text_encoder": None}],
        "baseline_options": {"image_encoder": "pixels32", "c_values": [1.0]},
        **changes,
    }
    return ExperimentSpec.model_validate(data)


def test_protocol_kinds_come_from_the_union_and_round_trip() -> None:
    assert PROTOCOL_KINDS == ("split", "kfold")
    spec = cv_spec()
    assert isinstance(spec.protocol, KFoldProtocol) and spec.protocol.folds == FOLDS
    assert ExperimentSpec.from_yaml(spec.to_yaml()) == spec
    assert ExperimentSpec.from_json(spec.to_json()) == spec
    assert isinstance(ExperimentSpec(name="plain").protocol, SplitProtocol)
    assert parse_protocol({"kind": "kfold"}).fold_numbers() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="kind"):
        parse_protocol({"kind": "bootstrap"})


def test_variants_follow_the_modalities() -> None:
    names = [v.name for v in variants(ScoresConfig(branches=True, hide=["text"]))]
    assert names == ["model", "text branch", "image branch", "no text"]
    assert [v.name for v in variants(ScoresConfig())] == ["model"]


def test_bad_protocol_in_a_spec_file_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "protocol": {"kind": "kfold", "folds": 1}}))
    with pytest.raises(UserInputError, match=r"protocol\.kfold\.folds"):
        load_spec(path)
    path.write_text(yaml.safe_dump({"name": "x", "scores": {"hide": ["audio"]}}))
    with pytest.raises(UserInputError, match=r"scores\.hide"):
        load_spec(path)


def test_hiding_a_modality_empties_it_only(sample_dataset: PreparedDataset) -> None:
    posts = sample_dataset.examples.head(5)
    no_image = hide(posts, "image")
    assert no_image["image"].isna().all() and (no_image["text"] == posts["text"]).all()
    no_text = hide(posts, "text")
    assert (no_text["text"] == "").all() and (no_text["image"] == posts["image"]).all()


def test_kfold_grid_tests_every_pooled_post_once_with_branches_and_ablations(
    sample_dataset: PreparedDataset, tmp_path: Path
) -> None:
    out = tmp_path / "cv"
    spec = cv_spec()
    result = run_experiment(spec, sample_dataset.root, out, progress=False)
    assert (result.computed, result.skipped) == (2 * FOLDS + 2 * FOLDS, 0)
    pooled = sample_dataset.examples[sample_dataset.examples["split"].isin(["train", "val"])]
    pooled_ids = set(pooled["id"].astype(str))

    # out-of-fold scores: each pooled post is a test post of exactly one fold, test never read
    scores = pd.concat(
        pd.read_csv(
            out / f"runs/model=late/seed-0/fold-{k}" / SCORES_FILE, dtype={"id": str}
        ).assign(fold=k)
        for k in range(FOLDS)
    )
    own = scores[scores["score"] == "model"]
    assert sorted(own["id"]) == sorted(pooled_ids)
    assert set(scores["score"]) == {"model", "text branch", "image branch", "no image", "no text"}
    folds = fold_of(pooled["id"].astype(str).tolist(), pooled["label"].astype(str).tolist(), 3, 0)
    expected = dict(zip(pooled["id"].astype(str), folds, strict=True))
    assert all(expected[i] == k for i, k in zip(own["id"], own["fold"], strict=True))

    # each variant's metrics are those of its own scores; the branches differ from the fusion
    metrics = json.loads((out / "runs/model=late/seed-0/fold-0/metrics.json").read_text())
    fold0 = scores[scores["fold"] == 0]
    for name in ("text branch", "image branch", "no image"):
        part = fold0[fold0["score"] == name]
        accuracy = float((part["label"] == part["truth"]).mean())
        assert metrics["variants"][name]["test"]["accuracy"] == pytest.approx(accuracy)
    classes = sorted(sample_dataset.labels)
    by_score = {name: part.set_index("id")[classes] for name, part in fold0.groupby("score")}
    assert not np.allclose(by_score["model"].to_numpy(), by_score["text branch"].to_numpy())

    # a late fusion without the image is its text branch, through the one temperature the
    # fusion fitted on val: softmax(log p / T), so centred log-scores are proportional
    def centred(frame: pd.DataFrame) -> np.ndarray:
        logs = np.log(frame.to_numpy(dtype=float))
        return logs - logs.mean(axis=1, keepdims=True)

    fused = centred(by_score["no image"].loc[by_score["text branch"].index])
    branch = centred(by_score["text branch"])
    inverse_t = float((fused * branch).sum() / (branch * branch).sum())
    assert inverse_t > 0
    np.testing.assert_allclose(fused, inverse_t * branch, atol=1e-4)

    results = pd.read_csv(out / "results.csv")
    text = results[results["cell"] == "model=text"].set_index(["score", "fold"])
    assert "text branch" not in set(text.index.get_level_values(0))  # no branches to score
    # a text model reads every post without its image, and none without its text
    for k in range(FOLDS):
        assert text.loc[("no image", k), "test_n"] == text.loc[("model", k), "test_n"]
        assert text.loc[("no image", k), "test_accuracy"] == pytest.approx(
            text.loc[("model", k), "test_accuracy"]
        )
        assert text.loc[("no text", k), "test_n"] == 0
        assert np.isnan(text.loc[("no text", k), "test_accuracy"])
    assert text.xs("model")["test_n"].sum() == len(pooled_ids)

    # baselines run once per fold on the same folds; logreg read the images only
    majority = results[results["cell"] == "baseline-majority"]
    assert sorted(majority["fold"]) == list(range(FOLDS))
    assert majority["test_n"].sum() == len(pooled_ids)
    logreg = json.loads(
        (out / "runs/baseline-logreg-pixels32/fold-1/metrics.json").read_text(encoding="utf-8")
    )
    assert logreg["n_features"] == 3 * 32 * 32 and logreg["c"] == 1.0

    markdown = (out / "results.md").read_text()
    assert "3-fold cross-validation over the train + val posts" in markdown
    assert "late: text branch" in markdown and "text: no text" in markdown
    assert "0 of " in markdown  # the text model predicts no post without its text
    summary = result.summary.set_index("row")
    assert summary.loc["model=late", "runs"] == FOLDS

    again = run_experiment(spec, sample_dataset.root, out, progress=False)
    assert (again.computed, again.skipped) == (0, 4 * FOLDS)


def test_split_protocol_still_needs_the_three_splits(
    sample_dataset: PreparedDataset, tmp_path: Path
) -> None:
    examples = sample_dataset.examples.assign(split="all")
    flat = PreparedDataset.from_examples(examples, tmp_path / "flat")
    spec = cv_spec(protocol={"kind": "split"}, scores={}, baselines=[])
    with pytest.raises(UserInputError, match="missing train, val, test"):
        run_experiment(spec, flat.root, tmp_path / "out", progress=False)
    # k folds over every post need no split at all
    kfold = cv_spec(grid={"model": ["text"]}, scores={}, baselines=[])
    kfold.protocol.pool = None
    done = run_experiment(kfold, flat.root, tmp_path / "cv", progress=False)
    assert done.results["test_n"].sum() == len(flat.examples)
