"""Running an experiment's grid: one task per (cell, seed), resumable, in parallel processes.

Each run writes its full config, then its metrics (their presence marks it done), so an
interrupted grid resumes where it stopped and a finished run is never redone or mixed with
other settings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
import yaml

from sentimodal.analysis.baselines import BaselineConfig, run_baseline
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
    write_atomic(directory / RUN_CONFIG_FILE, yaml.safe_dump(task.config, sort_keys=False))
    dataset = PreparedDataset.load(task.dataset_dir)
    if task.kind == "baseline":
        result = run_baseline(dataset, BaselineConfig.model_validate(task.config))
    else:
        model = SentimentModel(RunConfig.model_validate(task.config)).fit(dataset, progress=False)
        result = model.evaluate_splits(dataset, SPLITS)
        result.update(
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
