"""A user's own fusion network, declared outside the package: registered once (its network
kind and its run model), then trained, saved, loaded, asked for predictions on every kind of
post and exported to ONNX through the public API only."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch
from pydantic import Field
from torch import nn
from typer.testing import CliRunner

from sentimodal import SentimentModel
from sentimodal.inference.onnx_runtime import OnnxModel
from sentimodal.inference.posts import post_rows, predict_rows
from sentimodal.interfaces.cli import app
from sentimodal.models.base import Batch, SentimentNet, present
from sentimodal.models.config import ModelConfig
from sentimodal.models.heads import make_head
from sentimodal.models.recipes import Recipe, list_recipes, recipe_choices, register_recipe
from sentimodal.models.registry import config_from_dict, list_models, register_network
from server_fixtures import sample_posts

pytestmark = pytest.mark.usefixtures("one_thread")


class SumFusionConfig(ModelConfig):
    """Each modality projected to ``hidden`` units, the projections summed."""

    kind: Literal["sum_fusion"] = "sum_fusion"
    text_dim: int = Field(ge=1)
    image_dim: int = Field(ge=1)
    hidden: int = Field(16, ge=1)


@register_network(SumFusionConfig)
class SumFusion(SentimentNet):
    """A post without one modality is read by the other's projection alone."""

    inputs = ("text", "image")

    def __init__(self, config: SumFusionConfig) -> None:
        super().__init__(config)
        self.text = nn.Linear(config.text_dim, config.hidden)
        self.image = nn.Linear(config.image_dim, config.hidden)
        self.head = make_head(config, config.hidden)

    def embed(self, batch: Batch) -> torch.Tensor:
        self.check_inputs(batch)
        total = 0
        for name, layer in (("text", self.text), ("image", self.image)):
            part = layer(batch[name].float())
            mask = present(batch, name)
            total = total + (part if mask is None else part * mask.float().unsqueeze(1))
        return torch.relu(total)


register_recipe(
    Recipe(
        "sum",
        "a user's fusion: both modalities' vectors projected and summed",
        ("text", "image"),
        "glove_mean",
        {"text": ("vectors",), "image": ("vectors",)},
        lambda inputs: {
            "kind": "sum_fusion",
            "text_dim": inputs["text"].dim,
            "image_dim": inputs["image"].dim,
        },
    )
)


def test_the_registries_list_the_users_network_and_run_model() -> None:
    assert "sum_fusion" in list_models()
    assert "sum" in list_recipes() and "sum" in recipe_choices()
    config = config_from_dict({"kind": "sum_fusion", "text_dim": 3, "image_dim": 2})
    assert isinstance(config, SumFusionConfig)
    with pytest.raises(ValueError, match="already"):
        register_network(SumFusionConfig)(type("Other", (SentimentNet,), {}))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("custom")
    model = SentimentModel(
        model="sum", feature_workers=0, train={"epochs": 3}, model_options={"hidden": 8}
    )
    model.fit(sample_posts(64), work_dir=root / "work", progress=False)
    assert model.network_config_.to_dict()["hidden"] == 8
    return model.save(root / "model")


def test_a_users_fusion_trains_saves_loads_and_predicts_every_kind_of_post(fitted: Path) -> None:
    model = SentimentModel.load(fitted)
    assert isinstance(model.network_, SumFusion)
    posts = sample_posts(80).iloc[64:]
    both = posts[["id", "text", "image"]].to_dict("records")
    halves = [
        {"id": "text-only", "text": both[0]["text"]},
        {"id": "image-only", "image": both[1]["image"]},
    ]
    predictions = model.predict_posts([*both, *halves], workers=0)
    assert all(p.error is None for p in predictions)
    assert {p.modalities for p in predictions[: len(both)]} == {"text+image"}
    assert [p.modalities for p in predictions[len(both) :]] == ["text", "image"]
    labels = model.predict(posts)
    assert set(labels) <= set(model.classes_)
    assert 0.0 <= model.score(posts, posts["label"].tolist()) <= 1.0


def test_a_users_fusion_exports_to_onnx(fitted: Path, tmp_path: Path) -> None:
    out = tmp_path / "onnx"
    result = CliRunner().invoke(app, ["export", str(fitted), "--format", "onnx", "--out", str(out)])
    assert result.exit_code == 0, result.output
    posts = sample_posts(80).iloc[64:][["id", "text", "image"]].to_dict("records")
    exported = predict_rows(OnnxModel.load(out).work, post_rows(posts))
    torch_side = SentimentModel.load(fitted).predict_posts(posts, workers=0)
    gaps = [
        max(abs(a.scores[c] - b.scores[c]) for c in a.scores)
        for a, b in zip(exported, torch_side, strict=True)
    ]
    assert np.max(gaps) < 1e-4
    assert [a.label for a in exported] == [b.label for b in torch_side]
