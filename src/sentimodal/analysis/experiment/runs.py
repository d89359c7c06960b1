"""Running an experiment's grid: one task per (cell, seed, fold), resumable, in parallel.

Each run writes its full config, then its metrics (their presence marks it done), so an
interrupted grid resumes where it stopped and a finished run is never redone or mixed with
other settings. A run rebuilds its fold from the dataset and the protocol (plain data), so
workers need nothing but the task.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
import yaml

from sentimodal.analysis.baselines import BaselineConfig, run_baseline
from sentimodal.analysis.experiment.protocol import parse_protocol
from sentimodal.analysis.experiment.scoring import (
    MODEL_SCORE,
    ScoresConfig,
    hide,
    score_run,
)
from sentimodal.analysis.experiment.spec import ExperimentSpec, expand_grid
from sentimodal.errors import UserInputError
from sentimodal.features.store import extract_features
from sentimodal.files import write_atomic, write_json_atomic
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.progress import progress_bar
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.model_dir import RUN_FILE
from sentimodal.training.run_config import RunConfig

RUNS_DIR = "runs"
#: where the dataset's posts with one modality removed are written (one folder per modality)
HIDDEN_DIR = "hidden"
RUN_CONFIG_FILE = RUN_FILE
METRICS_FILE = "metrics.json"
SPLITS: tuple[str, ...] = ("val", "test")


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
    #: the test fold under k folds (None: the dataset's own split)
    fold: int | None = None
    #: the spec's protocol and scores, as plain data
    protocol: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    #: modality -> the dataset folder with that modality removed (for ``scores.hide``)
    hidden: dict[str, str] = field(default_factory=dict)


def _fold_dir(directory: Path, fold: int | None) -> str:
    return str(directory if fold is None else directory / f"fold-{fold}")


def hidden_dirs(spec: ExperimentSpec, out: Path) -> dict[str, str]:
    return {m: str(out / HIDDEN_DIR / m) for m in spec.scores.hide}


def plan_runs(spec: ExperimentSpec, dataset_dir: Path, out: Path) -> list[RunTask]:
    """Every run of the spec, models first, then baselines (once per fold: they are
    deterministic)."""
    shared = {
        "dataset_dir": str(dataset_dir),
        "protocol": spec.protocol.to_dict(),
        "scores": spec.scores.to_dict(),
    }
    folds = spec.protocol.fold_numbers()
    tasks = [
        RunTask(
            cell_id=cell.id,
            seed=seed,
            directory=_fold_dir(out / RUNS_DIR / cell.id / f"seed-{seed}", fold),
            kind="model",
            config=cell.run_config(spec.base, seed).to_dict(),
            fold=fold,
            hidden=hidden_dirs(spec, out),
            **shared,
        )
        for cell in expand_grid(spec)
        for seed in spec.seeds
        for fold in folds
    ]
    for cell_id, config in spec.baseline_configs().items():
        tasks += [
            RunTask(
                cell_id=cell_id,
                seed=None,
                directory=_fold_dir(out / RUNS_DIR / cell_id, fold),
                kind="baseline",
                config=config.to_dict(),
                fold=fold,
                **shared,
            )
            for fold in folds
        ]
    return tasks


def write_hidden(spec: ExperimentSpec, dataset: PreparedDataset, out: Path) -> None:
    """The posts a protocol reads with each hidden modality removed, as datasets of their
    own (ids and splits kept), written once before the runs so that workers only read them."""
    posts = spec.protocol.pooled(dataset)
    for modality, directory in hidden_dirs(spec, out).items():
        if not (Path(directory) / "dataset.json").is_file():
            PreparedDataset.from_examples(hide(posts.examples, modality), directory)


def is_done(task: RunTask) -> bool:
    """A run is done iff its metrics exist; a different config there is refused, not mixed in."""
    directory = Path(task.directory)
    if not (directory / METRICS_FILE).is_file():
        return False
    saved = yaml.safe_load((directory / RUN_CONFIG_FILE).read_text(encoding="utf-8"))
    if not _same_settings(task, saved):
        raise UserInputError(
            f"{directory} holds a finished run with other settings than this spec's; "
            "write to another --out (or delete that run to redo it)"
        )
    return True


def _same_settings(task: RunTask, saved: Any) -> bool:
    """A model run's settings are the same when they resolve to the same run (a run.yaml
    written before the user's settings were kept apart from the derived ones holds both)."""
    if saved == task.config:
        return True
    if task.kind != "model" or not isinstance(saved, dict):
        return False
    try:
        before = RunConfig.model_validate(saved).resolved()
    except ValueError:
        return False
    return before == RunConfig.model_validate(task.config).resolved()


def execute_run(task: RunTask) -> float:
    """Train (or compute) one run and write its config and metrics; returns the seconds taken."""
    start = time.perf_counter()
    directory = Path(task.directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / RUN_CONFIG_FILE, yaml.safe_dump(task.config, sort_keys=False))
    protocol = parse_protocol(task.protocol)
    view = protocol.view(PreparedDataset.load(task.dataset_dir), task.fold)
    if task.kind == "baseline":
        result = run_baseline(view, BaselineConfig.model_validate(task.config))
    else:
        model = SentimentModel(RunConfig.model_validate(task.config)).fit(view, progress=False)
        hidden = {
            modality: protocol.view(PreparedDataset.load(folder), task.fold)
            for modality, folder in task.hidden.items()
        }
        scores = ScoresConfig.model_validate(task.scores)
        variants = score_run(model, view, hidden, scores, SPLITS, directory)
        result = variants.pop(MODEL_SCORE)
        result.update(
            variants=variants,
            best_epoch=model.best_epoch_,
            epochs_trained=len(model.history_),
            gate_stats=model.gate_stats(),
        )
    seconds = time.perf_counter() - start
    result["seconds"] = seconds
    write_json_atomic(directory / METRICS_FILE, result)
    return seconds


def _single_thread_worker() -> None:
    """Parallel runs share the cores: one torch thread each avoids oversubscription."""
    torch.set_num_threads(1)


def extract_needed_features(
    dataset: PreparedDataset,
    tasks: Sequence[RunTask],
    progress: bool = True,
    hidden: str | None = None,
) -> None:
    """Extract every encoder's features once, before the runs (the store caches them), so
    parallel workers only read them and never compete to write the same folder; ``hidden``
    names a modality the dataset has none of (nothing to extract for it)."""
    wanted: dict[str, dict[str, Any]] = {}

    def want(kind: str, name: str, config: dict[str, Any], **settings: Any) -> None:
        if kind == hidden:
            return
        other = "text" if kind == "image" else "image"
        arguments = {kind: name, f"{kind}_config": config, other: None, **settings}
        wanted.setdefault(json.dumps([kind, name, config]), arguments)

    for task in tasks:
        if task.kind == "model":
            run = RunConfig.model_validate(task.config).resolved()
            settings = {"batch_size": run.feature_batch_size, "workers": run.feature_workers}
            if run.uses_image:
                want("image", run.image_encoder, run.image_encoder_config, **settings)
            if run.uses_text:
                want("text", run.text_encoder, run.text_encoder_config, **settings)
        else:
            baseline = BaselineConfig.model_validate(task.config)
            for kind, name in baseline.encoders().items():
                want(kind, name, baseline.image_encoder_config if kind == "image" else {})
    for arguments in wanted.values():
        extract_features(dataset, **arguments, progress=progress)


def run_all(todo: list[RunTask], jobs: int, progress: bool) -> None:
    with progress_bar(progress, unit="runs") as bar:
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
