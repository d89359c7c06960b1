"""The model report on a small real dataset (120 sample posts, cheap encoders): files written,
HTML well-formed with decodable pictures, numbers equal to what the model measures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sentimodal.analysis.modality import FUSED_MODEL, IMAGE_MODEL, TEXT_MODEL
from sentimodal.analysis.model_report import (
    add_comparison,
    add_modality_section,
    baseline_warnings,
    comparison_frame,
    gate_warnings,
    metrics_frame,
    model_report,
)
from sentimodal.analysis.report import Report, markdown_table
from sentimodal.evaluation.metrics import wilson_interval
from sentimodal.interfaces.cli import app
from sentimodal.preparation.dataset import PreparedDataset, count_by_split
from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.run_config import RunConfig
from test_analysis_report import check_html

CHEAP = {"text_encoder": "vader", "image_encoder": "pixels32", "feature_workers": 0}
TRAIN = {"epochs": 3, "patience": None, "batch_size": 16}


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    """40 posts per split of the embedded sample, with their text/image annotations."""
    root = tmp_path_factory.mktemp("model-report")
    full = prepare("mvsa", sample_path(), root / "full", progress=False, split=[0.6, 0.2, 0.2])
    examples = full.examples.groupby("split", sort=False).head(40).reset_index(drop=True)
    counts = count_by_split(examples["split"].tolist(), examples["label"].tolist(), full.labels)
    info = {**full.info, "counts": {s: counts[s] for s in full.splits}, "n_examples": 120}
    return PreparedDataset(examples, info).save(root / "small")


def fit(dataset: PreparedDataset, **run: object) -> SentimentModel:
    config = RunConfig.model_validate({**CHEAP, **run, "train": TRAIN})
    return SentimentModel(config).fit(dataset, progress=False)


def test_report_of_gated_embedding_model(small_dataset: PreparedDataset, tmp_path: Path) -> None:
    model = fit(small_dataset, model="gated", head="embedding")
    paths = model_report(model, small_dataset, title="small gated").write(tmp_path)

    markdown = paths.markdown.read_text(encoding="utf-8")
    measured = model.evaluate_splits(small_dataset)
    assert set(measured) == {"val", "test"}
    assert markdown_table(metrics_frame(measured)) in markdown
    pictures = sorted(p.name for p in (tmp_path / "report_files").iterdir())
    for kind in ("confusion-", "curves-", "gates-", "embedding-"):
        assert any(kind in name for name in pictures), (kind, pictures)
    for name in pictures:
        assert f"report_files/{name}" in markdown
    for modality in ("text", "image"):
        assert f"| {modality} | {model.gate_stats()[modality]['dim']} |" in markdown

    checker = check_html(paths.html.read_text(encoding="utf-8"))
    assert len(checker.image_sources) == len(pictures)

    # read top-down: what was trained on what, headline numbers with the majority baseline and
    # the test confusion first; the settings last, only those that act on this run
    summary = markdown.index("Model `gated` with an embedding head")
    headline = markdown.index("majority accuracy")
    assert "95% interval" in markdown
    settings = markdown.index("Settings that act on this run")
    assert summary < headline < markdown.index("confusion-summary-test") < settings
    assert markdown.index("Metrics per split") < settings
    table = markdown[settings:]
    assert "label_source" in table and "momentum" not in table and "backbone_lr" not in table


def test_settings_shown_are_those_that_act_on_the_run() -> None:
    softmax = RunConfig(model="gated").applicable()
    assert "label_source" not in softmax and "momentum" not in softmax["train"]
    assert "backbone_lr" not in softmax["train"] and "text_encoder" in softmax
    image = RunConfig(model="image", train={"optimizer": "sgd"}).applicable()
    assert "text_encoder" not in image and image["train"]["momentum"] == 0.9
    tuned = RunConfig().applicable()
    assert tuned["train"]["backbone_lr"] == 5e-5 and tuned["train"]["warmup"] == 0.1


def test_report_of_a_solved_model_shows_only_what_acted(
    small_dataset: PreparedDataset, tmp_path: Path
) -> None:
    """The image-only model is logistic regression solved in closed form: no epoch curves and
    no optimiser or epoch settings, which never acted on it."""
    model = fit(small_dataset, model="image")
    assert len(model.history_) == 1 and "c" in model.history_[0]
    paths = model_report(model, small_dataset, title="solved").write(tmp_path)
    markdown = paths.markdown.read_text(encoding="utf-8")
    assert "solved as logistic regression with C=" in markdown
    assert not any("curves-" in p.name for p in (tmp_path / "report_files").iterdir())
    table = markdown[markdown.index("Settings that act on this run") :]
    for inert in ("train.epochs", "train.patience", "train.lr", "train.optimizer", "train.batch"):
        assert inert not in table, inert
    assert "train.class_weight" in table and "train.seed" in table
    shown = RunConfig(model="image").applicable(solved=True)["train"]
    assert set(shown) == {"seed", "class_weight"}


def test_comparison_and_modality_sections(small_dataset: PreparedDataset, tmp_path: Path) -> None:
    text, image = fit(small_dataset, model="text"), fit(small_dataset, model="image")
    fused = fit(small_dataset, model="gated")
    results = {name: m.evaluate(small_dataset) for name, m in (("t", text), ("i", image))}
    report = Report("comparison")
    table = add_comparison(report, results)
    assert table["accuracy"].tolist() == [results["t"]["accuracy"], results["i"]["accuracy"]]
    analysis = add_modality_section(report, text, image, fused, small_dataset)

    # every test post has text and an image here, so the analysis covers the whole split
    accuracy = analysis.accuracy.set_index("model")["accuracy"]
    for name, model in ((TEXT_MODEL, text), (IMAGE_MODEL, image), (FUSED_MODEL, fused)):
        measured = model.evaluate(small_dataset)
        assert measured["n_missing"] == 0
        assert accuracy[name] == pytest.approx(measured["accuracy"])
    assert analysis.by_agreement is not None and analysis.by_agreement["posts"].sum() == 40
    changed = analysis.changed
    assert (changed[TEXT_MODEL] != changed[FUSED_MODEL]).all()

    paths = report.write(tmp_path)
    markdown = paths.markdown.read_text(encoding="utf-8")
    assert markdown_table(comparison_frame(results)) in markdown
    assert "## How much do images add?" in markdown
    assert "gate-values" in markdown
    check_html(paths.html.read_text(encoding="utf-8"))


def test_train_command_writes_the_report(small_dataset: PreparedDataset, tmp_path: Path) -> None:
    out = tmp_path / "model"
    args = ["train", str(small_dataset.root), "--out", str(out), "--model", "concat"]
    args += ["--text-encoder", "vader", "--image-encoder", "pixels32", "--epochs", "2", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    markdown = (out / "report.md").read_text(encoding="utf-8")
    measured = SentimentModel.load(out).evaluate_splits(small_dataset)
    assert markdown_table(metrics_frame(measured)) in markdown
    assert re.search(r"\| model \| concat \|", markdown)
    check_html((out / "report.html").read_text(encoding="utf-8"))


def test_evaluation_says_which_posts_the_model_trained_on(
    small_dataset: PreparedDataset, tmp_path: Path
) -> None:
    """`--split all` mixes training posts in: the count is said, and the others are scored
    apart; the fingerprints survive saving and recognise the same posts under new ids."""
    model = fit(small_dataset, model="text")
    every = model.evaluate(small_dataset, "all")
    assert every["n_training_posts"] == 40 and every["n"] == 120
    unseen = every["unseen"]
    held_out = {split: model.evaluate(small_dataset, split) for split in ("val", "test")}
    assert unseen["n"] == 80
    correct = sum(m["accuracy"] * m["n"] for m in held_out.values())
    assert unseen["accuracy"] == pytest.approx(correct / 80)
    assert held_out["test"]["n_training_posts"] == 0 and "unseen" not in held_out["test"]

    model.save(tmp_path / "m")
    loaded = SentimentModel.load(tmp_path / "m")
    train = small_dataset.split("train")
    renamed = train.assign(id=[f"copy-{i}" for i in range(len(train))])
    again = loaded.evaluate(renamed[["id", "text", "image", "label"]], y=None)
    assert again["n_training_posts"] == 40 and again["unseen"] is None

    (tmp_path / "m" / "training_posts.safetensors").unlink()
    older = SentimentModel.load(tmp_path / "m").evaluate(small_dataset, "all")
    assert "n_training_posts" not in older

    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "m"), str(small_dataset.root)])
    assert "does not record its training posts" in result.output
    model.save(tmp_path / "m2")
    out = CliRunner().invoke(
        app, ["evaluate", str(tmp_path / "m2"), str(small_dataset.root), "--split", "all"]
    )
    assert out.exit_code == 0, out.output
    flat = " ".join(out.output.split())
    assert "40 of the 120 posts are the model's training posts" in flat
    assert "the 80 posts it was not trained on" in flat
    assert "95% interval" in flat


def test_accuracy_interval_and_honest_headlines() -> None:
    assert wilson_interval(50, 100) == pytest.approx([0.4038, 0.5962], abs=1e-4)
    low, high = wilson_interval(10, 10)
    assert high == pytest.approx(1.0) and 0.72 < low < 0.73  # sane where p(1-p) is 0
    tie = {"n": 10, "accuracy": 0.6, "majority_baseline": {"label": "positive", "accuracy": 0.6}}
    beaten = {**tie, "accuracy": 0.7}
    assert baseline_warnings({"test": beaten}) == []
    [warning] = baseline_warnings({"test": tie})
    assert "'positive' ties the model" in warning

    moved = {"mean": 0.7, "std": 0.1, "near_zero": 0.0}
    unmoved = {"mean": 0.501, "std": 0.001, "near_zero": 0.0}
    shut = {"mean": 0.01, "std": 0.01, "near_zero": 0.95}
    warnings = gate_warnings({"text": moved, "image": unmoved}, start=0.5)
    assert len(warnings) == 1 and "image gates stayed at their start" in warnings[0]
    assert "shuts the text out" in gate_warnings({"text": shut}, start=0.5)[0]
    assert gate_warnings({"text": unmoved}, start=1.0) == []
