"""An experiment's results: one row per finished run, mean ± std per cell, tables and report."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sentimodal.analysis.experiment.runs import METRICS_FILE, SPLITS, RunTask
from sentimodal.analysis.experiment.spec import Cell, ExperimentSpec, expand_grid, format_value
from sentimodal.analysis.plots import model_comparison
from sentimodal.analysis.report import Report, markdown_table
from sentimodal.analysis.results_folder import write_results_folder
from sentimodal.errors import UserInputError
from sentimodal.preparation.dataset import PreparedDataset

RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
METRICS: tuple[str, ...] = ("accuracy", "macro_f1", "weighted_f1")


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
            row[key] = format_value(cell.values[key]) if cell and key in cell.values else None
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
    write_results_folder(
        out,
        tables={RESULTS_CSV: results.drop(columns=["label"])},
        files={RESULTS_MD: "\n\n".join(p for p in parts if p) + "\n"},
        report=report,
    )
    return results, summary
