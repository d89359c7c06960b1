"""Experiment grids: a spec file in, one run per (cell, seed) and a results table out.

A study's table is a grid of settings (model kind, gate, loss, epochs, ...) trained several
times with different seeds. An :class:`ExperimentSpec` names that grid over a base
:class:`RunConfig`; :func:`run_experiment` trains every run (in parallel processes when asked),
writes each run's config and metrics next to each other, and skips runs whose metrics already
exist, so an interrupted grid resumes where it stopped. Cells are compared on val (model
selection); test is reported.

Output layout::

    OUT/spec.yaml                          the full spec
    OUT/runs/<cell-id>/seed-<s>/run.yaml   the run's full RunConfig
    OUT/runs/<cell-id>/seed-<s>/metrics.json   val and test metrics (its presence = done)
    OUT/runs/baseline-<name>/{run.yaml,metrics.json}   baselines (deterministic: run once)
    OUT/results.csv, OUT/results.md, OUT/report.md, OUT/report.html
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import platform
import re
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml
from pydantic import Field, ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sentimodal.analysis.baselines import BaselineConfig, BaselineName, run_baseline
from sentimodal.analysis.plots import model_comparison
from sentimodal.analysis.report import Report, markdown_table
from sentimodal.config import Config, Seed, load_data
from sentimodal.errors import UserInputError
from sentimodal.features.store import extract_features
from sentimodal.models.config import (
    ConcatFusionConfig,
    GatedFusionConfig,
    LateFusionConfig,
    MLPConfig,
    ModelConfig,
    PixelCNNConfig,
    TextLSTMConfig,
)
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.specs import list_specs, spec_path
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.run_config import RunConfig

RUNS_DIR = "runs"
RUN_CONFIG_FILE = "run.yaml"
METRICS_FILE = "metrics.json"
SPEC_FILE = "spec.yaml"
#: the most runs (cells x seeds) one spec may ask for
MAX_RUNS = 10_000
RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
METRICS: tuple[str, ...] = ("accuracy", "macro_f1", "weighted_f1")
SPLITS: tuple[str, ...] = ("val", "test")
#: model settings the head and data fill in, so a grid may not set them
_DERIVED_OPTIONS = {
    "kind",
    "head",
    "n_classes",
    "label_dim",
    "input",
    "input_dim",
    "vocab_size",
    "image_size",
    "text_dim",
    "image_dim",
}
#: model config classes each model kind may end up with (the encoder decides which branch)
_MODEL_SETTINGS: dict[str, tuple[type[ModelConfig], ...]] = {
    "text": (MLPConfig, TextLSTMConfig),
    "image": (MLPConfig, PixelCNNConfig),
    "concat": (ConcatFusionConfig,),
    "gated": (GatedFusionConfig,),
    "late": (LateFusionConfig,),
}

Grid = dict[str, Any]


class ReferenceEntry(Config):
    """A published number for one cell: ``cell`` gives the grid values that identify it."""

    cell: dict[str, Any]
    accuracy: float | None = None
    macro_f1: float | None = None
    #: where the number comes from (paper table, dataset, classes)
    note: str = ""


class ExperimentSpec(Config):
    """A grid of runs: the base settings, what varies, the seeds, baselines and references."""

    name: str = Field(min_length=1)
    description: str = ""
    #: the RunConfig every cell starts from
    base: dict[str, Any] = Field(default_factory=dict)
    #: dotted RunConfig keys -> values; a list of grids is the union of their products
    grid: Grid | list[Grid] = Field(default_factory=dict)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    baselines: list[BaselineName] = Field(default_factory=list)
    #: options of the baselines (e.g. the logreg encoders), shared by all of them
    baseline_options: dict[str, Any] = Field(default_factory=dict)
    reference: list[ReferenceEntry] = Field(default_factory=list)

    def grids(self) -> list[Grid]:
        return self.grid if isinstance(self.grid, list) else [self.grid]

    def grid_keys(self) -> list[str]:
        """Every varied key, in the order the grids list them."""
        return list(dict.fromkeys(key for grid in self.grids() for key in grid))


@dataclass(frozen=True)
class Cell:
    """One combination of grid values; its runs differ only by seed."""

    id: str
    values: dict[str, Any]
    label: str

    def run_config(self, base: Mapping[str, Any], seed: int) -> RunConfig:
        data = json.loads(json.dumps(dict(base)))  # a deep copy of plain data
        for key, value in self.values.items():
            _set_dotted(data, key, value)
        _set_dotted(data, "train.seed", seed)
        return RunConfig.model_validate(data)


@dataclass(frozen=True)
class RunTask:
    """One unit of work for a worker process: plain data only, so it crosses processes."""

    cell_id: str
    seed: int | None
    directory: str
    dataset_dir: str
    #: ``"model"`` (a RunConfig dict) or ``"baseline"`` (a BaselineConfig dict)
    kind: str
    config: dict[str, Any]


# ----------------------------------------------------------------------------- the spec


def _validation_message(exc: ValidationError, prefix: str = "") -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{prefix}{where}: {first['msg']}"


def load_spec(spec: str | Path) -> ExperimentSpec:
    """A spec from a YAML file, or a shipped spec by name (``study-fusion``)."""
    path = Path(spec)
    if not path.is_file():
        if str(spec) not in list_specs():
            raise UserInputError(
                f"no spec file {spec} and no shipped spec of that name "
                f"(shipped: {', '.join(list_specs())})"
            )
        path = spec_path(str(spec))
    data = load_data(path, "spec file") or {}
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: a spec is a mapping (name, base, grid, seeds, ...)")
    try:
        parsed = ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        raise UserInputError(_validation_message(exc, f"{path}: bad spec key ")) from None
    check_spec(parsed)
    return parsed


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise UserInputError(f"grid key {key}: {part} is not a group of settings")
        node = child
    node[parts[-1]] = value


def _format_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _cell_id(values: Mapping[str, Any]) -> str:
    """A readable, filesystem-safe, stable name for a combination of grid values."""
    if not values:
        return "base"
    text = ",".join(f"{key}={_format_value(value)}" for key, value in values.items())
    safe = re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)
    if len(safe) > 120:
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]
        safe = f"{safe[:100]}-{digest}"
    return safe


def _cell_label(values: Mapping[str, Any]) -> str:
    """A short name for charts: the last part of each key, unless two keys share it."""
    last = [key.rsplit(".", 1)[-1] for key in values]
    names = [k if last.count(s) > 1 else s for k, s in zip(values, last, strict=True)]
    parts = [
        _format_value(v) if k == "model" else f"{n}={_format_value(v)}"
        for (k, v), n in zip(values.items(), names, strict=True)
    ]
    return " ".join(parts) or "base"


def expand_grid(spec: ExperimentSpec) -> list[Cell]:
    """Every cell of the spec: the product of each grid's values, grids one after another."""
    cells: dict[str, Cell] = {}
    for grid in spec.grids():
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise UserInputError(f"grid key {key}: give a non-empty list of values")
        keys = list(grid)
        for combination in itertools.product(*(grid[key] for key in keys)):
            values = dict(zip(keys, combination, strict=True))
            cell = Cell(_cell_id(values), values, _cell_label(values))
            cells.setdefault(cell.id, cell)
    return list(cells.values())


def _check_model_options(cell: Cell, run: RunConfig) -> None:
    allowed = set().union(*(c.model_fields for c in _MODEL_SETTINGS[run.model])) - _DERIVED_OPTIONS
    for option in run.model_options:
        if option not in allowed:
            raise UserInputError(
                f"cell {cell.id}: model_options.{option} is not a setting of the {run.model} "
                f"model (settings: {', '.join(sorted(allowed))})"
            )


def check_grid_size(spec: ExperimentSpec, limit: int = MAX_RUNS) -> None:
    """Refuse a grid of more than ``limit`` runs before expanding it (10^7 cells would
    otherwise be built in memory and run for ever without a word)."""
    runs = len(spec.seeds)
    cells = 0
    for grid in spec.grids():
        size = 1
        for values in grid.values():
            size *= len(values) if isinstance(values, list) else 1
            if size * runs > limit:
                break
        cells += size
        if cells * runs > limit:
            raise UserInputError(
                f"the grid has more than {limit:,} runs (cells x seeds): split it into smaller "
                "specs"
            )


def check_spec(spec: ExperimentSpec) -> list[Cell]:
    """Validate every cell's RunConfig before anything runs; errors name the key to fix."""
    for key in spec.grid_keys():
        if key == "train.seed":
            raise UserInputError("grid key train.seed: list the seeds under `seeds` instead")
    check_grid_size(spec)
    cells = expand_grid(spec)
    for cell in cells:
        try:
            run = cell.run_config(spec.base, spec.seeds[0])
        except ValidationError as exc:
            raise UserInputError(_validation_message(exc, f"cell {cell.id}: bad key ")) from None
        _check_model_options(cell, run)
    try:
        BaselineConfig.model_validate({"name": "logreg", **spec.baseline_options})
    except ValidationError as exc:
        raise UserInputError(_validation_message(exc, "bad key baseline_options.")) from None
    keys = set(spec.grid_keys())
    for entry in spec.reference:
        unknown = sorted(set(entry.cell) - keys)
        if unknown:
            raise UserInputError(
                f"reference cell {entry.cell}: {', '.join(unknown)} is not a grid key"
            )
    return cells


# ----------------------------------------------------------------------------- runs


def _write_atomic(path: Path, text: str) -> None:
    staged = path.with_name(path.name + ".tmp")
    staged.write_text(text, encoding="utf-8")
    os.replace(staged, path)


def plan_runs(spec: ExperimentSpec, dataset_dir: Path, out: Path) -> list[RunTask]:
    """Every run of the spec, models first, then baselines (each once: they are deterministic)."""
    tasks = [
        RunTask(
            cell_id=cell.id,
            seed=seed,
            directory=str(out / RUNS_DIR / cell.id / f"seed-{seed}"),
            dataset_dir=str(dataset_dir),
            kind="model",
            config=cell.run_config(spec.base, seed).to_dict(),
        )
        for cell in expand_grid(spec)
        for seed in spec.seeds
    ]
    for name in spec.baselines:
        config = BaselineConfig.model_validate({**spec.baseline_options, "name": name})
        tasks.append(
            RunTask(
                cell_id=f"baseline-{name}",
                seed=None,
                directory=str(out / RUNS_DIR / f"baseline-{name}"),
                dataset_dir=str(dataset_dir),
                kind="baseline",
                config=config.to_dict(),
            )
        )
    return tasks


def is_done(task: RunTask) -> bool:
    """A run is done iff its metrics exist; a different config there is refused, not mixed in."""
    directory = Path(task.directory)
    if not (directory / METRICS_FILE).is_file():
        return False
    saved = yaml.safe_load((directory / RUN_CONFIG_FILE).read_text(encoding="utf-8"))
    if saved != task.config:
        raise UserInputError(
            f"{directory} holds a finished run with other settings than this spec's; "
            "write to another --out (or delete that run to redo it)"
        )
    return True


def execute_run(task: RunTask) -> float:
    """Train (or compute) one run and write its config and metrics; returns the seconds taken."""
    start = time.perf_counter()
    directory = Path(task.directory)
    directory.mkdir(parents=True, exist_ok=True)
    _write_atomic(directory / RUN_CONFIG_FILE, yaml.safe_dump(task.config, sort_keys=False))
    dataset = PreparedDataset.load(task.dataset_dir)
    if task.kind == "baseline":
        result = run_baseline(dataset, BaselineConfig.model_validate(task.config))
    else:
        model = SentimentModel(RunConfig.model_validate(task.config)).fit(dataset, progress=False)
        result = {split: model.evaluate(dataset, split) for split in SPLITS}
        result.update(
            best_epoch=model.best_epoch_,
            epochs_trained=len(model.history_),
            gate_stats=model.gate_stats(),
        )
    seconds = time.perf_counter() - start
    result["seconds"] = seconds
    _write_atomic(directory / METRICS_FILE, json.dumps(result, indent=2, default=float) + "\n")
    return seconds


def _single_thread_worker() -> None:
    """Parallel runs share the cores: one torch thread each avoids oversubscription."""
    torch.set_num_threads(1)


def extract_needed_features(
    dataset: PreparedDataset, tasks: Sequence[RunTask], progress: bool = True
) -> None:
    """Extract every encoder's features once, before the runs (the store caches them), so
    parallel workers only read them and never compete to write the same folder."""
    wanted: dict[str, dict[str, Any]] = {}

    def want(kind: str, name: str, config: dict[str, Any], **settings: Any) -> None:
        other = "text" if kind == "image" else "image"
        arguments = {kind: name, f"{kind}_config": config, other: None, **settings}
        wanted.setdefault(json.dumps([kind, name, config]), arguments)

    for task in tasks:
        if task.kind == "model":
            run = RunConfig.model_validate(task.config)
            settings = {"batch_size": run.feature_batch_size, "workers": run.feature_workers}
            if run.uses_image:
                want("image", run.image_encoder, run.image_encoder_config, **settings)
            if run.uses_text:
                want("text", run.text_encoder, run.text_encoder_config, **settings)
        else:
            for kind, name in BaselineConfig.model_validate(task.config).encoders().items():
                want(kind, name, {})
    for arguments in wanted.values():
        extract_features(dataset, **arguments, progress=progress)


def _run_all(todo: list[RunTask], jobs: int, progress: bool) -> None:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), disable=not progress) as bar:
        job = bar.add_task("runs", total=len(todo))
        if jobs == 1:
            for task in todo:
                bar.update(job, description=f"{task.cell_id} seed {task.seed}")
                execute_run(task)
                bar.advance(job)
            return
        context = get_context("spawn")
        with ProcessPoolExecutor(jobs, context, initializer=_single_thread_worker) as pool:
            futures = {pool.submit(execute_run, task): task for task in todo}
            for future in as_completed(futures):
                future.result()
                task = futures[future]
                bar.update(job, description=f"done {task.cell_id} seed {task.seed}")
                bar.advance(job)


# ----------------------------------------------------------------------------- results


def collect_results(spec: ExperimentSpec, tasks: Sequence[RunTask]) -> pd.DataFrame:
    """One row per finished run: cell keys, seed, val/test metrics, n, seconds."""
    values = {cell.id: cell for cell in expand_grid(spec)}
    rows = []
    for task in tasks:
        path = Path(task.directory) / METRICS_FILE
        if not path.is_file():
            continue
        metrics = json.loads(path.read_text(encoding="utf-8"))
        cell = values.get(task.cell_id)
        row: dict[str, Any] = {"cell": task.cell_id}
        row["label"] = cell.label if cell else task.cell_id.replace("-", ": ", 1)
        for key in spec.grid_keys():
            row[key] = _format_value(cell.values[key]) if cell and key in cell.values else None
        row["seed"] = task.seed
        for split in SPLITS:
            for metric in METRICS:
                row[f"{split}_{metric}"] = metrics[split][metric]
        row["test_n"] = metrics["test"]["n"]
        row["seconds"] = metrics["seconds"]
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["seed"] = frame["seed"].astype("Int64")
    return frame


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and (sample) std over seeds per cell, in the order the cells first appear."""
    columns = [f"{s}_{m}" for s in SPLITS for m in METRICS]
    grouped = results.groupby("cell", sort=False)
    summary = grouped[columns].agg(["mean", "std"])
    summary.columns = [f"{c}_{stat}" for c, stat in summary.columns]
    summary.insert(0, "runs", grouped.size())
    summary.insert(0, "label", grouped["label"].first())
    return summary.reset_index()


def _reference_text(spec: ExperimentSpec, cell: Cell | None) -> str:
    if cell is None:
        return ""
    texts = []
    for entry in spec.reference:
        if all(k in cell.values and cell.values[k] == v for k, v in entry.cell.items()):
            parts = [
                f"{name} {value:.3f}"
                for name, value in (("acc", entry.accuracy), ("macro-F1", entry.macro_f1))
                if value is not None
            ]
            texts.append(" ".join(parts) + (f" ({entry.note})" if entry.note else ""))
    return "; ".join(texts)


def _mean_std(row: Mapping[str, Any], column: str) -> str:
    mean, std = row[f"{column}_mean"], row[f"{column}_std"]
    return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def results_table(spec: ExperimentSpec, summary: pd.DataFrame) -> pd.DataFrame:
    """The people's table: one row per cell, mean ± std strings, and the reference column."""
    cells = {cell.id: cell for cell in expand_grid(spec)}
    rows = []
    for row in summary.to_dict("records"):
        cell = cells.get(row["cell"])
        out: dict[str, Any] = {"cell": row["label"]}
        out["seeds"] = row["runs"] if cell else "–"
        out["val accuracy"] = _mean_std(row, "val_accuracy")
        out["val macro-F1"] = _mean_std(row, "val_macro_f1")
        out["test accuracy"] = _mean_std(row, "test_accuracy")
        out["test macro-F1"] = _mean_std(row, "test_macro_f1")
        out["test weighted-F1"] = _mean_std(row, "test_weighted_f1")
        if spec.reference:
            out["reference (study)"] = _reference_text(spec, cell) or "–"
        rows.append(out)
    return pd.DataFrame(rows)


def best_cell(summary: pd.DataFrame) -> pd.Series:
    """The grid cell (not a baseline) with the best mean val accuracy: chosen on val only."""
    models = summary[~summary["cell"].str.startswith("baseline-")]
    if models.empty:
        models = summary
    return models.loc[models["val_accuracy_mean"].idxmax()]


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores ({cpu}), {platform.system()} {platform.release()}"


def dataset_description(dataset: PreparedDataset) -> str:
    """Where the posts came from and how many of each split, so a table can be traced back."""
    sizes = ", ".join(f"{split} {len(dataset.split(split))}" for split in ("train", *SPLITS))
    return f"`{dataset.root}` ({len(dataset.examples)} posts: {sizes}; labels {dataset.labels})"


@dataclass
class ExperimentResult:
    out: Path
    results: pd.DataFrame
    summary: pd.DataFrame
    #: runs computed by this invocation (0 when everything was already done)
    computed: int
    skipped: int
    seconds: float


def write_results(
    spec: ExperimentSpec,
    tasks: Sequence[RunTask],
    out: Path,
    dataset: PreparedDataset,
    command: str,
    jobs: int,
    seconds: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results.csv, results.md and the report (md + html) from every finished run."""
    results = collect_results(spec, tasks)
    if results.empty:
        raise UserInputError(f"{out}: no finished run to report")
    results.drop(columns=["label"]).to_csv(out / RESULTS_CSV, index=False)
    summary = summarise(results)
    table = results_table(spec, summary)
    best = best_cell(summary)
    compute = float(results["seconds"].sum())
    best_line = (
        f"Best configuration on val (mean val accuracy): **{best['label']}**: test accuracy "
        f"{_mean_std(best, 'test_accuracy')}, test macro-F1 {_mean_std(best, 'test_macro_f1')} "
        f"(mean ± sample std over {best['runs']} seed(s))."
    )
    facts = [
        f"- Command: `{command}`",
        f"- Dataset: {dataset_description(dataset)}",
        f"- Machine: {machine_description()}; {jobs} parallel job(s)",
        f"- Time: {seconds:.0f} s wall for this invocation; {compute:.0f} s of run time summed "
        f"over the {len(results)} runs (resumed runs count their original time)",
        f"- Runs: {len(results)} ({len(tasks) - len(results)} not finished); seeds "
        f"{', '.join(map(str, spec.seeds))}; baselines are deterministic and run once",
        f"- Test posts: {', '.join(str(n) for n in sorted(set(results['test_n'])))} "
        "(models need every modality they read; baselines that read text only use all posts)",
    ]
    note = (
        "Cells are compared on **val**; test is only reported. "
        "± is the sample standard deviation over seeds."
    )
    parts = [
        f"# Experiment {spec.name}",
        spec.description.strip(),
        markdown_table(table),
        best_line,
        note,
        "\n".join(facts),
    ]
    (out / RESULTS_MD).write_text("\n\n".join(p for p in parts if p) + "\n", encoding="utf-8")

    report = Report(f"Experiment {spec.name}")
    if spec.description:
        report.add_markdown(spec.description)
    report.add_section("Results")
    report.add_table(table, caption="Mean ± std over seeds (val for selection, test reported)")
    report.add_markdown(best_line)
    chart = summary.rename(
        columns={f"test_{m}_{s}": f"{m}_{s}" for m in METRICS for s in ("mean", "std")}
    )
    report.add_figure(
        model_comparison(chart, model_column="label", title="Test split"),
        "comparison",
        "Test accuracy and macro-F1 per cell",
    )
    report.add_section("How it was run")
    report.add_markdown("\n".join(facts))
    report.add_config(spec, caption="Spec")
    report.write(out)
    return results, summary


def run_experiment(
    spec: ExperimentSpec,
    dataset_dir: str | Path,
    out: str | Path,
    *,
    jobs: int = 1,
    command: str = "",
    progress: bool = True,
) -> ExperimentResult:
    """Run every unfinished run of the spec, then write the results; resumable."""
    if jobs < 1:
        raise UserInputError("--jobs must be at least 1")
    start = time.perf_counter()
    check_spec(spec)
    dataset = PreparedDataset.load(dataset_dir)
    missing = [s for s in ("train", *SPLITS) if s not in dataset.splits]
    if missing:
        raise UserInputError(
            f"{dataset.root}: experiments need train, val and test splits; missing "
            f"{', '.join(missing)}"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec.save(out / SPEC_FILE)
    tasks = plan_runs(spec, Path(dataset.root), out)
    todo = [task for task in tasks if not is_done(task)]
    if todo:
        extract_needed_features(dataset, todo, progress)
        _run_all(todo, min(jobs, len(todo)), progress)
    seconds = time.perf_counter() - start
    results, summary = write_results(
        spec, tasks, out, dataset, command or f"sentimodal experiment {spec.name}", jobs, seconds
    )
    return ExperimentResult(out, results, summary, len(todo), len(tasks) - len(todo), seconds)
