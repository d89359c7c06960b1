"""The image-only default reads EfficientNet-Lite0's multi-level features (``levels=True``:
the last layer's pool plus each stage's mean and std): the run config fills it in for the
``image`` recipe only, and the model trains, saves, loads, predicts raw posts, feeds the
report's modality analysis and exports to ONNX like the plain one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sentimodal.analysis.model_report import modality_analysis
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.run_config import RunConfig
from server_fixtures import sample_posts, score_gap

LEVELS_DIM = 1280 + 2 * 784


def test_only_the_image_recipe_defaults_to_levels_on_the_default_encoder() -> None:
    assert RunConfig(model="image").resolved().image_encoder_config == {"levels": True}
    for model in ("image_mlp", "late", "concat", "gated"):
        assert RunConfig(model=model).resolved().image_encoder_config == {}
    # a setting given, even an empty one, or another encoder: nothing is filled in
    assert RunConfig(model="image", image_encoder_config={}).resolved().image_encoder_config == {}
    assert (
        RunConfig(model="image", image_encoder="mobilenet_v2").resolved().image_encoder_config == {}
    )
    # what a model directory's run.yaml holds reads back the same
    run = RunConfig(model="image")
    assert RunConfig.model_validate(run.to_dict()) == run


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    root = tmp_path_factory.mktemp("levels")
    return PreparedDataset.from_dataframe(
        sample_posts(90), image_column="image", id_column="id", split=(0.6, 0.2, 0.2),
        root=root / "data",
    )  # fmt: skip


@pytest.fixture(scope="module")
def levels_model(small: PreparedDataset) -> SentimentModel:
    return SentimentModel(model="image", feature_workers=0).fit(small, progress=False)


def test_the_levels_default_trains_saves_loads_and_predicts_posts(
    small: PreparedDataset, levels_model: SentimentModel, tmp_path: Path
) -> None:
    model = levels_model
    assert model.image_encoder_.config == {"weights": "imagenet", "levels": True}
    assert (model.network_config_.kind, model.network_config_.input_dim) == ("linear", LEVELS_DIM)
    loaded = SentimentModel.load(model.save(tmp_path / "model"))
    assert loaded.image_encoder_.config == model.image_encoder_.config
    np.testing.assert_allclose(
        loaded.predict_proba(small, "test"), model.predict_proba(small, "test"), atol=1e-6
    )
    posts = small.split("test").head(4)
    predictions = loaded.predict_posts(posts[["id", "image"]].to_dict("records"))
    expected = model.predict_frame(small, "test").set_index("id").loc[posts["id"].astype(str)]
    assert [p.label for p in predictions] == expected["label"].tolist()
    assert all(p.modalities == "image" for p in predictions)
    text = SentimentModel(model="text", text_encoder="glove_mean", train={"epochs": 2})
    text.fit(small, progress=False)
    analysis = modality_analysis(text, model, text, small, "test")
    assert analysis.summary["posts"] == len(small.split("test"))


@pytest.mark.slow
def test_the_levels_default_exports_to_onnx(
    small: PreparedDataset, levels_model: SentimentModel, tmp_path: Path
) -> None:
    from sentimodal.export.onnx import export_onnx
    from sentimodal.inference.onnx_runtime import OnnxModel
    from sentimodal.inference.posts import post_rows, predict_rows

    directory = levels_model.save(tmp_path / "model")
    out = export_onnx(directory, tmp_path / "onnx")
    posts = small.split("test")[["id", "image"]].to_dict("records")
    ours = levels_model.predict_posts(posts, workers=0)
    theirs = predict_rows(OnnxModel.load(out).work, post_rows(posts))
    assert all(p.error is None for p in theirs)
    assert score_gap(ours, theirs) <= 1e-4
