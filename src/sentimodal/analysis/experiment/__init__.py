"""Experiment grids: a spec file in, one run per (cell, seed, fold) and a results table out.

A study's table is a grid of settings (model kind, gate, loss, epochs, ...) trained several
times with different seeds. An :class:`ExperimentSpec` names that grid over a base
:class:`RunConfig`, the protocol (the dataset's split, or k folds of its posts) and what each
run is scored on besides itself (its branches, its posts with a modality hidden);
:func:`run_experiment` trains every run (in parallel processes when asked), writes each run's
config and metrics next to each other, and skips runs whose metrics already exist, so an
interrupted grid resumes where it stopped. Cells are compared on val (model selection); test
(the held-out fold under k folds) is reported.

Output layout::

    OUT/spec.yaml                          the full spec
    OUT/runs/<cell-id>/seed-<s>[/fold-<k>]/run.yaml   the run's full RunConfig
    OUT/runs/<cell-id>/seed-<s>[/fold-<k>]/metrics.json   its metrics (their presence = done)
    OUT/runs/<cell-id>/seed-<s>[/fold-<k>]/scores.csv   test posts' scores (scores.out_of_fold)
    OUT/runs/baseline-<name>[/fold-<k>]/{run.yaml,metrics.json}   baselines (deterministic)
    OUT/hidden/<modality>/                 the posts with that modality removed (scores.hide)
    OUT/results.csv, OUT/results.md, OUT/report.md, OUT/report.html
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sentimodal.analysis.experiment.protocol import (
    PROTOCOL_KINDS,
    KFoldProtocol,
    SplitProtocol,
    views,
)
from sentimodal.analysis.experiment.results import RESULTS_CSV, RESULTS_MD, write_results
from sentimodal.analysis.experiment.runs import (
    HIDDEN_DIR,
    METRICS_FILE,
    RUN_CONFIG_FILE,
    RUNS_DIR,
    SPLITS,
    RunTask,
    execute_run,
    extract_needed_features,
    hidden_dirs,
    is_done,
    plan_runs,
    run_all,
    write_hidden,
)
from sentimodal.analysis.experiment.scoring import MODEL_SCORE, SCORES_FILE, ScoresConfig
from sentimodal.analysis.experiment.spec import (
    MAX_RUNS,
    Cell,
    ExperimentSpec,
    ReferenceEntry,
    check_run,
    check_spec,
    count_runs,
    expand_grid,
    load_spec,
)
from sentimodal.errors import UserInputError
from sentimodal.preparation.dataset import PreparedDataset

SPEC_FILE = "spec.yaml"

__all__ = [
    "HIDDEN_DIR",
    "MAX_RUNS",
    "METRICS_FILE",
    "MODEL_SCORE",
    "PROTOCOL_KINDS",
    "SCORES_FILE",
    "RESULTS_CSV",
    "RESULTS_MD",
    "RUNS_DIR",
    "RUN_CONFIG_FILE",
    "SPEC_FILE",
    "SPLITS",
    "Cell",
    "ExperimentResult",
    "ExperimentSpec",
    "KFoldProtocol",
    "ReferenceEntry",
    "RunTask",
    "ScoresConfig",
    "SplitProtocol",
    "check_run",
    "check_spec",
    "count_runs",
    "execute_run",
    "expand_grid",
    "extract_needed_features",
    "is_done",
    "load_spec",
    "plan_runs",
    "run_experiment",
]


@dataclass
class ExperimentResult:
    out: Path
    results: pd.DataFrame
    summary: pd.DataFrame
    #: runs computed by this invocation (0 when everything was already done)
    computed: int
    skipped: int
    seconds: float


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
    views(spec.protocol, dataset)  # refuses a dataset the protocol cannot cut, before any run
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec.save(out / SPEC_FILE)
    tasks = plan_runs(spec, Path(dataset.root), out)
    todo = [task for task in tasks if not is_done(task)]
    if todo:
        extract_needed_features(spec.protocol.pooled(dataset), todo, progress)
        write_hidden(spec, dataset, out)
        for modality, folder in hidden_dirs(spec, out).items():
            hidden = PreparedDataset.load(folder)
            extract_needed_features(hidden, todo, progress, hidden=modality)
        run_all(todo, min(jobs, len(todo)), progress)
    seconds = time.perf_counter() - start
    results, summary = write_results(
        spec, tasks, out, dataset, command or f"sentimodal experiment {spec.name}", jobs, seconds
    )
    return ExperimentResult(out, results, summary, len(todo), len(tasks) - len(todo), seconds)
