"""`sentimodal prepare`: files, summary, config files, and one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sentimodal.interfaces.cli import app
from sentimodal.preparation.pipeline import make_config
from sentimodal.sample import sample_path

runner = CliRunner()


def test_prepare_sample_writes_dataset_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    args = ["prepare", "mvsa", str(sample_path()), "--out", str(out), "--split", "0.8,0.2"]
    result = runner.invoke(app, [*args, "--classes", "2", "--seed", "5", "--quiet"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "dataset.json",
        "examples.parquet",
        "rejects.csv",
    ]
    info = json.loads((out / "dataset.json").read_text())
    assert info["labels"] == ["negative", "positive"]
    assert info["config"]["seed"] == 5 and info["config"]["split"] == [0.8, 0.2]
    assert info["counts"] == {
        "train": {"negative": 160, "positive": 160},
        "val": {"negative": 40, "positive": 40},
    }
    assert "neutral label in 2-class mode" in result.output
    assert "conflicting labels" in result.output and "Rejects: 200" in result.output


def test_config_file_with_overrides(tmp_path: Path) -> None:
    config_path = make_config("mvsa", label_mode="text", split="none").save(tmp_path / "p.yaml")
    out = tmp_path / "ds"
    args = ["prepare", "mvsa", str(sample_path()), "--out", str(out), "--config", str(config_path)]
    result = runner.invoke(app, [*args, "--filter", "min-words=5", "--quiet"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "dataset.json").read_text())["config"]
    assert (config["label_mode"], config["split"], config["filters"]) == (
        "text",
        None,
        ["min-words=5"],
    )
    examples = pd.read_parquet(out / "examples.parquet")
    assert (examples["label"] == examples["text_label"]).all()


def test_table_source_from_the_command_line(tmp_path: Path) -> None:
    table = tmp_path / "posts.jsonl"
    rows = [{"t": f"great happy post {i}", "s": "pos" if i % 2 else "neg"} for i in range(10)]
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "ds"
    result = runner.invoke(
        app,
        ["prepare", "table", str(table), "--out", str(out), "--text-column", "t"]
        + ["--label-column", "s", "--split", "none", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    # the label set is the column's: no empty third class
    assert json.loads((out / "dataset.json").read_text())["counts"] == {
        "all": {"negative": 5, "positive": 5}
    }
    # no rejects: one line, not an empty table
    assert result.output.rstrip().splitlines()[-1] == "Rejects: none"
    assert "reason" not in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--split", "0.9,0.2"], "invalid prepare option split"),
        (["--filter", "french"], "unknown filter"),
        (["--classes", "5"], "invalid prepare option classes"),
        (["--text-column", "x"], "table source only"),
        (["--anp-scores", "scores.csv"], "mvso source only"),
    ],
)
def test_broken_options_exit_2_in_one_line(tmp_path: Path, extra: list[str], message: str) -> None:
    args = ["prepare", "mvsa", str(sample_path()), "--out", str(tmp_path / "o"), *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_missing_root_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["prepare", "mvsa", str(tmp_path / "nowhere"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "input not found" in result.output and "Traceback" not in result.output
    result = runner.invoke(
        app, ["prepare", "mvsa", str(sample_path()), "-o", str(tmp_path), "--config", "nope.yaml"]
    )
    assert result.exit_code == 2 and "config file not found" in result.output
