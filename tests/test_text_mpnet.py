"""MPNet with its bottom layers frozen: its own ids (shifted so 0 pads), the pretrained start
is the sentence model, the training memo of frozen states changes nothing but the cost, only
the top layers learn, and a model directory rebuilds it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sentimodal.errors import UserInputError
from sentimodal.export.onnx import export_onnx
from sentimodal.features import resources
from sentimodal.features.text_encoders import get_text_encoder, lengths_from_ids
from sentimodal.features.text_encoders.sentence import sentence_vectors
from sentimodal.models.base import PretrainedStart
from sentimodal.models.recipes import ModalityInput, get_recipe
from sentimodal.models.registry import get_model
from sentimodal.models.text_transformer import TextTransformer as TextMPNet
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.optim import make_optimizer
from sentimodal.training.train_config import TrainConfig

TEXTS = ["I love this so much :)", "worst day ever...", ""]
#: a two-layer, 32-wide MPNet over the real vocabulary: fast, same code paths
TINY = {
    "vocab_size": 30527,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 514,
    "pad_token_id": 1,
    "relative_attention_num_buckets": 32,
    "layer_norm_eps": 1e-5,
}


def tiny(frozen: int = 1) -> TextMPNet:
    return get_model(
        "text_mpnet", n_classes=3, architecture=TINY, init="random", frozen_layers=frozen, seed=0
    )


def test_ids_are_mpnet_ids_plus_one_post_padded_with_zero() -> None:
    encoder = get_text_encoder("mpnet_tokens", max_len=8)
    ids = encoder.encode([*TEXTS, "word " * 50])
    assert ids.shape == (4, 8) and ids.dtype == np.int64
    tokenizer = resources.mpnet_tokenizer()
    own = tokenizer(["worst day ever..."])["input_ids"][0]
    assert list(ids[1, : len(own)]) == [i + 1 for i in own]
    assert list(ids[2, :3]) == [tokenizer.cls_token_id + 1, tokenizer.sep_token_id + 1, 0]
    lengths = lengths_from_ids(ids)
    assert lengths[2] == 2 and lengths[3] == 8
    assert encoder.identity.startswith("all-mpnet-base-v2-ids+1:file:")
    with pytest.raises(UserInputError, match="max_len"):
        get_text_encoder("mpnet_tokens", max_len=2)


@pytest.mark.parametrize("frozen", [11, 0])
def test_pretrained_start_is_the_sentence_model(frozen: int, one_thread) -> None:
    model = get_model("text_mpnet", n_classes=3, frozen_layers=frozen, seed=0)
    model.load_pretrained()
    ids = torch.as_tensor(get_text_encoder("mpnet_tokens").encode(TEXTS[:2]))
    with torch.no_grad():
        pooled = model.eval().embed({"text": ids})
    pooled = torch.nn.functional.normalize(pooled, dim=1).numpy()
    cosines = (pooled * sentence_vectors(resources.mpnet_path(), TEXTS[:2])).sum(axis=1)
    assert np.allclose(cosines, 1.0, atol=1e-4)


def test_the_training_memo_changes_the_cost_not_the_output() -> None:
    ids = torch.as_tensor(get_text_encoder("mpnet_tokens", max_len=16).encode(TEXTS))
    model = tiny(frozen=1).eval()
    with torch.no_grad():
        plain = model.scores({"text": ids})
        model.start_pretrained(PretrainedStart())
        first = model.scores({"text": ids})
        again = model.scores({"text": ids[[2, 0]]})  # other batch, other padding
    assert model.bottom._memo is not None and len(model.bottom._memo) == 3  # one entry per post
    assert torch.allclose(plain, first, atol=1e-3)
    assert torch.allclose(first[[2, 0]], again, atol=1e-5)
    # states kept while predicting (inference mode) feed a training step later
    other = torch.as_tensor(get_text_encoder("mpnet_tokens").encode(["a new post", "and one"]))
    with torch.inference_mode():
        model.scores({"text": other})
    assert len(model.bottom._memo) == 5
    model.train()
    torch.nn.functional.cross_entropy(model({"text": other}), torch.tensor([2, 0])).backward()
    model.end_training()
    assert model.bottom._memo is None


def test_only_the_top_layers_learn_and_frozen_parts_run_without_dropout() -> None:
    model = tiny(frozen=1)
    model.start_pretrained(PretrainedStart())
    optimizer = make_optimizer(model, TrainConfig(lr=1e-3, backbone_lr=5e-5))
    trained = {id(p) for g in optimizer.param_groups for p in g["params"]}
    top = {id(p) for p in model.encoder.encoder.layer[1].parameters()}
    assert top <= trained and {id(p) for p in model.backbone_parameters()} == top
    assert not trained & {id(p) for p in model.encoder.embeddings.parameters()}
    assert not trained & {id(p) for p in model.encoder.encoder.layer[0].parameters()}
    model.train()
    assert not model.encoder.encoder.layer[0].training and model.encoder.encoder.layer[1].training
    ids = torch.as_tensor(get_text_encoder("mpnet_tokens", max_len=16).encode(TEXTS))
    torch.nn.functional.cross_entropy(model({"text": ids}), torch.tensor([2, 0, 1])).backward()
    assert model.encoder.encoder.layer[1].output.dense.weight.grad is not None
    assert model.encoder.encoder.layer[0].output.dense.weight.grad is None
    # nothing frozen: the whole transformer learns, embeddings included
    full = tiny(frozen=0)
    assert len(full.backbone_parameters()) == len(list(full.encoder.parameters()))


def test_refuses_feature_vectors_and_too_many_frozen_layers() -> None:
    with pytest.raises(UserInputError, match="mpnet_tokens"):
        tiny().embed({"text": torch.zeros(2, 768)})
    with pytest.raises(UserInputError, match="2 layers"):
        get_model("text_mpnet", n_classes=3, architecture=TINY, frozen_layers=3)


def test_recipes_derive_the_mpnet_network_from_its_ids() -> None:
    inputs = {
        "text": ModalityInput.of_text(get_text_encoder("mpnet_tokens")),
        "image": ModalityInput("vectors", 8),
    }
    head = {"head": "softmax", "n_classes": 3}
    config = get_recipe("late").network_config(inputs, head, {"text": {"frozen_layers": 10}})
    assert config.text.kind == "text_mpnet" and config.text.frozen_layers == 10
    assert config.text.architecture["hidden_size"] == 768
    with pytest.raises(UserInputError, match="architecture"):
        get_recipe("text").network_config(inputs, head, {"architecture": TINY})


@pytest.fixture(scope="module")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    return prepare("mvsa", sample_path(), tmp_path_factory.mktemp("s") / "data", progress=False)


@pytest.mark.slow  # MPNet's top layer on the sample, and a 440 MB model directory: about 1 min
def test_partly_fine_tuned_mpnet_trains_saves_and_reloads(
    sample_dataset: PreparedDataset, tmp_path: Path, one_thread
) -> None:
    run = {
        "model": "text",
        "text_encoder": "mpnet_tokens",
        "train": {"epochs": 1, "seed": 0},
        "feature_workers": 0,
    }
    model = SentimentModel(**run).fit(sample_dataset, progress=False)
    assert model.network_.bottom._memo is None  # dropped after fit
    assert model.history_[0]["val_accuracy"] > 0
    model.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["model"]["kind"] == "text_mpnet" and config["model"]["frozen_layers"] == 11
    assert config["encoders"]["text"]["name"] == "mpnet_tokens"
    loaded = SentimentModel.load(tmp_path / "model")
    pd.testing.assert_frame_equal(
        model.predict_frame(sample_dataset, "test"), loaded.predict_frame(sample_dataset, "test")
    )
    frame = sample_dataset.split("test").head(5)
    out = loaded.predict_posts(frame[["id", "text"]])
    assert [p.label for p in out] == model.predict_frame(sample_dataset, "test")["label"][
        :5
    ].tolist()
    with pytest.raises(UserInputError, match="mpnet_tokens.*tokenizer"):
        export_onnx(tmp_path / "model", tmp_path / "onnx")
