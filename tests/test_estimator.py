"""SentimentModel: fit on real posts, predict, save -> load identity, and refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sentimodal.analysis.model_report import model_report
from sentimodal.errors import UserInputError
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path
from sentimodal.training.estimator import SentimentModel

# Cheap real encoders keep these tests fast: GloVe means of the tweets, raw 32x32 pixels.
FAST = {
    "text_encoder": "glove_mean",
    "image_encoder": "pixels32",
    "train": {"epochs": 15, "patience": 4, "lr": 3e-3, "seed": 0},
    "feature_workers": 0,
}


@pytest.fixture(scope="module")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    out = tmp_path_factory.mktemp("sample") / "dataset"
    return prepare("mvsa", sample_path(), out, progress=False)


@pytest.fixture(scope="module")
def concat_model(sample_dataset: PreparedDataset) -> SentimentModel:
    return SentimentModel(model="concat", **FAST).fit(sample_dataset, progress=False)


def test_fit_learns_beyond_the_majority_class(sample_dataset: PreparedDataset) -> None:
    model = SentimentModel(model="text", **FAST).fit(sample_dataset, progress=False)
    metrics = model.evaluate(sample_dataset, "test")
    majority = max(metrics["support"].values()) / metrics["n"]
    assert metrics["n"] == len(sample_dataset.split("test"))
    assert metrics["accuracy"] > majority + 0.05
    assert set(metrics) >= {"accuracy", "macro_f1", "weighted_f1", "per_class", "confusion"}


def test_save_load_predicts_identically(
    concat_model: SentimentModel, sample_dataset: PreparedDataset, tmp_path: Path
) -> None:
    concat_model.save(tmp_path / "model")
    loaded = SentimentModel.load(tmp_path / "model")
    before = concat_model.predict_frame(sample_dataset, "test")
    after = loaded.predict_frame(sample_dataset, "test")
    pd.testing.assert_frame_equal(before, after)
    assert loaded.run_config() == concat_model.run_config()
    files = {p.name for p in (tmp_path / "model").iterdir()}
    assert {"config.json", "model.safetensors", "labels.json", "history.json"} <= files
    assert not any(name.endswith((".pkl", ".pt", ".pth")) for name in files)


def test_predict_posts_reports_bad_rows_and_goes_on(
    concat_model: SentimentModel, sample_dataset: PreparedDataset, tmp_path: Path
) -> None:
    test = sample_dataset.split("test").head(3)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(Path(test["image"].iloc[0]).read_bytes()[:200])
    posts = [
        {"id": "a", "text": test["text"].iloc[0], "image": test["image"].iloc[0]},
        {"id": "b", "text": "", "image": test["image"].iloc[1]},
        {"id": "c", "text": "lovely", "image": str(tmp_path / "missing.jpg")},
        {"id": "d", "text": "lovely", "image": str(broken)},
    ]
    out = concat_model.predict_posts(posts)
    assert [p.id for p in out] == ["a", "b", "c", "d"]
    assert out[0].error is None and out[0].label in concat_model.classes_
    assert abs(sum(out[0].scores.values()) - 1) < 1e-5
    # the fusion falls back: a post without text is read by its image, a post whose image
    # is missing or broken by its text (with a warning saying why)
    assert out[1].error is None and out[1].modalities == "image"
    assert out[2].modalities == "text" and "not found" in out[2].warning
    assert out[3].modalities == "text" and out[3].warning.startswith("image not used")
    nothing = concat_model.predict_posts([{"id": "e", "text": "", "image": str(broken)}])[0]
    assert nothing.error is not None and nothing.label is None
    # the same post predicted from the dataset and as a raw post gets the same scores
    frame = concat_model.predict_frame(sample_dataset, "test").set_index("id")
    first = frame.loc[str(test["id"].iloc[0]), concat_model.classes_].to_numpy(dtype=float)
    raw = np.array([out[0].scores[c] for c in concat_model.classes_])
    np.testing.assert_allclose(first, raw, atol=1e-5)


def test_fit_on_a_dataframe_with_only_text(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "text": ["I love this", "so happy today", "great fun", "awful day", "I hate it"] * 12
            + ["so sad and angry", "terrible news"] * 6,
            "label": (["positive"] * 3 + ["negative"] * 2) * 12 + ["negative"] * 12,
        }
    )
    model = SentimentModel(model="text", text_encoder="vader", train={"epochs": 30, "lr": 0.01})
    model.fit(df, work_dir=tmp_path / "work", progress=False)
    predicted = model.predict_posts([{"text": "I love it, wonderful"}, {"text": "horrible"}])
    assert [p.label for p in predicted] == ["positive", "negative"]


def test_gated_model_reports_gate_statistics(sample_dataset: PreparedDataset) -> None:
    model = SentimentModel(model="gated", **{**FAST, "train": {"epochs": 2}})
    model.fit(sample_dataset, progress=False)
    net = model.network_
    # the statistics describe the trained gates themselves, not their starting value
    text_gates = torch.sigmoid(net.text_gate.detach())
    stats = model.gate_stats()
    assert stats["text"]["mean"] == pytest.approx(float(text_gates.mean()), abs=1e-6)
    assert stats["text"]["std"] > 0
    with torch.no_grad():
        net.image_gate.fill_(-20.0)  # a closed image gate: nothing of the image passes
    closed = model.gate_stats()["image"]
    assert closed["max"] < 1e-6 and closed["near_zero"] == 1.0
    assert model.gate_stats()["text"] == stats["text"]


def test_embedding_head_takes_new_labels(sample_dataset: PreparedDataset) -> None:
    model = SentimentModel(model="text", head="embedding", **{**FAST, "train": {"epochs": 3}})
    model.fit(sample_dataset, progress=False)
    assert model.classes_ == sample_dataset.labels
    model.set_labels(["joy", "anger", "sadness"])
    frame = model.predict_frame(sample_dataset, "test")
    assert model.classes_ == ["joy", "anger", "sadness"]
    scores = frame[["joy", "anger", "sadness"]].to_numpy()
    assert np.all(scores <= 1 + 1e-6) and np.all(scores >= -1 - 1e-6)
    assert set(frame["label"]) <= {"joy", "anger", "sadness"}


def test_softmax_head_refuses_new_labels(concat_model: SentimentModel) -> None:
    with pytest.raises(UserInputError, match="embedding head"):
        concat_model.set_labels(["joy", "anger"])


def test_foreign_and_corrupted_directories_are_refused(
    concat_model: SentimentModel, tmp_path: Path
) -> None:
    with pytest.raises(UserInputError, match="not found"):
        SentimentModel.load(tmp_path / "nowhere")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(UserInputError, match="not a sentimodal model"):
        SentimentModel.load(foreign)

    good = concat_model.save(tmp_path / "good")
    truncated = tmp_path / "truncated"
    shutil.copytree(good, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(UserInputError, match="corrupted"):
        SentimentModel.load(truncated)

    garbled = tmp_path / "garbled"
    shutil.copytree(good, garbled)
    (garbled / "config.json").write_text("{not json")
    with pytest.raises(UserInputError, match="corrupted"):
        SentimentModel.load(garbled)

    mismatched = tmp_path / "mismatched"
    shutil.copytree(good, mismatched)
    config = json.loads((mismatched / "config.json").read_text())
    config["model"]["text_dim"] += 1
    (mismatched / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserInputError, match="does not fit"):
        SentimentModel.load(mismatched)


def test_unfitted_model_says_so() -> None:
    with pytest.raises(UserInputError, match="not fitted"):
        SentimentModel().predict_posts([{"text": "hello"}])


def test_bad_setting_is_a_user_error() -> None:
    with pytest.raises(UserInputError, match="model"):
        SentimentModel(model="transformer").run_config()


def test_token_model_keeps_its_vocabulary_on_other_data(
    sample_dataset: PreparedDataset, tmp_path: Path
) -> None:
    """A model judged on another dataset must read it with the vocabulary it was trained on."""
    model = SentimentModel(model="text", text_encoder="tokens", train={"epochs": 1})
    model.fit(sample_dataset, progress=False)
    identity = model.text_encoder_.identity
    other = prepare("mvsa", sample_path(), tmp_path / "other", split="none", progress=False)
    metrics = model.evaluate(other, "all")
    assert metrics["n"] == len(other.examples)
    assert model.text_encoder_.identity == identity
    model.save(tmp_path / "model")
    assert SentimentModel.load(tmp_path / "model").text_encoder_.identity == identity


def test_token_model_can_start_from_glove(sample_dataset: PreparedDataset) -> None:
    from sentimodal.features.resources import glove_table

    model = SentimentModel(
        model="text",
        text_encoder="tokens",
        model_options={"embedding_init": "glove", "embedding_dim": 50, "lstm_dim": 16},
        train={"epochs": 1, "lr": 1e-9},
    ).fit(sample_dataset, progress=False)
    vocab = model.text_encoder_.vocab_
    table = model.network_.embedding.weight.detach().numpy()
    word = next(w for w in ("love", "the", "happy") if w in vocab)
    np.testing.assert_allclose(table[vocab[word]], glove_table().vector(word), atol=1e-4)


def test_late_fusion_trains_both_branches_and_reloads(
    sample_dataset: PreparedDataset, tmp_path: Path
) -> None:
    model = SentimentModel(model="late", **{**FAST, "train": {"epochs": 2}})
    model.fit(sample_dataset, progress=False)
    assert model.network_config_.text.kind == "mlp" and model.network_config_.image.kind == "mlp"
    before = model.predict_frame(sample_dataset, "test")
    model.save(tmp_path / "late")
    after = SentimentModel.load(tmp_path / "late").predict_frame(sample_dataset, "test")
    pd.testing.assert_frame_equal(before, after)


def test_image_only_table_trains_an_image_model(
    sample_dataset: PreparedDataset, tmp_path: Path
) -> None:
    """A table with just an image-path column and a label is a normal input."""
    rows = sample_dataset.examples[["image", "label"]].rename(columns={"image": "photo"})
    rows.to_csv(tmp_path / "images.csv", index=False)
    dataset = prepare(
        "table",
        tmp_path / "images.csv",
        tmp_path / "dataset",
        image_column="photo",
        label_column="label",
        progress=False,
    )
    assert (dataset.examples["text"] == "").all()
    model = SentimentModel(model="image", image_encoder="pixels32", train={"epochs": 2})
    model.fit(dataset, progress=False)
    metrics = model.evaluate(dataset, "test")
    assert metrics["n"] == len(dataset.split("test")) and metrics["n_missing"] == 0
    with pytest.raises(UserInputError, match="text"):
        SentimentModel(model="text", text_encoder="vader").fit(dataset, progress=False)


def test_late_fusion_branches_predict_alone_and_fill_the_report(
    sample_dataset: PreparedDataset, concat_model: SentimentModel, tmp_path: Path
) -> None:
    model = SentimentModel(model="late", **FAST).fit(sample_dataset, progress=False)
    text, image = model.branch("text"), model.branch("image")
    assert (text.run_.model, image.run_.model, model.run_.model) == ("text", "image", "late")
    fused = model.predict_proba(sample_dataset, "test")
    alone = [branch.predict_proba(sample_dataset, "test") for branch in (text, image)]
    # the fusion's scores are the branches' mean through the temperature fitted on val
    np.testing.assert_allclose(
        fused, model.calibration_.apply((alone[0] + alone[1]) / 2), atol=1e-5
    )
    with pytest.raises(UserInputError, match="has no .text. branch"):
        concat_model.branch("text")

    report = model_report(model, sample_dataset, title="late").write(tmp_path)
    markdown = report.markdown.read_text()
    assert "How much do images add?" in markdown and "image only" in markdown
