"""Training on Ray Train against one process: accuracy on MVSA-Single, throughput at scale.

Two parts, one run, one machine:

1. **Accuracy** (``--accuracy``): the ``gated`` fusion (frozen MiniLM + EfficientNet-Lite0
   vectors) trained on the prepared MVSA-Single train split, val for early stopping, by one
   process (``engine=local``) and by ``--workers`` Ray Train workers; test accuracy of each.
   The rule that N workers take ``ceil(batch / N)`` rows a step at the configured learning
   rate must land within 0.02 of one process.
2. **Throughput** (``--rows``): a synthetic dataset of ``--rows`` posts built by repeating the
   prepared posts under new ids (splits kept), whose feature folders the store writes from
   the real posts' stored vectors (a lookup engine instead of the encoders: the folders,
   keys and shards are the ones an extraction writes). The same model then trains
   ``--epochs`` epochs with patience off, by one local process and by Ray Train with 1 and
   with ``--workers`` workers. Printed: training rows/s of each (epochs x train rows over the
   fit's wall time, Ray's start-up included and apart), and the peak resident memory of each
   Ray Train worker process (sampled every 0.2 s) beside the driver's.

    python benchmarks/bench_ray_train.py --dataset runs/mvsa --rows 200000 --workers 2 \
        --out docs/results/ray-train.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

import sentimodal.features.store as store
from sentimodal.features.engine import BatchResult, BatchWork, Row
from sentimodal.features.folder import FeatureFolder
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.inputs import extract_run_features


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True, help="prepared MVSA dataset")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--model", default="gated")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds of the accuracy part")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write the figures here (JSON)")
    return parser.parse_args()


class LookupEngine:
    """Features of a repeated post are those stored for the post it repeats."""

    def __init__(self, source: dict[str, np.ndarray], lengths: dict[str, np.ndarray] | None):
        self.source, self.lengths = source, lengths

    def run(self, work: BatchWork, batches: Sequence[list[Row]]) -> Iterator[BatchResult]:
        for batch in batches:
            keep = [row for row in batch if row["id"].split("~")[0] in self.source]
            originals = [row["id"].split("~")[0] for row in keep]
            yield BatchResult(
                positions=np.array([row["position"] for row in keep], dtype=np.int64),
                values=np.stack([self.source[i] for i in originals]),
                lengths=None
                if self.lengths is None
                else np.array([self.lengths[i] for i in originals]),
            )


def synthetic(dataset: PreparedDataset, rows: int, root: Path) -> PreparedDataset:
    examples = dataset.examples
    copies = -(-rows // len(examples))
    frame = pd.concat(
        [examples.assign(id=examples["id"].astype(str) + f"~{k}") for k in range(copies)],
        ignore_index=True,
    ).iloc[:rows]
    return PreparedDataset.from_examples(frame, root)


def write_features(model: str, real: PreparedDataset, fake: PreparedDataset) -> None:
    run = SentimentModel(model=model).run_config().resolved()
    original = store.get_engine
    for kind, result in extract_run_features(run, real, progress=False).items():
        stored = FeatureFolder(result.directory).read()
        source = dict(zip(stored.ids, stored.values, strict=True))
        lengths = None
        if stored.lengths is not None:
            lengths = dict(zip(stored.ids, stored.lengths, strict=True))
        engine = LookupEngine(source, lengths)
        store.get_engine = lambda *args, engine=engine, **kwargs: engine
        try:
            only = run.model_copy(
                update={
                    "image_encoder": run.image_encoder if kind == "image" else None,
                    "text_encoder": run.text_encoder if kind == "text" else None,
                }
            )
            extract_run_features(only, fake, progress=True)
        finally:
            store.get_engine = original


class PeakMemory:
    """Peak resident set size of Ray Train worker processes and of this one, sampled."""

    def __init__(self) -> None:
        self.workers: dict[int, int] = {}
        self.driver = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.driver = max(self.driver, _rss(Path("/proc/self")))
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    command = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if b"RayTrainWorker" in command:
                    pid = int(entry.name)
                    self.workers[pid] = max(self.workers.get(pid, 0), _rss(entry))


def _rss(entry: Path) -> int:
    try:
        for line in (entry / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def fit(dataset: PreparedDataset, model: str, settings: dict) -> tuple[SentimentModel, float]:
    estimator = SentimentModel(model=model, **settings)
    start = time.perf_counter()
    estimator.fit(dataset, progress=False)
    return estimator, time.perf_counter() - start


def accuracy(dataset: PreparedDataset, model: str, workers: int, seeds: list[int]) -> dict:
    results: dict = {}
    for name, settings in (
        ("local", {}),
        (f"ray x{workers}", {"engine": "ray", "workers": workers}),
    ):
        runs = []
        for seed in seeds:
            estimator, seconds = fit(dataset, model, {**settings, "train": {"seed": seed}})
            runs.append(
                {
                    "seed": seed,
                    "test_accuracy": estimator.evaluate(dataset, "test")["accuracy"],
                    "best_epoch": estimator.best_epoch_,
                    "seconds": seconds,
                }
            )
            print(name, runs[-1], flush=True)
        scores = [r["test_accuracy"] for r in runs]
        results[name] = {
            "runs": runs,
            "mean_test_accuracy": float(np.mean(scores)),
            "std_test_accuracy": float(np.std(scores, ddof=1)) if len(scores) > 1 else None,
        }
    return results


def throughput(dataset: PreparedDataset, model: str, workers: int, epochs: int) -> dict:
    train_rows = int((dataset.examples["split"] == "train").sum())
    fixed = {"train": {"epochs": epochs, "patience": None}}
    results = {}
    runs = [("local", fixed)]
    runs += [(f"ray x{n}", {**fixed, "engine": "ray", "workers": n}) for n in (1, workers)]
    for name, settings in runs:
        with PeakMemory() as memory:
            estimator, seconds = fit(dataset, model, settings)
        trained = len(estimator.history_)
        epoch_seconds = sum(r.get("seconds", 0.0) for r in estimator.history_)
        results[name] = {
            "epochs": trained,
            "train_rows": train_rows,
            "fit_seconds": seconds,
            "epoch_seconds": epoch_seconds,
            "rows_per_s": trained * train_rows / seconds,
            "rows_per_s_in_epochs": trained * train_rows / epoch_seconds if epoch_seconds else None,
            "driver_peak_rss_mib": memory.driver / 2**20,
            "worker_peak_rss_mib": sorted(v / 2**20 for v in memory.workers.values()),
        }
        print(name, json.dumps(results[name]), flush=True)
    return results


def main() -> None:
    args = parse_args()
    real = PreparedDataset.load(args.dataset)
    results: dict = {"model": args.model, "dataset": str(args.dataset), "workers": args.workers}
    if not args.skip_accuracy:
        seeds = [int(seed) for seed in args.seeds.split(",")]
        results["accuracy"] = accuracy(real, args.model, args.workers, seeds)
    if args.skip_throughput:
        print(json.dumps(results, indent=2))
        return
    with tempfile.TemporaryDirectory() as work:
        fake = synthetic(real, args.rows, Path(work) / "synthetic")
        start = time.perf_counter()
        write_features(args.model, real, fake)
        results["synthetic"] = {
            "rows": len(fake.examples),
            "splits": fake.examples["split"].value_counts().to_dict(),
            "feature_write_seconds": time.perf_counter() - start,
        }
        results["throughput"] = throughput(fake, args.model, args.workers, args.epochs)
    print(json.dumps(results, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
