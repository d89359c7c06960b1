"""An experiment's results: one row per finished run and score, mean ± std per (cell, score),
tables and report.

A run is scored as itself (``model``) and, when the spec asks, as its branches and on its
posts with a modality hidden (:mod:`.scoring`); each score is a row of its own, and a table
row is a (cell, score) pair, its mean and spread taken over seeds and folds.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sentimodal.analysis.experiment.runs import METRICS_FILE, SPLITS, RunTask
from sentimodal.analysis.experiment.scoring import MODEL_SCORE
from sentimodal.analysis.experiment.spec import Cell, ExperimentSpec, expand_grid, format_value
from sentimodal.analysis.plots import model_comparison
from sentimodal.analysis.report import Report, markdown_table
from sentimodal.analysis.results_folder import write_results_folder
from sentimodal.errors import UserInputError
from sentimodal.preparation.dataset import PreparedDataset

RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
METRICS: tuple[str, ...] = ("accuracy", "macro_f1", "weighted_f1")


def _row_id(cell: str, score: str) -> str:
    return cell if score == MODEL_SCORE else f"{cell}:{score}"


def _metric_columns(split: str, metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """The figures of one split's metrics (NaN where a variant predicted nothing)."""
    metrics = metrics or {}
    row = {f"{split}_{m}": metrics.get(m, float("nan")) for m in METRICS}
    if split == "test":
        row["test_n"] = metrics.get("n", 0)
        row["test_posts"] = metrics.get("n_posts", metrics.get("n", 0))
        row["test_kl"] = metrics.get("kl", float("nan"))
        for label, f1 in (metrics.get("per_class_f1") or {}).items():
            row[f"test_f1_{label}"] = float("nan") if f1 is None else f1
    return row


def collect_results(spec: ExperimentSpec, tasks: Sequence[RunTask]) -> pd.DataFrame:
    """One row per finished run and score: cell, score, keys, seed, fold, val/test metrics
    (test also: posts, posts predicted, KL when labels are distributions, per-class F1)."""
    values = {cell.id: cell for cell in expand_grid(spec)}
    rows = []
    for task in tasks:
        path = Path(task.directory) / METRICS_FILE
        if not path.is_file():
            continue
        metrics = json.loads(path.read_text(encoding="utf-8"))
        cell = values.get(task.cell_id)
        label = cell.label if cell else task.cell_id.replace("-", ": ", 1)
        for score, scored in {MODEL_SCORE: metrics, **metrics.get("variants", {})}.items():
            row: dict[str, Any] = {"row": _row_id(task.cell_id, score), "cell": task.cell_id}
            row["label"] = label if score == MODEL_SCORE else f"{label}: {score}"
            row["score"] = score
            for key in spec.grid_keys():
                row[key] = format_value(cell.values[key]) if cell and key in cell.values else None
            row["seed"] = task.seed
            row["fold"] = task.fold
            for split in SPLITS:
                row.update(_metric_columns(split, scored.get(split)))
            row["seconds"] = metrics["seconds"]
            rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["seed"] = frame["seed"].astype("Int64")
        frame["fold"] = frame["fold"].astype("Int64")
    return frame


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and (sample) std over seeds and folds per (cell, score), in first-seen order."""
    columns = [f"{s}_{m}" for s in SPLITS for m in METRICS]
    columns += [c for c in results.columns if c == "test_kl" or c.startswith("test_f1_")]
    grouped = results.groupby("row", sort=False)
    summary = grouped[columns].agg(["mean", "std"])
    summary.columns = [f"{c}_{stat}" for c, stat in summary.columns]
    for column in ("test_posts", "test_n"):
        summary.insert(0, column, grouped[column].sum())
    summary.insert(0, "runs", grouped.size())
    for column in ("score", "cell", "label"):
        summary.insert(0, column, grouped[column].first())
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
    if pd.isna(mean):
        return "–"
    return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def results_table(spec: ExperimentSpec, summary: pd.DataFrame) -> pd.DataFrame:
    """The people's table: one row per (cell, score), mean ± std strings, per-class F1 means
    and, where they apply, the posts predicted, the KL and the reference column."""
    cells = {cell.id: cell for cell in expand_grid(spec)}
    per_class = [
        c.removesuffix("_mean")
        for c in summary.columns
        if c.startswith("test_f1_") and c.endswith("_mean")
    ]
    partial = bool(spec.scores.hide) or bool((summary["test_n"] < summary["test_posts"]).any())
    with_kl = "test_kl_mean" in summary and bool(summary["test_kl_mean"].notna().any())
    rows = []
    for row in summary.to_dict("records"):
        cell = cells.get(row["cell"])
        out: dict[str, Any] = {"cell": row["label"], "runs": row["runs"]}
        if partial:
            out["test posts predicted"] = f"{row['test_n']} of {row['test_posts']}"
        out["val accuracy"] = _mean_std(row, "val_accuracy")
        out["val macro-F1"] = _mean_std(row, "val_macro_f1")
        out["test accuracy"] = _mean_std(row, "test_accuracy")
        out["test macro-F1"] = _mean_std(row, "test_macro_f1")
        out["test weighted-F1"] = _mean_std(row, "test_weighted_f1")
        for column in per_class:
            mean = row[f"{column}_mean"]
            name = f"test F1 {column.removeprefix('test_f1_')}"
            out[name] = "–" if pd.isna(mean) else f"{mean:.3f}"
        if with_kl:
            out["test KL"] = _mean_std(row, "test_kl")
        if spec.reference:
            own = row["score"] == MODEL_SCORE
            out["reference (study)"] = (_reference_text(spec, cell) if own else "") or "–"
        rows.append(out)
    return pd.DataFrame(rows)


def best_cell(summary: pd.DataFrame) -> pd.Series:
    """The grid cell (not a baseline, branch or ablation) with the best mean val accuracy:
    chosen on val only."""
    own = summary[summary["score"] == MODEL_SCORE]
    models = own[~own["cell"].str.startswith("baseline-")]
    if models.empty:
        models = own
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
    counts = dataset.examples["split"].astype(str).value_counts()
    sizes = ", ".join(f"{split} {counts.get(split, 0)}" for split in dataset.splits)
    return f"`{dataset.root}` ({len(dataset.examples)} posts: {sizes}; labels {dataset.labels})"


def protocol_description(spec: ExperimentSpec) -> str:
    """The protocol in one sentence, for the facts under a table."""
    protocol = spec.protocol
    if protocol.kind == "split":
        return "the dataset's split: trained on train, validated on val, tested on test"
    pool = "every post" if protocol.pool is None else f"the {' + '.join(protocol.pool)} posts"
    return (
        f"{protocol.folds}-fold cross-validation over {pool} (folds stratified by label, seed "
        f"{protocol.seed}); in each fold a stratified {protocol.val_fraction:.0%} of the "
        "training folds validates, and the held-out fold is the test set"
    )


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
    own = results[results["score"] == MODEL_SCORE]
    compute = float(own["seconds"].sum())
    spread = "seeds and folds" if spec.protocol.kind == "kfold" else "seeds"
    best_line = (
        f"Best configuration on val (mean val accuracy): **{best['label']}**: test accuracy "
        f"{_mean_std(best, 'test_accuracy')}, test macro-F1 {_mean_std(best, 'test_macro_f1')} "
        f"(mean ± sample std over {best['runs']} run(s): {spread})."
    )
    facts = [
        f"- Command: `{command}`",
        f"- Dataset: {dataset_description(dataset)}",
        f"- Protocol: {protocol_description(spec)}",
        f"- Machine: {machine_description()}; {jobs} parallel job(s)",
        f"- Time: {seconds:.0f} s wall for this invocation; {compute:.0f} s of run time summed "
        f"over the {len(own)} runs (resumed runs count their original time)",
        f"- Runs: {len(own)} ({len(tasks) - len(own)} not finished); seeds "
        f"{', '.join(map(str, spec.seeds))}; baselines are deterministic and run once per fold",
        f"- Test posts per run: {', '.join(str(n) for n in sorted(set(own['test_n'])))} "
        "(models need every modality they read; baselines that read text only use all posts)",
    ]
    note = (
        "Cells are compared on **val**; test is only reported. "
        f"± is the sample standard deviation over {spread}."
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
    report.add_table(table, caption=f"Mean ± std over {spread} (val for selection, test reported)")
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
