"""Baselines on real posts: majority is the majority, VADER knows sentiment words, logreg picks
its C on val."""

from __future__ import annotations

import numpy as np
import pytest

from sentimodal.analysis.baselines import BaselineConfig, run_baseline, vader_labels
from sentimodal.errors import UserInputError
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path


@pytest.fixture(scope="module")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    out = tmp_path_factory.mktemp("sample") / "dataset"
    return prepare("mvsa", sample_path(), out, progress=False)


def test_majority_predicts_the_most_frequent_train_label(sample_dataset: PreparedDataset) -> None:
    result = run_baseline(sample_dataset, BaselineConfig(name="majority"))
    train = sample_dataset.split("train")["label"].value_counts()
    majority = result["majority_label"]
    assert train[majority] == train.max()  # the sample has ties: any most frequent label will do
    for split in ("val", "test"):
        labels = sample_dataset.split(split)["label"]
        metrics = result[split]
        assert metrics["n"] == len(labels)
        assert metrics["accuracy"] == pytest.approx((labels == majority).mean())
        predicted = np.array(metrics["confusion"]).sum(axis=0)
        assert predicted[metrics["labels"].index(majority)] == len(labels)


def test_vader_thresholds() -> None:
    compound = np.array([0.05, 0.049, 0.0, -0.049, -0.05, 0.9])
    three = vader_labels(compound, ["negative", "neutral", "positive"], 0.05, -0.05)
    assert three.tolist() == ["positive", "neutral", "neutral", "neutral", "negative", "positive"]
    two = vader_labels(compound, ["negative", "positive"], 0.05, -0.05)
    assert two.tolist() == ["positive", "positive", "positive", "negative", "negative", "positive"]


def test_vader_beats_chance_on_mvsa_text(sample_dataset: PreparedDataset) -> None:
    result = run_baseline(sample_dataset, BaselineConfig(name="vader"))
    chance = 1 / len(sample_dataset.labels)
    for split in ("val", "test"):
        assert result[split]["n"] == len(sample_dataset.split(split))
        assert result[split]["accuracy"] > chance + 0.1
        assert result[split]["macro_f1"] > chance


def test_logreg_chooses_c_on_val(sample_dataset: PreparedDataset) -> None:
    config = BaselineConfig(
        name="logreg", image_encoder="pixels32", text_encoder="glove_mean", c_values=[1e-4, 1.0]
    )
    assert config.encoders() == {"image": "pixels32", "text": "glove_mean"}
    result = run_baseline(sample_dataset, config)
    tried = result["val_accuracy_by_c"]
    assert set(tried) == {"0.0001", "1.0"}
    assert tried[str(result["c"])] == max(tried.values())
    assert result["n_features"] == 3 * 32 * 32 + 50
    assert result["val"]["accuracy"] == pytest.approx(max(tried.values()))
    assert 0 < result["test"]["n"] <= len(sample_dataset.split("test"))


def test_logreg_refuses_token_ids(sample_dataset: PreparedDataset) -> None:
    config = BaselineConfig(name="logreg", image_encoder="pixels32", text_encoder="tokens")
    with pytest.raises(UserInputError, match="token ids"):
        run_baseline(sample_dataset, config)


@pytest.mark.slow
def test_logreg_on_frozen_features_beats_majority(sample_dataset: PreparedDataset) -> None:
    config = BaselineConfig(name="logreg", c_values=[0.001, 0.01, 0.1])
    result = run_baseline(sample_dataset, config)
    tried = result["val_accuracy_by_c"]
    assert result["c"] == max(config.c_values, key=lambda c: tried[str(c)])
    majority = run_baseline(sample_dataset, BaselineConfig(name="majority"))
    assert result["test"]["accuracy"] > majority["test"]["accuracy"]
    assert result["n_features"] == 1280 + 384
