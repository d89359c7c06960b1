"""Token-level fusion (``model=cross``): EfficientNet-Lite0's 7x7 map as a grid of region
vectors (``grid=true``), the text transformer's tokens attending over it through a gate that
starts shut, and the whole model trained, saved, loaded, asked for raw posts, reported on by
modality and exported like the default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sentimodal.analysis.model_report import modality_analysis, model_report
from sentimodal.errors import UserInputError
from sentimodal.features.image_encoders import get_image_encoder
from sentimodal.models import get_model
from sentimodal.models.text_cross import TextImageCrossAttention
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.run_config import RunConfig, check_run
from sentimodal.training.scaler import FeatureScaler
from server_fixtures import sample_posts, score_gap

pytestmark = pytest.mark.usefixtures("one_thread")

ARCHITECTURE = {
    "vocab_size": 30,
    "hidden_size": 8,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 16,
    "max_position_embeddings": 16,
    "pad_token_id": 0,
}


def test_the_grid_is_the_map_whose_mean_is_the_pooled_vector() -> None:
    grid = get_image_encoder("efficientnet_lite0", grid=True)
    pooled = get_image_encoder("efficientnet_lite0")
    assert grid.shape == (49, 1280) and grid.dim == 49 * 1280
    assert grid.config == {"weights": "imagenet", "grid": True}
    assert "grid" not in pooled.config  # the pooled features keep their cache key
    torch.manual_seed(0)
    batch = torch.randn(2, 3, 224, 224)
    regions = grid.encode(batch)
    assert regions.shape == (2, 49, 1280)
    np.testing.assert_allclose(regions.mean(axis=1), pooled.encode(batch), atol=1e-5)
    np.testing.assert_allclose(grid.classify(batch), pooled.classify(batch), atol=1e-4)
    # the map's side follows the input size (TensorFlow's "same" padding rounds up)
    assert get_image_encoder("efficientnet_lite0", grid=True, resolution=240).shape[0] == 64
    for other in ({"levels": True}, {"flip": True}):
        with pytest.raises(UserInputError, match="grid=true keeps the positions"):
            get_image_encoder("efficientnet_lite0", grid=True, **other)


def test_only_the_cross_recipe_defaults_to_the_grid() -> None:
    run = RunConfig(model="cross").resolved()
    assert run.image_encoder_config == {"grid": True}
    assert run.text_encoder == "minilm_tokens" and run.fine_tunes
    assert RunConfig(model="late").resolved().image_encoder_config == {}
    assert RunConfig.model_validate(run.to_dict()) == run
    # the grid is what the recipe reads, so any encoder named gets it; a config given is kept
    assert RunConfig(
        model="cross", image_encoder="mobilenet_v2"
    ).resolved().image_encoder_config == {"grid": True}
    assert RunConfig(model="cross", image_encoder_config={}).resolved().image_encoder_config == {}


def test_a_run_that_cannot_read_its_features_fails_before_extracting_them(
    tmp_path: Path,
) -> None:
    data = PreparedDataset.from_dataframe(
        sample_posts(20), image_column="image", id_column="id", split=(0.6, 0.2, 0.2),
        root=tmp_path / "data",
    )  # fmt: skip
    model = SentimentModel(model="cross", image_encoder_config={}, feature_workers=0)
    with pytest.raises(UserInputError, match="needs grid: true"):
        model.fit(data, progress=False)
    assert not (data.root / "features").exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"model": "cross", "image_encoder_config": {}}, "image_encoder_config needs grid: true"),
        ({"model": "late", "image_encoder_config": {"grid": True}}, "grid=true is for model=cross"),
        ({"model": "image", "image_encoder_config": {"grid": True}}, "grid=true is for"),
        ({"model": "cross", "text_encoder": "minilm"}, "use minilm_tokens"),
        ({"model": "cross", "text_encoder": "mpnet_tokens"}, "use minilm_tokens"),
    ],
)
def test_the_wrong_encoders_for_a_recipe_say_what_to_use(settings: dict, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        check_run(RunConfig(**settings))


def _cross(**options) -> TextImageCrossAttention:
    settings = {"image_dim": 6, "image_positions": 4, "attention_heads": 2, **options}
    return get_model(
        "text_cross", architecture=ARCHITECTURE, init="random", seed=0, **settings
    ).eval()


def _batch(n: int = 3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(1, 30, (n, 5), generator=generator)
    ids[0, 3:] = 0
    return {"text": ids, "image": torch.randn(n, 4, 6, generator=generator)}


def test_the_gate_starts_shut_so_training_starts_from_the_text_model() -> None:
    model = _cross()
    batch = _batch()
    text_only = {"text": batch["text"]}
    with torch.no_grad():
        torch.testing.assert_close(model(batch), model(text_only))
        model.gate.fill_(1.0)
        opened = model(batch)
        assert (opened - model(text_only)).abs().max() > 1e-4
        # a post marked without its image is read as text alone, the others as before
        marked = {**batch, "image_present": torch.tensor([True, False, True])}
        out = model(marked)
        torch.testing.assert_close(out[1], model(text_only)[1])
        torch.testing.assert_close(out[[0, 2]], opened[[0, 2]])
    assert model.gate_stats()["mean"] == pytest.approx(np.tanh(1.0))
    # the gate learns from the first step: its gradient does not wait for the attention's
    model.gate.data.zero_()
    model.train()
    model(batch).logsumexp(dim=1).sum().backward()
    assert model.gate.grad is not None and model.gate.grad.abs().sum() > 0


def test_a_grid_of_the_wrong_shape_is_a_user_error() -> None:
    model = _cross()
    with pytest.raises(UserInputError, match=r"grid of shape \(N, 4, 6\)"):
        model({"text": _batch()["text"], "image": torch.randn(3, 6)})
    with pytest.raises(UserInputError, match="does not divide"):
        _cross(attention_heads=3)


def test_the_scaler_standardises_a_grid_per_channel(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    grid = (rng.normal(size=(50, 4, 3)) * [1.0, 5.0, 0.1] + [0.0, 2.0, -1.0]).astype(np.float32)
    scaler = FeatureScaler().fit({"image": grid, "text": grid[:, 0]})
    scaled = scaler.transform({"image": grid})["image"]
    np.testing.assert_allclose(scaled.reshape(-1, 3).mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled.reshape(-1, 3).std(axis=0), 1.0, atol=1e-4)
    scaler.save(tmp_path)
    again = FeatureScaler.load(tmp_path).transform({"image": grid})["image"]
    np.testing.assert_array_equal(again, scaled)
    with pytest.raises(UserInputError, match="does not fit its encoder"):
        scaler.transform({"image": grid[:, :, :2]})


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    root = tmp_path_factory.mktemp("cross")
    return PreparedDataset.from_dataframe(
        sample_posts(90), image_column="image", id_column="id",
        split=(0.6, 0.2, 0.2), root=root / "data",
    )  # fmt: skip


@pytest.fixture(scope="module")
def cross_model(small: PreparedDataset) -> SentimentModel:
    settings = {
        "model": "cross",
        "model_options": {"text": {"num_layers": 1}},
        "train": {"epochs": 1, "seed": 0},
        "feature_workers": 0,
    }
    return SentimentModel(**settings).fit(small, progress=False)


def test_the_cross_model_trains_saves_loads_and_predicts_posts(
    small: PreparedDataset, cross_model: SentimentModel, tmp_path: Path
) -> None:
    model = cross_model
    config = model.network_config_
    assert (config.kind, config.text.kind, config.image.kind) == ("late", "text_cross", "mlp")
    assert (config.text.image_positions, config.text.image_dim) == (49, 1280)
    assert model.image_encoder_.config == {"weights": "imagenet", "grid": True}
    assert model.network_.text.gate_stats()["max"] > 0  # training opened the gate
    loaded = SentimentModel.load(model.save(tmp_path / "model"))
    np.testing.assert_allclose(
        loaded.predict_proba(small, "test"), model.predict_proba(small, "test"), atol=1e-5
    )
    posts = small.split("test").head(5)
    predictions = loaded.predict_posts(posts[["id", "text", "image"]].to_dict("records"))
    expected = model.predict_frame(small, "test").set_index("id").loc[posts["id"].astype(str)]
    assert [p.label for p in predictions] == expected["label"].tolist()
    # a post without its image is judged by its text, through the same attention-free path
    alone = loaded.predict_posts([{"id": "t", "text": posts["text"].iloc[0]}])[0]
    text_only = model.branch("text").predict_posts([{"id": "t", "text": posts["text"].iloc[0]}])
    assert alone.modalities == "text"
    calibrated = loaded.calibration_.apply(np.array([list(text_only[0].scores.values())]))[0]
    assert list(alone.scores.values()) == pytest.approx(list(calibrated), abs=1e-5)


def test_the_modality_report_reads_the_cross_model_branches(
    small: PreparedDataset, cross_model: SentimentModel, tmp_path: Path
) -> None:
    analysis = modality_analysis(
        cross_model.branch("text"), cross_model.branch("image"), cross_model, small, "test"
    )
    assert analysis.summary["posts"] == len(small.split("test"))
    model_report(cross_model, small, title="cross").write(tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert "How much do images add?" in markdown and "text only" in markdown
    gate = cross_model.network_.text.gate_stats()
    assert f"after training its mean is **{gate['mean']:.3f}**" in markdown


def test_the_cross_model_exports_to_onnx(
    small: PreparedDataset, cross_model: SentimentModel, tmp_path: Path
) -> None:
    from sentimodal.export.onnx import export_onnx
    from sentimodal.inference.onnx_runtime import OnnxModel
    from sentimodal.inference.posts import post_rows, predict_rows

    out = export_onnx(cross_model.save(tmp_path / "model"), tmp_path / "onnx")
    posts = small.split("test")[["id", "text", "image"]].to_dict("records")
    ours = cross_model.predict_posts(posts, workers=0)
    theirs = predict_rows(OnnxModel.load(out).work, post_rows(posts))
    assert all(p.error is None for p in theirs)
    assert score_gap(ours, theirs) <= 1e-4
