"""Open-vocabulary labels and the unseen-class protocol, on a small real MVSA-Single subset.

Models read GloVe-mean text features (cheap) and are trained for a few epochs: these tests check
that label replacement and the protocol work and are measured right, not how well they score.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sentimodal.analysis.zeroshot import (
    HELD_OUT_SPLIT,
    UnseenClassConfig,
    adjective_scores,
    best_bias,
    chance_metrics,
    run_unseen_class,
    seen_only,
    sentiment_vocabulary,
    unseen_bias,
)
from sentimodal.errors import UserInputError
from sentimodal.interfaces.cli import app
from sentimodal.models.label_space import LabelSpace
from sentimodal.preparation.dataset import PreparedDataset, count_by_split, post_to_row
from sentimodal.sources.mvsa import read_mvsa
from sentimodal.sources.record import Post
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.run_config import RunConfig

LABELS = ["negative", "neutral", "positive"]
NEW_LABELS = ["joy", "anger", "sadness", "bittersweet"]


def small_mvsa(mvsa_root: Path, root: Path, per_split: tuple[int, int, int]) -> PreparedDataset:
    """The first posts of each label in file order, split train/val/test by count."""
    taken: Counter[str] = Counter()
    rows = []
    for record in read_mvsa(mvsa_root):
        if not isinstance(record, Post) or taken[record.label] >= sum(per_split):
            continue
        n = taken[record.label]
        split = "train" if n < per_split[0] else "val" if n < sum(per_split[:2]) else "test"
        taken[record.label] += 1
        rows.append(post_to_row(record, split))
        if all(taken[label] >= sum(per_split) for label in LABELS):
            break
    examples = pd.DataFrame(rows)
    counts = count_by_split(examples["split"].tolist(), examples["label"].tolist(), LABELS)
    return PreparedDataset(examples, {"labels": LABELS, "counts": counts}).save(root)


def text_run(head: str, **overrides) -> RunConfig:
    return RunConfig(
        model="text",
        head=head,
        text_encoder="glove_mean",
        train={"epochs": 8, "patience": None, "seed": 0},
        feature_workers=0,
        **overrides,
    )


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dataset(mvsa_root: Path, tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    return small_mvsa(mvsa_root, tmp_path_factory.mktemp("mvsa"), (60, 25, 25))


@pytest.fixture(scope="module")
def embedding_model(dataset: PreparedDataset) -> SentimentModel:
    run = text_run("embedding", label_source="glove_6b_50d")
    return SentimentModel(run).fit(dataset, progress=False)


@pytest.fixture(scope="module")
def softmax_model(dataset: PreparedDataset) -> SentimentModel:
    return SentimentModel(text_run("softmax")).fit(dataset, progress=False)


# ----------------------------------------------------------------------------- open vocabulary


def test_new_labels_are_ranked_by_cosine_to_their_own_vectors(embedding_model, dataset):
    model = SentimentModel.load(_saved(embedding_model, dataset.root / "model-emb"))
    before = model.predict_frame(dataset, "test")
    model.set_labels(NEW_LABELS)
    frame = model.predict_frame(dataset, "test")
    assert model.classes_ == NEW_LABELS
    assert list(frame.columns) == ["id", "label", *NEW_LABELS, "modalities", "error"]
    scores = frame[NEW_LABELS].to_numpy()
    assert np.all(scores >= -1.0 - 1e-6) and np.all(scores <= 1.0 + 1e-6)
    # the scores are the cosines between the model's output and the new labels' GloVe vectors
    _, outputs = model.vectors(dataset, "test")
    vectors = LabelSpace.from_glove(NEW_LABELS).vectors
    expected = (outputs / np.linalg.norm(outputs, axis=1, keepdims=True)) @ (
        vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    ).T
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert (frame["label"] == np.asarray(NEW_LABELS)[expected.argmax(axis=1)]).all()
    # the ranking follows the label set: other labels give other scores
    assert not np.allclose(scores[:, :2], before[["negative", "neutral"]].to_numpy())


def test_a_label_keeps_its_score_whatever_the_other_candidates(embedding_model, dataset):
    model = SentimentModel.load(_saved(embedding_model, dataset.root / "model-emb"))
    alone = model.set_labels(["positive", "negative"]).predict_frame(dataset, "test")
    more = model.set_labels(["sadness", "positive", "joy", "negative"]).predict_frame(
        dataset, "test"
    )
    np.testing.assert_allclose(alone["positive"], more["positive"], atol=1e-6)
    np.testing.assert_allclose(alone["negative"], more["negative"], atol=1e-6)


@pytest.mark.slow
def test_synonyms_zero_shot_agree_with_the_trained_labels(dataset):
    """With MiniLM label vectors, ranking 'happy' vs 'sad' (never trained) mostly agrees with
    positive vs negative. Slow: loads the sentence encoder."""
    run = text_run("embedding", label_source="minilm")
    model = SentimentModel(run).fit(dataset, progress=False)
    trained = model.set_labels(["positive", "negative"]).predict(dataset, "test")
    synonyms = model.set_labels(["happy", "sad"]).predict(dataset, "test")
    mapped = np.where(synonyms == "happy", "positive", "negative")
    assert (mapped == trained).mean() > 0.6


def test_predict_cli_ranks_new_labels(embedding_model, dataset, tmp_path):
    model_dir = _saved(embedding_model, tmp_path / "model")
    out = tmp_path / "predictions.jsonl"
    posts = tmp_path / "posts.csv"
    dataset.split("test").head(5)[["id", "text"]].to_csv(posts, index=False)
    result = CliRunner().invoke(
        app,
        ["predict", str(model_dir), "--input", str(posts), "--labels", ",".join(NEW_LABELS),
         "--output", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 5
    for line in lines:
        assert set(line["scores"]) == set(NEW_LABELS)
        assert line["label"] == max(line["scores"], key=line["scores"].get)
        assert all(-1.0 <= s <= 1.0 for s in line["scores"].values())


def test_softmax_heads_refuse_new_labels(softmax_model, dataset, tmp_path):
    with pytest.raises(UserInputError, match="embedding head"):
        softmax_model.set_labels(NEW_LABELS)
    model_dir = _saved(softmax_model, tmp_path / "softmax")
    result = CliRunner().invoke(
        app, ["predict", str(model_dir), "--text", "what a day", "--labels", "joy,anger"]
    )
    assert result.exit_code == 2
    assert "embedding head" in result.output
    assert "Traceback" not in result.output


def _saved(model: SentimentModel, directory: Path) -> Path:
    if not (directory / "config.json").is_file():
        model.save(directory)
    return directory


# ----------------------------------------------------------------------------- unseen class


def test_seen_only_moves_the_unseen_posts_out_of_train_and_val(dataset):
    seen = seen_only(dataset, "neutral")
    assert seen.labels == ["negative", "positive"]
    assert seen.root == dataset.root
    assert seen.examples["id"].tolist() == dataset.examples["id"].tolist()
    for split in ("train", "val"):
        assert set(seen.split(split)["label"]) == {"negative", "positive"}
    assert (seen.split("test")["label"] == "neutral").sum() == 25
    assert (seen.split(HELD_OUT_SPLIT)["label"] == "neutral").all()
    with pytest.raises(UserInputError, match="not among"):
        seen_only(dataset, "bittersweet")


def test_bias_rules_on_crafted_scores():
    labels = ["negative", "neutral", "positive"]
    margins = np.linspace(0.0, 1.0, 101)
    assert unseen_bias(margins, 0.1) == pytest.approx(0.1)
    # neutral posts sit where neutral's cosine is a little below the best seen label
    scores = np.array([[0.9, 0.1, 0.0], [0.0, 0.2, 0.9], [0.5, 0.45, 0.4], [0.4, 0.42, 0.5]])
    truth = np.array(["negative", "positive", "neutral", "neutral"], dtype=object)
    bias = best_bias(scores, truth, labels, "neutral")
    shifted = scores.copy()
    shifted[:, 1] += bias
    assert (np.asarray(labels)[shifted.argmax(axis=1)] == truth).all()
    chance = chance_metrics(truth, labels, "neutral")
    assert chance["accuracy"] == pytest.approx(1 / 3)
    # per class F1 of random guessing: 2 p r / (p + r) with r = 1/3
    expected = np.mean([2 * p / 3 / (p + 1 / 3) for p in (0.25, 0.5, 0.25)])
    assert chance["macro_f1"] == pytest.approx(expected)


def test_unseen_class_protocol_on_real_posts(dataset):
    features = dataset.root / "features"
    config = UnseenClassConfig(
        run=text_run("embedding"),
        label_sources=["glove_6b_50d"],
        losses=["cosine", "hinge"],
    )
    result = run_unseen_class(dataset, config, progress=False)
    table = result.table.set_index(["method", "label_source", "loss"])
    assert result.test_counts == {"negative": 25, "neutral": 25, "positive": 25}
    assert result.calibration_counts == {"negative": 25, "neutral": 25, "positive": 25}
    # 2 variants x (4 rules + supervised reference) + prior-only + chance
    assert len(table) == 2 * 5 + 2
    metrics = ["unseen_accuracy", "seen_accuracy", "accuracy", "macro_f1", "predicted_unseen"]
    assert result.table[metrics].apply(lambda c: c.between(0, 1)).all().all()
    prior = result.table[result.table["method"].str.startswith("prior only")].iloc[0]
    assert prior["unseen_accuracy"] == 0.0 and prior["accuracy"] == pytest.approx(1 / 3)
    # the label-free bias sends about the chosen share of seen val posts to the unseen label,
    # so it predicts 'neutral' on test far more often than never
    calibrated = result.table[result.table["method"].str.contains("of seen val posts go")]
    assert (calibrated["predicted_unseen"] > 0).all()
    # the seen-only models and the reference reuse the dataset's cached features
    assert len(list((features / "text").iterdir())) == 1
    json.dumps(result.to_dict())  # JSON-ready


def test_sentiment_vocabulary_takes_the_extreme_mvso_adjectives(shared_data):
    scores = adjective_scores(
        shared_data / "ontologies" / "mvso_english_anp_sentiment.csv", exclude=LABELS
    )
    assert scores.is_monotonic_increasing and not set(LABELS) & set(scores.index)
    polarity = {"positive": 1, "negative": -1}
    soft = sentiment_vocabulary(scores, polarity, 20, "soft")
    # a positive post is contrasted with the 20 most negative adjectives and aimed at the top 20
    assert soft.negatives["positive"] == soft.targets["negative"] == scores.index[:20].tolist()
    assert soft.targets["positive"] == soft.negatives["negative"]
    assert scores[soft.targets["positive"]].min() > 0 > scores[soft.negatives["positive"]].max()
    assert sentiment_vocabulary(scores, polarity, 20, "contrast").targets == {}
    with pytest.raises(UserInputError, match="too few"):
        sentiment_vocabulary(scores, polarity, len(scores), "contrast")


def test_unseen_class_protocol_with_a_hinge_vocabulary(dataset, shared_data):
    config = UnseenClassConfig(
        run=text_run("embedding"),
        label_sources=["glove_6b_50d"],
        losses=["cosine", "hinge"],
        vocabularies=["none", "contrast", "soft"],
        anp_scores=shared_data / "ontologies" / "mvso_english_anp_sentiment.csv",
        vocabulary_size=20,
        supervised=False,
    )
    result = run_unseen_class(dataset, config, progress=False)
    variants = result.table.drop_duplicates(["label_source", "loss", "vocabulary"])
    # the cosine loss takes no vocabulary; the hinge loss once per mode; then prior and chance
    assert variants[["loss", "vocabulary"]].values.tolist() == [
        ["cosine", "none"], ["hinge", "none"], ["hinge", "contrast"], ["hinge", "soft"], ["-", "-"]
    ]  # fmt: skip
    assert len(result.table) == 4 * 4 + 2
    hinge = result.table[result.table["loss"] == "hinge"].set_index(["vocabulary", "method"])
    # the vocabulary changes the trained model, so its scores and decisions
    assert not hinge.loc["none"].equals(hinge.loc["contrast"])
    assert result.to_dict()["config"]["vocabularies"] == ["none", "contrast", "soft"]
    with pytest.raises(ValueError, match="need anp_scores"):
        UnseenClassConfig(vocabularies=["contrast"])


def test_unseen_cli_writes_report_results_and_config(dataset, tmp_path):
    out = tmp_path / "unseen"
    result = CliRunner().invoke(
        app,
        ["zeroshot", "unseen", str(dataset.root), "--out", str(out), "--text-encoder",
         "glove_mean", "--label-sources", "glove_6b_50d", "--losses", "hinge", "--epochs", "3",
         "--no-supervised", "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert "never seen in training" in report and "zeroshot unseen" in report
    assert UnseenClassConfig.load(out / "config.yaml").losses == ["hinge"]
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert len(rows) == 4 + 2
    bad = CliRunner().invoke(
        app, ["zeroshot", "unseen", str(dataset.root), "--out", str(out), "--unseen", "joy"]
    )
    assert bad.exit_code == 2 and "not among" in bad.output
    no_scores = CliRunner().invoke(
        app, ["zeroshot", "unseen", str(dataset.root), "--out", str(out), "--vocabularies", "soft"]
    )
    assert no_scores.exit_code == 2 and "need anp_scores" in no_scores.output
