"""The recipe table decides, in one place, what a run model reads and which options it takes:
a grid and the estimator must accept and refuse exactly the same settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sentimodal.analysis.experiment import ExperimentSpec, check_spec, load_spec
from sentimodal.errors import UserInputError
from sentimodal.interfaces.cli import app
from sentimodal.models.batches import as_tensors
from sentimodal.models.forward import run_batched
from sentimodal.models.recipes import RECIPES, Recipe, get_recipe, register_recipe
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.pipeline import PrepareConfig, prepare
from sentimodal.sample import sample_path
from sentimodal.specs import list_specs
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.fitting import collapse_warnings
from sentimodal.training.run_config import RunConfig

ONE_EPOCH = {"epochs": 1, "patience": None, "batch_size": 16}
PIXELS = {"image_encoder": "pixels32", "image_encoder_config": {"flatten": False}}

# (run settings, accepted?) covering every recipe, every branch network, derived settings,
# settings of another network and settings that exist nowhere
CASES: list[tuple[dict[str, Any], bool]] = [
    ({"model": "text", "text_encoder": "minilm_tokens", "model_options": {"num_layers": 1}}, True),
    (
        {"model": "text", "text_encoder": "minilm_tokens", "model_options": {"architecture": {}}},
        False,
    ),
    ({"model": "text", "text_encoder": "glove_mean", "model_options": {"hidden": [8]}}, True),
    ({"model": "text", "text_encoder": "glove_mean", "model_options": {"input_dim": 3}}, False),
    ({"model": "text", "text_encoder": "glove_mean", "model_options": {"num_layers": 1}}, False),
    ({"model": "text", "text_encoder": "glove_mean", "model_options": {"bogus": 1}}, False),
    ({"model": "text", "text_encoder": "tokens", "model_options": {"lstm_dim": 8}}, True),
    ({"model": "text", "text_encoder": "tokens", "model_options": {"vocab_size": 9}}, False),
    ({"model": "image", **PIXELS, "model_options": {"channels": [4, 8], "hidden": [8]}}, True),
    ({"model": "image", **PIXELS, "model_options": {"image_size": 16}}, False),
    ({"model": "image", "image_encoder": "pixels32", "model_options": {"c_values": [0.1]}}, True),
    ({"model": "image", "image_encoder": "pixels32", "model_options": {"hidden": [8]}}, False),
    ({"model": "image_mlp", "image_encoder": "pixels32", "model_options": {"hidden": [8]}}, True),
    ({"model": "image_mlp", **PIXELS, "model_options": {"channels": [4, 8]}}, True),
    ({"model": "concat", "text_encoder": "glove_mean", "image_encoder": "pixels32"}, True),
    ({"model": "concat", **PIXELS, "text_encoder": "glove_mean"}, False),
    (
        {
            "model": "gated",
            "text_encoder": "glove_mean",
            "image_encoder": "pixels32",
            "model_options": {"gate": "gl1", "compress_image": 8},
        },
        True,
    ),
    (
        {
            "model": "gated",
            "text_encoder": "glove_mean",
            "image_encoder": "pixels32",
            "model_options": {"text_dim": 3},
        },
        False,
    ),
    ({"model": "gated", "text_encoder": "minilm_tokens", "image_encoder": "pixels32"}, False),
    (
        {
            "model": "late",
            "text_encoder": "minilm_tokens",
            **PIXELS,
            "model_options": {"text": {"num_layers": 1}, "image": {"channels": [4, 8]}},
        },
        True,
    ),
    (
        {
            "model": "late",
            "text_encoder": "glove_mean",
            "image_encoder": "pixels32",
            "model_options": {"hidden": [8]},
        },
        False,
    ),
    (
        {
            "model": "late",
            "text_encoder": "glove_mean",
            "image_encoder": "pixels32",
            "model_options": {"text": {"input_dim": 3}},
        },
        False,
    ),
]


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    """A stratified 36-post slice of the embedded sample: a second per fit."""
    out = tmp_path_factory.mktemp("recipes") / "dataset"
    full = prepare("mvsa", sample_path(), out, PrepareConfig(source="mvsa"), progress=False)
    slice_ = full.examples.groupby(["split", "label"]).head(4)
    return PreparedDataset.from_examples(slice_, out.parent / "small")


def _run(settings: dict[str, Any]) -> dict[str, Any]:
    return {**settings, "feature_workers": 0, "train": ONE_EPOCH}


def _grid_accepts(settings: dict[str, Any]) -> bool:
    try:
        check_spec(ExperimentSpec(name="one", base=_run(settings)))
    except UserInputError:
        return False
    return True


def _estimator_accepts(settings: dict[str, Any], dataset: PreparedDataset) -> bool:
    try:
        SentimentModel(_run(settings)).fit(dataset, progress=False)
    except UserInputError:
        return False
    return True


@pytest.mark.parametrize(("settings", "accepted"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_a_grid_and_the_estimator_accept_the_same_settings(
    settings: dict[str, Any], accepted: bool, small_dataset: PreparedDataset
) -> None:
    assert _grid_accepts(settings) is accepted
    assert _estimator_accepts(settings, small_dataset) is accepted


def test_every_shipped_spec_validates_through_the_recipes() -> None:
    for name in list_specs():
        check_spec(load_spec(name))


def test_an_unknown_model_is_a_user_error_everywhere() -> None:
    with pytest.raises(UserInputError, match="unknown model 'bogus'.*late"):
        SentimentModel(model="bogus").run_config()
    with pytest.raises(UserInputError, match="unknown model 'bogus'"):
        check_spec(ExperimentSpec(name="one", grid={"model": ["bogus"]}))
    with pytest.raises(UserInputError, match="unknown model"):
        get_recipe("bogus")


def test_each_recipe_reads_its_modalities_and_takes_its_own_text_encoder() -> None:
    for name, recipe in RECIPES.items():
        run = RunConfig(model=name)
        assert (run.uses_text, run.uses_image) == (
            "text" in recipe.modalities,
            "image" in recipe.modalities,
        )
        assert run.text_encoder is None  # what the user set: nothing
        if recipe.default_text_encoder is not None:
            assert run.resolved().text_encoder == recipe.default_text_encoder
    assert RunConfig(model="gated").fine_tunes is False
    assert RunConfig(model="late").fine_tunes is True


def test_models_lists_every_recipe_and_train_help_names_them() -> None:
    """`sentimodal models` is the registry as a table (a user's recipe too); `train --model`
    names the models and points there, in one line."""
    mine = Recipe(
        "mine_xyz",
        "a user's own model",
        ("text",),
        None,
        {"text": ("vectors",)},
        lambda inputs: {},
        use_when="testing the listing",
    )
    register_recipe(mine)
    try:
        listed = CliRunner().invoke(app, ["models"], env={"COLUMNS": "400"})
        train = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    finally:
        RECIPES.pop(mine.name)
    assert listed.exit_code == 0 and train.exit_code == 0
    rows = {line.split("│")[1].strip(): line for line in listed.output.splitlines() if "│" in line}
    for name, recipe in [*RECIPES.items(), (mine.name, mine)]:
        assert recipe.use_when in rows[name] and recipe.summary in rows[name]
    for name, recipe in RECIPES.items():
        if recipe.derive.__module__ == "sentimodal.models.recipes":  # shipped, not a test's
            assert name in train.output
    assert "sentimodal models" in train.output
    assert "testing the listing" not in train.output  # the table is not repeated in help


def test_a_late_fusion_gives_each_branch_its_own_options(small_dataset: PreparedDataset) -> None:
    settings = {
        "model": "late",
        "text_encoder": "glove_mean",
        "image_encoder": "pixels32",
        "model_options": {"text": {"hidden": [7]}, "image": {"hidden": [5]}},
    }
    model = SentimentModel(_run(settings)).fit(small_dataset, progress=False)
    assert model.network_config_.text.hidden == [7]
    assert model.network_config_.image.hidden == [5]


def test_predictions_have_one_row_per_input(small_dataset: PreparedDataset, tmp_path: Path) -> None:
    examples = small_dataset.examples.copy()
    examples.loc[examples.index[0], "image"] = None  # a post without its image
    broken = PreparedDataset.from_examples(examples, tmp_path / "broken")
    image = SentimentModel(_run({"model": "image", "image_encoder": "pixels32"}))
    image.fit(small_dataset, progress=False)
    frame = image.predict_frame(broken, "all")
    assert list(frame["id"]) == list(examples["id"].astype(str))
    missing = frame.iloc[0]
    assert missing["label"] is None and "no image input" in missing["error"]
    assert frame["error"].iloc[1:].isna().all()
    proba = image.predict_proba(broken, "all")
    assert proba.shape == (len(examples), len(image.classes_))
    assert all(v != v for v in proba[0]) and (proba[1:] >= 0).all()
    assert len(image.predict(broken, "all")) == len(examples)
    assert image.evaluate(broken, "all")["n_missing"] == 1

    # a fusion judges the same post by its text
    settings = {"model": "concat", "text_encoder": "glove_mean", "image_encoder": "pixels32"}
    fused = SentimentModel(_run(settings)).fit(small_dataset, progress=False)
    frame = fused.predict_frame(broken, "all")
    assert frame["error"].isna().all() and frame["label"].notna().all()
    assert frame["modalities"].iloc[0] == "text"
    assert (frame["modalities"].iloc[1:] == "text+image").all()
    assert fused.evaluate(broken, "all")["n_missing"] == 0


def test_a_model_that_learned_only_the_majority_says_so(small_dataset: PreparedDataset) -> None:
    settings = {"model": "text", "text_encoder": "glove_mean", "model_options": {"hidden": []}}
    model = SentimentModel(_run(settings)).fit(small_dataset, progress=False)
    with torch.no_grad():
        model.network_.head.linear.bias.copy_(torch.tensor([0.0, 0.0, 1e6]))
    val = model.predict_frame(small_dataset, "val")
    assert set(val["label"]) == {model.classes_[2]}
    data = {"text": np.zeros((5, 50), dtype=np.float32)}
    (warning,) = collapse_warnings(model, data, "val")
    assert f"predicts {model.classes_[2]!r} for every val post" in warning


def test_a_late_fusion_learns_its_branch_weights_on_val(
    small_dataset: PreparedDataset, tmp_path: Path
) -> None:
    settings = {"model": "late", "text_encoder": "glove_mean", "image_encoder": "pixels32"}
    stacked = {**settings, "model_options": {"combine": "stacked"}}
    model = SentimentModel(_run(stacked)).fit(small_dataset, progress=False)
    assert model.network_config_.combine == "stacked"
    net = model.network_
    n = len(model.classes_)
    start = torch.cat([torch.eye(n), torch.eye(n)], dim=1) / 2
    assert not torch.allclose(net.stack.weight, start)  # fit on val, not the starting mean

    # the weights are the logistic regression's on val's branch log-probabilities
    inputs = model._inputs(small_dataset, "val", progress=False)
    logp = run_batched(net, as_tensors(inputs.data), net.branch_log_probs)
    with torch.no_grad():
        expected = (logp @ net.stack.weight.T + net.stack.bias).softmax(dim=1).numpy()
    # (and through the temperature fitted on val after them)
    expected = model.calibration_.apply(expected)
    np.testing.assert_allclose(model.predict_proba(small_dataset, "val"), expected, atol=1e-5)

    model.save(tmp_path / "model")
    loaded = SentimentModel.load(tmp_path / "model")
    np.testing.assert_allclose(
        loaded.predict_proba(small_dataset, "all"), model.predict_proba(small_dataset, "all")
    )
    # a post without its image is judged by its text branch alone
    examples = small_dataset.examples.copy()
    examples.loc[examples.index[0], "image"] = None
    broken = PreparedDataset.from_examples(examples, tmp_path / "broken")
    assert loaded.predict_frame(broken, "all")["modalities"].iloc[0] == "text"

    # the default averages (5-fold CV over val found no gain for the fine-tuned default)
    mean = SentimentModel(_run(settings)).fit(small_dataset, progress=False)
    assert mean.network_config_.combine == "mean" and not hasattr(mean.network_, "stack")
    with pytest.raises(UserInputError, match="combine='stacked' needs the softmax head"):
        SentimentModel(_run({**stacked, "head": "embedding"})).fit(small_dataset, progress=False)
