"""`sentimodal demo`: its config, its errors, and (slow) a whole reduced run, run twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sentimodal.analysis.demo import DemoConfig
from sentimodal.interfaces.cli import app
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.model_dir import METRICS_FILE
from sentimodal.training.run_config import RunConfig
from test_analysis_report import check_html

runner = CliRunner()


def test_default_config_round_trips_and_covers_the_issue(tmp_path: Path) -> None:
    config = DemoConfig()
    assert DemoConfig.load(config.save(tmp_path / "demo.yaml")) == config
    kinds = {(m.model, m.head) for m in config.models}
    assert kinds == {
        ("text", "softmax"),
        ("image", "softmax"),
        ("concat", "softmax"),
        ("gated", "softmax"),
        ("gated", "embedding"),
        ("late", "softmax"),
    }
    runs = {m.name: config.run_config(m) for m in config.models}
    assert {r.image_encoder for r in runs.values()} == {"efficientnet_lite0"}
    assert {r.text_encoder for n, r in runs.items() if n != "default"} == {"minilm"}
    # the product's default model trains as `sentimodal train` would
    assert runs["default"].resolved() == RunConfig(label_source=config.label_source).resolved()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fused_model: nope\n", "not among the models"),
        ("epochs: 3\n", "epochs"),
    ],
)
def test_bad_config_is_a_one_line_user_error(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["demo", "--config", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_reduced_demo_runs_and_reruns_from_the_cache(tmp_path: Path) -> None:
    config = DemoConfig.model_validate(
        {
            "image_encoder": "pixels32",
            "text_encoder": "vader",
            "train": {"epochs": 3, "patience": None},
            "max_examples": 3,
        }
    )
    config_file = config.save(tmp_path / "reduced.yaml")
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--config", str(config_file), "--quiet"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output

    assert DemoConfig.load(out / "config.yaml") == config
    for spec in config.models:
        directory = out / "models" / spec.name
        model = SentimentModel.load(directory)
        assert model.given_ == config.run_config(spec)
        assert model.run_ == config.run_config(spec).resolved()
        test = json.loads((directory / METRICS_FILE).read_text())["test"]
        assert f"{test['accuracy']:.3f}" in first.output
    markdown = (out / "report.md").read_text(encoding="utf-8")
    for heading in ("## Model comparison (test split)", "## How much do images add?"):
        assert heading in markdown
    assert "embedding-gated-fusion-gl2-glove-embedding-head" in markdown
    assert "Posts where the image" in markdown
    check_html((out / "report.html").read_text(encoding="utf-8"))

    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert second.output.count("(cached)") == 2
