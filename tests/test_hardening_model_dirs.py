"""A model directory is untrusted input: bounded reads, checked labels and shapes before any
allocation, finite numbers; its commands fail on one line and check outputs before work."""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from hardening import assert_user_error, invoke
from sentimodal.errors import UserInputError
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path
from sentimodal.training.estimator import SentimentModel


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("d") / "ds"
    prepare("mvsa", sample_path(), out, progress=False)
    return out


@pytest.fixture(scope="module")
def trained(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("m") / "model"
    config = tmp_path_factory.mktemp("c") / "run.yaml"
    config.write_text("model: text\ntext_encoder: glove_mean\nfeature_workers: 0\n")
    result = invoke("train", dataset, "--out", out, "--config", config, "--epochs", "1", "--quiet")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def model(trained: Path, tmp_path: Path) -> Path:
    """A copy of the trained model directory to break."""
    return Path(shutil.copytree(trained, tmp_path / "model"))


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("name", ["config.json", "labels.json", "vocab.json"])
def test_json_symlinked_to_dev_zero_is_refused(model: Path, name: str) -> None:
    (model / name).unlink(missing_ok=True)
    os.symlink("/dev/zero", model / name)
    if name == "vocab.json":
        return  # glove_mean learns no vocabulary: checked through the tokens encoder below
    with pytest.raises(UserInputError, match="not a regular file"):
        SentimentModel.load(model)


def test_vocab_symlinked_to_dev_zero_is_refused(tmp_path: Path) -> None:
    from sentimodal.features.text_encoders import get_text_encoder

    os.symlink("/dev/zero", tmp_path / "vocab.json")
    with pytest.raises(UserInputError, match="not a regular file"):
        get_text_encoder("tokens").load(tmp_path)


def test_huge_hidden_size_is_refused_before_allocating(model: Path) -> None:
    def huge(config: dict) -> None:
        config["model"]["hidden"] = [10**9]

    edit_json(model / "config.json", huge)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(UserInputError, match="does not fit the model"):
        SentimentModel.load(model)
    assert time.perf_counter() - started < 10
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 500, f"memory grew by {grown_mb:.0f} MB"


@pytest.mark.parametrize(
    ("labels", "needle"),
    [
        ([], "at least two"),
        (["positive"], "at least two"),
        ([1, 2, 3], "non-empty strings"),
        (["a", ""], "non-empty strings"),
        (["neg", "neg", "pos"], "listed twice"),
        ("positive", "non-empty strings"),
    ],
)
def test_bad_labels_in_config_are_refused(model: Path, labels: object, needle: str) -> None:
    edit_json(model / "config.json", lambda config: config.update(labels=labels))
    with pytest.raises(UserInputError, match=needle):
        SentimentModel.load(model)


def test_duplicate_labels_in_labels_json_are_refused(model: Path) -> None:
    edit_json(model / "labels.json", lambda data: data.update(labels=["a", "a", "b"]))
    with pytest.raises(UserInputError, match="listed twice"):
        SentimentModel.load(model)


@pytest.mark.parametrize("encoders", [{}, [], {"text": "glove_mean"}, {"audio": {}}])
def test_bad_encoder_lists_are_refused(model: Path, encoders: object) -> None:
    edit_json(model / "config.json", lambda config: config.update(encoders=encoders))
    with pytest.raises(UserInputError):
        SentimentModel.load(model)


def test_nan_weights_are_refused(model: Path) -> None:
    weights = load_file(str(model / "model.safetensors"))
    name = next(iter(weights))
    weights[name] = np.full_like(weights[name], np.nan)
    save_file(weights, str(model / "model.safetensors"))
    with pytest.raises(UserInputError, match="NaN"):
        SentimentModel.load(model)


def test_zero_std_scaler_is_refused(model: Path) -> None:
    scaler = load_file(str(model / "scaler.safetensors"))
    scaler["text.std"] = np.zeros_like(scaler["text.std"])
    save_file(scaler, str(model / "scaler.safetensors"))
    with pytest.raises(UserInputError, match="non-positive"):
        SentimentModel.load(model)


def test_scaler_of_the_wrong_dimension_is_one_line(model: Path) -> None:
    scaler = load_file(str(model / "scaler.safetensors"))
    scaler = {k: v[:7].copy() for k, v in scaler.items()}
    save_file(scaler, str(model / "scaler.safetensors"))
    assert_user_error(invoke("predict", model, "--text", "a lovely day"), "scaler")


def test_evaluate_three_class_model_on_two_class_dataset(trained: Path, tmp_path: Path) -> None:
    two = tmp_path / "two"
    prepare("mvsa", sample_path(), two, progress=False, classes=2)
    result = invoke("evaluate", trained, two)
    assert result.exit_code == 0, result.output
    assert PreparedDataset.load(two).labels == ["negative", "positive"]


def test_evaluate_output_that_is_a_folder(trained: Path, dataset: Path, tmp_path: Path) -> None:
    assert_user_error(invoke("evaluate", trained, dataset, "--output", tmp_path), "not a regular")


@pytest.mark.parametrize("output", ["folder", "/dev/full"])
def test_predict_output_unwritable(trained: Path, tmp_path: Path, output: str) -> None:
    target = tmp_path if output == "folder" else output
    result = invoke("predict", trained, "--text", "nice", "--output", target)
    assert_user_error(result, "not a regular file")


def test_train_out_that_is_a_file_fails_before_training(dataset: Path, tmp_path: Path) -> None:
    existing = tmp_path / "model"
    existing.write_text("x")
    started = time.perf_counter()
    assert_user_error(invoke("train", dataset, "--out", existing), "not a folder")
    assert time.perf_counter() - started < 5


def test_predict_labels_with_no_label(trained: Path) -> None:
    assert_user_error(invoke("predict", trained, "--text", "nice", "--labels", ",,,"))


def test_predict_markup_in_ids_is_printed_as_text(trained: Path, tmp_path: Path) -> None:
    posts = tmp_path / "posts.csv"
    posts.write_text("id,text\n[/bold],a lovely day\n[red]x,sad\n")
    out = tmp_path / "[red]out.jsonl"
    result = invoke("predict", trained, "--input", posts, "--output", out)
    assert result.exit_code == 0, result.output
    assert "[red]out.jsonl" in " ".join(result.output.split())  # printed as text
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == ["[/bold]", "[red]x"]


def test_predict_exits_nonzero_when_its_only_post_fails(trained: Path, tmp_path: Path) -> None:
    result = invoke("predict", trained, "--text", "", "--image", str(tmp_path / "none.jpg"))
    assert result.exit_code != 0 and "Traceback" not in result.output


def test_predict_misspelled_text_column(trained: Path, tmp_path: Path) -> None:
    posts = tmp_path / "posts.csv"
    posts.write_text("id,text\n1,a lovely day\n")
    out = tmp_path / "out.jsonl"
    result = invoke("predict", trained, "--input", posts, "-o", out, "--text-column", "txet")
    assert_user_error(result)
    assert "txet" in result.output
