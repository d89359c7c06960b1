"""The fine-tuned MiniLM text model: WordPiece ids, pretrained start, own learning rate,
schedule, training on train+val, and a model directory that rebuilds it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sentimodal.errors import UserInputError
from sentimodal.features.text_encoders import get_text_encoder, lengths_from_ids, minilm_vectors
from sentimodal.models.registry import get_model
from sentimodal.models.text_transformer import TextTransformer
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.optim import make_optimizer, make_scheduler
from sentimodal.training.run_config import RunConfig
from sentimodal.training.train_config import TrainConfig

TEXTS = ["I love this so much :)", "worst day ever...", ""]


@pytest.fixture(scope="module")
def pretrained(one_thread) -> TextTransformer:
    model = get_model("text_transformer", n_classes=3, seed=0)
    model.load_pretrained()
    return model.eval()


@pytest.fixture(scope="module")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    return prepare("mvsa", sample_path(), tmp_path_factory.mktemp("s") / "data", progress=False)


def test_wordpiece_ids_are_post_padded_with_zero_and_cut() -> None:
    encoder = get_text_encoder("minilm_tokens", max_len=8)
    ids = encoder.encode([*TEXTS, "word " * 50])
    assert ids.shape == (4, 8) and ids.dtype == np.int64
    assert ids[0, 0] == 101 and 102 in ids[0]  # [CLS] ... [SEP]
    assert list(ids[2, :3]) == [101, 102, 0]  # an empty text is [CLS] [SEP]
    lengths = lengths_from_ids(ids)
    assert lengths[2] == 2 and lengths[3] == 8
    assert all(
        (row[n:] == 0).all() and (row[:n] != 0).all() for row, n in zip(ids, lengths, strict=True)
    )
    assert encoder.identity.startswith("all-MiniLM-L6-v2-wordpiece:file:")
    with pytest.raises(UserInputError, match="max_len"):
        get_text_encoder("minilm_tokens", max_len=2)


def test_pretrained_start_is_the_sentence_model(pretrained: TextTransformer) -> None:
    ids = torch.as_tensor(get_text_encoder("minilm_tokens").encode(TEXTS[:2]))
    with torch.no_grad():
        pooled = pretrained.embed({"text": ids})
    pooled = torch.nn.functional.normalize(pooled, dim=1).numpy()
    cosines = (pooled * minilm_vectors(TEXTS[:2])).sum(axis=1)
    assert np.allclose(cosines, 1.0, atol=1e-4)


def test_padding_does_not_change_the_output(pretrained: TextTransformer) -> None:
    ids = torch.as_tensor(get_text_encoder("minilm_tokens", max_len=32).encode(TEXTS))
    longest = int(lengths_from_ids(ids.numpy()).max())
    with torch.no_grad():
        full = pretrained.scores({"text": ids})
        trimmed = pretrained.scores({"text": ids[:, :longest]})
    assert torch.allclose(full, trimmed, atol=1e-5)


def test_refuses_feature_vectors_and_too_many_layers() -> None:
    model = get_model("text_transformer", n_classes=3, num_layers=1)
    with pytest.raises(UserInputError, match="minilm_tokens"):
        model.embed({"text": torch.zeros(2, 384)})
    with pytest.raises(UserInputError, match="6 layers"):
        get_model("text_transformer", n_classes=3, num_layers=7)


def test_backbone_learns_at_its_own_rate_and_the_schedule_warms_then_decays() -> None:
    text = {"kind": "text_transformer", "num_layers": 1}
    image = {"kind": "mlp", "input": "image", "input_dim": 8}
    model = get_model("late", text=text, image=image, n_classes=3)
    config = TrainConfig(lr=1e-3, backbone_lr=2e-5, schedule="linear", warmup=0.25)
    optimizer = make_optimizer(model, config)
    rates = sorted(group["lr"] for group in optimizer.param_groups)
    assert rates == [2e-5, 1e-3]
    backbone = {id(p) for p in model.text.encoder.parameters()}
    slow = next(g for g in optimizer.param_groups if g["lr"] == 2e-5)
    assert {id(p) for p in slow["params"]} == backbone
    assert {id(p) for p in model.parameters()} == {
        id(p) for g in optimizer.param_groups for p in g["params"]
    }
    # An overriding rate (as confident fine-tuning gives) scales both groups alike.
    halved = make_optimizer(model, config, lr=5e-4)
    assert sorted(g["lr"] for g in halved.param_groups) == [1e-5, 5e-4]

    scheduler = make_scheduler(optimizer, config, total_steps=8)
    seen = []
    for _ in range(8):
        seen.append(optimizer.param_groups[0]["lr"] / 1e-3)
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.5, 1.0, 1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    assert optimizer.param_groups[0]["lr"] == 0


def test_fine_tuned_model_saves_and_reloads(
    sample_dataset: PreparedDataset, tmp_path: Path, one_thread, small_text_transformer: dict
) -> None:
    model = SentimentModel(**small_text_transformer).fit(sample_dataset, progress=False)
    before = [p.detach().clone() for p in model.network_.encoder.parameters()]
    assert model.history_[0]["val_accuracy"] > 0
    model.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["model"]["kind"] == "text_transformer"
    assert config["model"]["architecture"]["hidden_size"] == 384
    assert config["encoders"]["text"]["name"] == "minilm_tokens"

    loaded = SentimentModel.load(tmp_path / "model")
    after = list(loaded.network_.encoder.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    frame = sample_dataset.split("test").head(5)
    pd.testing.assert_frame_equal(
        model.predict_frame(sample_dataset, "test"), loaded.predict_frame(sample_dataset, "test")
    )
    out = loaded.predict_posts(frame[["id", "text"]])
    assert [p.label for p in out] == model.predict_frame(sample_dataset, "test")["label"][
        :5
    ].tolist()


def test_training_on_train_and_val_uses_both_without_validation(
    sample_dataset: PreparedDataset, one_thread, small_text_transformer: dict
) -> None:
    model = SentimentModel(**small_text_transformer).fit(
        sample_dataset, train_splits=("train", "val"), progress=False
    )
    assert model.train_splits_ == ["train", "val"]
    assert "val_accuracy" not in model.history_[0] and model.best_epoch_ is None
    with pytest.raises(UserInputError, match="no dev split"):
        SentimentModel(**small_text_transformer).fit(
            sample_dataset, train_splits=("train", "dev"), progress=False
        )


@pytest.mark.slow  # fine-tunes the full MiniLM for 4 epochs: about 3 min on 2 busy cores
def test_the_default_model_learns_on_the_sample(sample_dataset: PreparedDataset) -> None:
    model = SentimentModel(feature_workers=0).fit(sample_dataset, progress=False)
    assert model.run_.model == "late" and model.run_.text_encoder == "minilm_tokens"
    metrics = model.evaluate(sample_dataset, "test")
    majority = max(metrics["support"].values()) / metrics["n"]
    assert metrics["accuracy"] > majority
    assert len(model.history_) == 4 and model.best_epoch_ is not None


def test_partial_train_settings_keep_the_other_defaults() -> None:
    default = RunConfig().resolved()
    assert RunConfig(train={}).resolved() == default
    given = RunConfig(train={"epochs": 6})
    assert RunConfig.from_yaml(given.to_yaml()) == given and given.to_dict()["train"] == {
        "epochs": 6
    }
    six = given.resolved()
    assert six.train.epochs == 6
    assert six.train.model_dump(exclude={"epochs"}) == default.train.model_dump(exclude={"epochs"})
    assert RunConfig.from_yaml(six.to_yaml()) == six
    # one rule whatever form the settings come in: the profile fills what was not given
    assert RunConfig(train=TrainConfig(epochs=6)).resolved() == six
    assert RunConfig(train=TrainConfig()).resolved() == default
    # what was given is kept, even where it equals TrainConfig's own default
    adam = RunConfig(train=TrainConfig(optimizer="adam", epochs=6)).resolved()
    assert adam.train.optimizer == "adam" and adam.train.schedule == "linear"
    assert RunConfig.from_yaml(adam.to_yaml()) == adam


def test_defaults_follow_what_is_trained() -> None:
    default = RunConfig().resolved()
    assert default.text_encoder == "minilm_tokens" and default.train.schedule == "linear"
    # feature-vector fusions cannot read token ids: frozen MiniLM vectors, early stopping
    gated = RunConfig(model="gated").resolved()
    assert gated.text_encoder == "minilm" and gated.train == TrainConfig()
    frozen = RunConfig(model="text", text_encoder="glove_mean", train={"epochs": 7}).resolved()
    assert frozen.train == TrainConfig(epochs=7)
    assert RunConfig(model="image").resolved().train == TrainConfig()
