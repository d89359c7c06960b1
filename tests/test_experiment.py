"""Experiment grids: expansion, spec validation, resume, results files, and the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from sentimodal.analysis.experiment import (
    ExperimentSpec,
    check_spec,
    expand_grid,
    load_spec,
    run_experiment,
)
from sentimodal.errors import UserInputError
from sentimodal.interfaces.cli import app
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path
from sentimodal.specs import list_specs, spec_path
from sentimodal.training.run_config import RunConfig

# Cheap real encoders and one epoch keep a whole grid to seconds.
CHEAP_BASE = {
    "text_encoder": "glove_mean",
    "image_encoder": "pixels32",
    "feature_workers": 0,
    "train": {"epochs": 1, "patience": None},
}


def tiny_spec(**changes: object) -> ExperimentSpec:
    data = {
        "name": "tiny",
        "description": "two cells, two seeds",
        "base": CHEAP_BASE,
        "grid": {"model": ["text", "concat"]},
        "seeds": [0, 1],
        "baselines": ["majority"],
        "reference": [{"cell": {"model": "text"}, "accuracy": 0.61, "note": "test reference"}],
        **changes,
    }
    return ExperimentSpec.model_validate(data)


@pytest.fixture(scope="module")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    out = tmp_path_factory.mktemp("sample") / "dataset"
    return prepare("mvsa", sample_path(), out, progress=False)


# ----------------------------------------------------------------------------- the grid


def test_grid_is_the_product_of_its_values_and_a_list_is_the_union() -> None:
    spec = ExperimentSpec(
        name="g",
        grid=[
            {"model": ["concat"]},
            {
                "model": ["gated"],
                "model_options.gate": ["gl1", "gl2"],
                "model_options.compress_image": [None, 600],
            },
        ],
        seeds=[0, 1, 2],
    )
    cells = expand_grid(spec)
    assert len(cells) == 1 + 2 * 2
    assert len({c.id for c in cells}) == len(cells)
    gated = [c for c in cells if c.values["model"] == "gated"]
    pairs = {
        (c.values["model_options.gate"], c.values["model_options.compress_image"]) for c in gated
    }
    assert pairs == {("gl1", None), ("gl1", 600), ("gl2", None), ("gl2", 600)}
    run = gated[0].run_config({"train": {"epochs": 7}}, seed=2)
    assert run.model == "gated" and run.train.seed == 2 and run.train.epochs == 7
    assert run.model_options == {"gate": "gl1", "compress_image": None}
    assert spec.grid_keys() == ["model", "model_options.gate", "model_options.compress_image"]


def test_empty_grid_is_one_cell_of_the_base() -> None:
    cells = expand_grid(ExperimentSpec(name="b", base={"model": "text"}))
    assert [c.id for c in cells] == ["base"]
    assert cells[0].run_config({"model": "text"}, seed=0).model == "text"


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"grid": {"train.loss": ["mse", "squared"]}}, "train.loss"),
        ({"grid": {"train.lossy": ["mse"]}}, "train.lossy"),
        ({"grid": {"model": ["gated"], "model_options.gatee": ["gl1"]}}, "model_options.gatee"),
        ({"grid": {"model": ["concat"], "model_options.gate": ["gl1"]}}, "model_options.gate"),
        ({"grid": {"train.seed": [0, 1]}}, "train.seed"),
        ({"grid": {"model": []}}, "model"),
        ({"grid": {"model": "text"}}, "model"),
        ({"reference": [{"cell": {"loss": "mse"}, "accuracy": 0.5}]}, "loss"),
        ({"baseline_options": {"c_value": [1]}}, "baseline_options.c_value"),
    ],
)
def test_bad_spec_is_a_user_error_naming_the_key(changes: dict, named: str) -> None:
    with pytest.raises(UserInputError, match=named.replace(".", r"\.")):
        check_spec(tiny_spec(**changes))


def test_bad_spec_file_is_a_user_error_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "seeds": [0], "baselines": ["coinflip"]}))
    with pytest.raises(UserInputError, match=r"bad spec key baselines\.0"):
        load_spec(path)
    with pytest.raises(UserInputError, match="no spec file .*shipped: "):
        load_spec(tmp_path / "missing.yaml")


def test_shipped_specs_all_validate() -> None:
    names = list_specs()
    assert {"study-fusion", "baselines", "study-embedding"} <= set(names)
    for name in names:
        spec = load_spec(name)
        assert spec.name == name and spec.description.strip()
        # a spread needs three runs per cell: seeds, or folds; a single run says so
        runs = len(spec.seeds) * len(spec.protocol.fold_numbers())
        assert runs >= 3 or "one seed" in spec.description, name
        assert load_spec(spec_path(name)) == spec


def test_every_results_page_a_shipped_spec_names_says_how_to_rerun_it() -> None:
    docs = Path(__file__).resolve().parents[1] / "docs" / "results"
    cited = 0
    for name in list_specs():
        for page in re.findall(r"docs/results/([\w.-]+\.md)", load_spec(name).description):
            assert f"sentimodal experiment {name}" in (docs / page).read_text(), (name, page)
            cited += 1
    assert cited >= 4


# ----------------------------------------------------------------------------- running


def test_grid_writes_runs_and_results_and_resumes(
    sample_dataset: PreparedDataset, tmp_path: Path
) -> None:
    out = tmp_path / "grid"
    spec = tiny_spec()
    first = run_experiment(spec, sample_dataset.root, out, command="pytest run", progress=False)
    assert (first.computed, first.skipped) == (2 * 2 + 1, 0)

    runs = sorted((out / "runs").glob("*/seed-*/metrics.json"))
    assert [p.parent.parent.name for p in runs] == ["model=concat"] * 2 + ["model=text"] * 2
    for path in runs:
        saved = yaml.safe_load((path.parent / "run.yaml").read_text())
        assert saved["train"]["seed"] == int(path.parent.name.removeprefix("seed-"))
        metrics = json.loads(path.read_text())
        assert metrics["test"]["n"] > 0 and 0 <= metrics["val"]["accuracy"] <= 1
    assert (out / "runs" / "baseline-majority" / "metrics.json").is_file()
    assert ExperimentSpec.load(out / "spec.yaml") == spec

    results = pd.read_csv(out / "results.csv")
    assert len(results) == 5
    wanted = {"cell", "model", "seed", "val_accuracy", "test_accuracy", "test_macro_f1"}
    assert wanted | {"test_weighted_f1"} <= set(results.columns)
    text = results[results["cell"] == "model=text"]
    assert sorted(text["seed"]) == [0, 1]
    metrics = json.loads((out / "runs/model=text/seed-1/metrics.json").read_text())
    assert text[text["seed"] == 1]["test_accuracy"].item() == pytest.approx(
        metrics["test"]["accuracy"]
    )

    summary = first.summary.set_index("cell")
    mean = text["test_accuracy"].mean()
    std = text["test_accuracy"].std()
    assert summary.loc["model=text", "test_accuracy_mean"] == pytest.approx(mean)
    markdown = (out / "results.md").read_text()
    assert f"{mean:.3f} ± {std:.3f}" in markdown
    assert "acc 0.610 (test reference)" in markdown
    assert "`pytest run`" in markdown and "CPU cores" in markdown and "s wall" in markdown
    assert f"train {len(sample_dataset.split('train'))}" in markdown
    assert "Best configuration on val" in markdown
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "Experiment tiny" in html

    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("metrics.json")}
    again = run_experiment(spec, sample_dataset.root, out, progress=False)
    assert (again.computed, again.skipped) == (0, 5)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), results)

    (out / "runs/model=concat/seed-1/metrics.json").unlink()
    third = run_experiment(spec, sample_dataset.root, out, progress=False)
    assert (third.computed, third.skipped) == (1, 4)

    # a run.yaml that spells out what the recipe derives (as written before the user's
    # settings were kept apart) is the same run: resumed, not refused
    saved = out / "runs/model=text/seed-1/run.yaml"
    given = RunConfig.model_validate(yaml.safe_load(saved.read_text()))
    saved.write_text(yaml.safe_dump(given.resolved().to_dict(), sort_keys=False))
    fourth = run_experiment(spec, sample_dataset.root, out, progress=False)
    assert (fourth.computed, fourth.skipped) == (0, 5)

    changed = tiny_spec(base={**CHEAP_BASE, "train": {"epochs": 2, "patience": None}})
    with pytest.raises(UserInputError, match="other settings"):
        run_experiment(changed, sample_dataset.root, out, progress=False)


def test_dataset_without_val_split_is_refused(
    sample_dataset: PreparedDataset, tmp_path: Path
) -> None:
    examples = sample_dataset.examples.copy()
    examples.loc[examples["split"] == "val", "split"] = "train"
    flat = PreparedDataset.from_dataframe(
        examples,
        text_columns=["text"],
        image_column="image",
        split_column="split",
        root=tmp_path / "noval",
    )
    with pytest.raises(UserInputError, match="missing val"):
        run_experiment(tiny_spec(), flat.root, tmp_path / "out", progress=False)


@pytest.mark.slow
def test_cli_runs_a_spec_file_in_parallel(sample_dataset: PreparedDataset, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(tiny_spec(baselines=[], reference=[]).to_yaml())
    args = ["experiment", str(spec), "--data", str(sample_dataset.root)]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o"), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert "4 run(s) computed" in result.output
    assert len(pd.read_csv(tmp_path / "o" / "results.csv")) == 4


def test_cli_bad_spec_is_one_line_exit_2(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "x", "grid": {"train.loss": ["squared"]}}))
    result = CliRunner().invoke(
        app, ["experiment", str(spec), "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "train.loss" in result.output and "Traceback" not in result.output
