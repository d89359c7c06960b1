"""`sentimodal train`, `evaluate` and `predict` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sentimodal.interfaces.cli import app
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path

runner = CliRunner()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    return prepare("mvsa", sample_path(), tmp_path_factory.mktemp("d") / "ds", progress=False)


@pytest.fixture(scope="module")
def model_dir(dataset: PreparedDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("m") / "model"
    config = tmp_path_factory.mktemp("c") / "run.yaml"
    config.write_text("model: concat\ntext_encoder: glove_mean\nfeature_workers: 0\n")
    result = runner.invoke(
        app,
        [
            "train", str(dataset.root), "--out", str(out), "--config", str(config),
            "--image-encoder", "pixels32", "--epochs", "2", "--quiet",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_a_complete_model_directory(model_dir: Path) -> None:
    files = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "metrics.json", "run.yaml"} <= files
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert set(metrics) == {"val", "test"}
    run = (model_dir / "run.yaml").read_text()
    assert "model: concat" in run and "epochs: 2" in run and "image_encoder: pixels32" in run


def test_evaluate_prints_and_writes_metrics(
    model_dir: Path, dataset: PreparedDataset, tmp_path: Path
) -> None:
    out = tmp_path / "metrics.json"
    result = runner.invoke(
        app, ["evaluate", str(model_dir), str(dataset.root), "--split", "val", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert metrics["n"] == len(dataset.split("val"))
    assert {"accuracy", "macro_f1", "weighted_f1", "per_class", "confusion"} <= set(metrics)
    assert f"{metrics['accuracy']:.3f}" in result.output


def test_evaluate_split_all_is_every_post_of_a_split_dataset(
    model_dir: Path, dataset: PreparedDataset, tmp_path: Path
) -> None:
    out = tmp_path / "all.json"
    args = ["evaluate", str(model_dir), str(dataset.root), "--split", "all", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert metrics["split"] == "all" and metrics["n"] + metrics["n_missing"] == len(
        dataset.examples
    )


def test_predict_one_post_and_a_file_with_bad_rows(
    model_dir: Path, dataset: PreparedDataset, tmp_path: Path
) -> None:
    row = dataset.split("test").iloc[0]
    one = runner.invoke(
        app, ["predict", str(model_dir), "--text", row["text"], "--image", row["image"]]
    )
    assert one.exit_code == 0, one.output
    assert any(label in one.output for label in dataset.labels)

    Path(tmp_path / "img.jpg").write_bytes(Path(row["image"]).read_bytes())
    posts = pd.DataFrame(
        {
            "id": ["ok", "no-text", "no-image-file"],
            "text": [row["text"], "", "nice"],
            "image": ["img.jpg", "img.jpg", "gone.jpg"],
        }
    )
    posts.to_csv(tmp_path / "posts.csv", index=False)
    out = tmp_path / "preds.jsonl"
    args = ["predict", str(model_dir), "--input", str(tmp_path / "posts.csv"), "-o", str(out)]
    many = runner.invoke(app, args)
    assert many.exit_code == 0, many.output  # every post was read by one modality or both
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == ["ok", "no-text", "no-image-file"]
    assert lines[0]["label"] in dataset.labels and set(lines[0]["scores"]) == set(dataset.labels)
    # a fusion judges a post without text by its image, and one whose image is gone by its text
    assert lines[1]["error"] is None and lines[1]["modalities"] == "image"
    assert lines[2]["modalities"] == "text" and "not found" in lines[2]["warning"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate", "{model}", "/nonexistent"], "not a prepared dataset"),
        (["predict", "/nonexistent", "--text", "x"], "model directory not found"),
        (["predict", "{model}"], "give --text"),
        (["predict", "{model}", "--text", "x", "--labels", "joy,anger"], "embedding head"),
        (["train", "{data}", "--out", "/tmp/x", "--model", "transformer"], "model"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(
    args: list[str], message: str, model_dir: Path, dataset: PreparedDataset
) -> None:
    argv = [a.format(model=model_dir, data=dataset.root) for a in args]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_train_on_train_and_val_evaluates_only_test(
    dataset: PreparedDataset, tmp_path: Path
) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("model: concat\ntext_encoder: glove_mean\nfeature_workers: 0\n")
    out = tmp_path / "model"
    result = runner.invoke(
        app,
        [
            "train", str(dataset.root), "--out", str(out), "--config", str(config),
            "--image-encoder", "pixels32", "--epochs", "2", "--train-splits", "train,val",
            "--backbone-lr", "3e-5", "--quiet",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "(train + val)" in " ".join(result.output.split())
    assert set(json.loads((out / "metrics.json").read_text())) == {"test"}
    saved = json.loads((out / "config.json").read_text())
    assert saved["train_splits"] == ["train", "val"] and saved["best_epoch"] is None
    assert saved["run"]["train"]["backbone_lr"] == 3e-5
    assert "2 epochs on train + val, no validation" in (out / "report.md").read_text()


def test_predict_image_urls_go_through_the_fetcher(
    model_dir: Path, dataset: PreparedDataset, tmp_path: Path
) -> None:
    from fault_server import ok, running_server

    row = dataset.split("test").iloc[0]
    with running_server() as server:
        server.routes["/photo.jpg"] = ok(Path(row["image"]).read_bytes())
        posts = pd.DataFrame(
            {
                "id": ["loopback", "metadata", "space"],
                "text": [row["text"]] * 3,
                "image": [
                    server.url("/photo.jpg"),
                    "http://169.254.169.254/latest/meta-data/",
                    "http://example.com/a photo.jpg",
                ],
            }
        )
        posts.to_csv(tmp_path / "posts.csv", index=False)
        out = tmp_path / "preds.jsonl"
        args = ["predict", str(model_dir), "--input", str(tmp_path / "posts.csv"), "-o", str(out)]
        refused = runner.invoke(app, args)
        assert refused.exit_code == 0, refused.output
        # the fusion reads these posts by their text, and says why their images were not used
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert {line["modalities"] for line in lines} == {"text"}
        errors = [line["warning"] for line in lines]
        assert "refused: loopback address 127.0.0.1" in errors[0]
        assert "refused: cloud metadata address 169.254.169.254" in errors[1]
        assert "invalid URL (contains a space)" in errors[2]
        assert not server.log
        # the same output under other settings is refused, not mixed; a new one is written
        mixed = runner.invoke(app, [*args, "--allow-private-addresses"])
        assert mixed.exit_code == 2, mixed.output
        args[-1] = str(out := tmp_path / "allowed.jsonl")
        allowed = runner.invoke(app, [*args, "--allow-private-addresses"])
        assert allowed.exit_code == 0, allowed.output
        first = json.loads(out.read_text().splitlines()[0])
        assert first["label"] in dataset.labels and server.counts() == {"/photo.jpg": 1}
        assert first["modalities"] == "text+image"
