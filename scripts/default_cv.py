"""5-fold cross-validation of fine-tuned `train` configurations over MVSA-Single's train + val
posts (the test split is never read), one fold per call if wanted, resumable.

Each (configuration, fold) trains the run on the other four folds (a stratified tenth of
them validates: best epoch, stacked weights) and stores the held-out fold's probabilities of
the fused model and, for late fusions, of each branch, so that combinations of the same
trained branches and ensembles of runs are scored afterwards without training again.

    python scripts/default_cv.py runs/mvsa --out runs/cv --name default --folds 0 1
    python scripts/default_cv.py runs/mvsa --out runs/cv --name joint --config joint.yaml
    python scripts/default_cv.py runs/mvsa --out runs/cv --name default@1 --train-seed 1
    python scripts/default_cv.py runs/mvsa --out runs/cv --table --baselines \\
        --ensemble default+default@1
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from sentimodal.analysis.crossval import (
    fold_dataset,
    fold_of,
    logistic_regression,
    logistic_regression_proba,
    majority_label,
)
from sentimodal.analysis.report import markdown_table
from sentimodal.evaluation.metrics import classification_report
from sentimodal.features.folder import FeatureFolder
from sentimodal.features.store import extract_features
from sentimodal.files import write_json_atomic
from sentimodal.models.recipes import get_recipe
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.training.estimator import SentimentModel

FOLDS = 5
VAL_FRACTION = 0.1
FIGURES = ("accuracy", "weighted_f1", "macro_f1")
#: the logistic-regression baselines' C values, chosen by the fold's val accuracy
C_VALUES = (0.001, 0.01, 0.1, 1.0)


def labelled(root: Path) -> PreparedDataset:
    """The dataset's train + val posts only: the test split stays unread."""
    dataset = PreparedDataset.load(root)
    examples = dataset.examples
    kept = examples[examples["split"].isin(["train", "val"])].reset_index(drop=True)
    return PreparedDataset(kept, dict(dataset.info), dataset.root)


def fold_data(dataset: PreparedDataset, seed: int) -> list[PreparedDataset]:
    """The five train/val/test views of the dataset, one per held-out fold."""
    ids = dataset.examples["id"].astype(str).tolist()
    labels = dataset.examples["label"].astype(str).tolist()
    folds = fold_of(ids, labels, FOLDS, seed)
    return [fold_dataset(dataset, folds, k, VAL_FRACTION, seed) for k in range(FOLDS)]


def run_fold(
    model: SentimentModel, data: PreparedDataset, train_splits: tuple[str, ...] = ("train",)
) -> dict[str, Any]:
    """Fit on the fold's train part; the held-out posts' probabilities, fused and per branch."""
    start = time.perf_counter()
    model.fit(data, train_splits=train_splits, progress=False)
    seconds = time.perf_counter() - start
    frame = model.predict_frame(data, "test")
    out: dict[str, Any] = {
        "ids": frame["id"].astype(str).tolist(),
        "classes": model.classes_,
        "fused": frame[model.classes_].to_numpy(dtype=float).tolist(),
        "best_epoch": model.best_epoch_,
        "seconds": seconds,
        "history": model.history_,
    }
    if get_recipe(model.run_.model).branches:  # late fusions (late, cross)
        for branch in ("text", "image"):
            part = model.branch(branch).predict_frame(data, "test")
            out[branch] = part[model.classes_].to_numpy(dtype=float).tolist()
    return out


def train(args: argparse.Namespace, dataset: PreparedDataset) -> None:
    config: dict[str, Any] = yaml.safe_load(args.config.read_text()) if args.config else {}
    config.setdefault("train", {})["seed"] = args.train_seed
    folded = fold_data(dataset, args.seed)
    folder = args.out / args.name
    folder.mkdir(parents=True, exist_ok=True)
    splits = ("train", "val") if args.no_val else ("train",)
    (folder / "config.json").write_text(json.dumps({**config, "train_splits": splits}, indent=1))
    for k in args.folds:
        target = folder / f"fold{k}.json"
        if target.exists():
            print(f"{args.name} fold {k}: done before, kept", flush=True)
            continue
        result = run_fold(SentimentModel(config), folded[k], splits)
        write_json_atomic(target, result)
        truth = _truth(dataset, result["ids"])
        report = _report(truth, np.asarray(result["fused"]), result["classes"])
        print(
            f"{args.name} fold {k}: {result['seconds']:.0f} s, best epoch "
            f"{result['best_epoch']}, " + ", ".join(f"{f} {report[f]:.3f}" for f in FIGURES),
            flush=True,
        )


def _truth(dataset: PreparedDataset, ids: list[str]) -> np.ndarray:
    by_id = dataset.examples.set_index(dataset.examples["id"].astype(str))["label"]
    return by_id.loc[ids].astype(str).to_numpy()


def _report(truth: np.ndarray, scores: np.ndarray, classes: list[str]) -> dict[str, Any]:
    predicted = np.asarray(classes, dtype=object)[scores.argmax(axis=1)]
    return classification_report(truth, predicted, classes)


def _load_runs(out: Path) -> dict[str, list[dict[str, Any]]]:
    """Every configuration whose five folds are stored."""
    runs = {}
    folders = sorted(
        (p for p in out.iterdir() if p.is_dir()), key=lambda p: (p.name != "default", p.name)
    )
    for folder in folders:
        files = [folder / f"fold{k}.json" for k in range(FOLDS)]
        if all(f.exists() for f in files):
            runs[folder.name] = [json.loads(f.read_text()) for f in files]
    return runs


def _geometric(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    logp = (np.log(np.clip(a, 1e-12, 1)) + np.log(np.clip(b, 1e-12, 1))) / 2
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def _rows_of(name: str, folds: list[dict[str, Any]]) -> dict[str, list[np.ndarray]]:
    """Score sets to report for one configuration: fused, and its branches' combinations."""
    rows = {name: [np.asarray(f["fused"]) for f in folds]}
    if "text" in folds[0]:
        text = [np.asarray(f["text"]) for f in folds]
        image = [np.asarray(f["image"]) for f in folds]
        rows[f"{name}: text branch"] = text
        rows[f"{name}: image branch"] = image
        rows[f"{name}: geometric mean of branches"] = [
            _geometric(t, i) for t, i in zip(text, image, strict=True)
        ]
    return rows


def _baselines(
    dataset: PreparedDataset, folded: list[PreparedDataset]
) -> dict[str, list[np.ndarray]]:
    """Majority class and logistic regression on frozen MiniLM + EfficientNet-Lite0 (the
    issue's baseline), as one-hot scores over the folds."""
    results = extract_features(dataset, image="efficientnet_lite0", text="minilm", progress=False)
    sets = {m: FeatureFolder(r.directory).read() for m, r in results.items()}
    common = sorted(set(sets["text"].ids) & set(sets["image"].ids))
    parts = []
    for modality in ("text", "image"):
        row = {i: n for n, i in enumerate(sets[modality].ids)}
        values = sets[modality].values[[row[i] for i in common]]
        parts.append(values.reshape(len(common), -1))
    x = np.concatenate(parts, axis=1).astype(np.float64)
    classes = dataset.labels
    out: dict[str, list[np.ndarray]] = {"majority class": [], "logreg, frozen MiniLM + Lite0": []}
    for data in folded:
        test = data.split("test")["id"].astype(str).tolist()
        majority = classes.index(majority_label(data.split("train")["label"].astype(str)))
        out["majority class"].append(np.eye(len(classes))[[majority] * len(test)])
        y_test, y_pred, _ = logistic_regression(data, common, x, C_VALUES)
        assert len(y_test) == len(test), "every labelled post has both modalities"
        out["logreg, frozen MiniLM + Lite0"].append(
            np.eye(len(classes))[[classes.index(p) for p in y_pred]]
        )
        out.setdefault("_truth", []).append(y_test)
    return out


def _frozen_text_probs(
    dataset: PreparedDataset, encoder: str, folded: list[PreparedDataset]
) -> list[np.ndarray]:
    """Per fold, the held-out posts' probabilities from the logistic-regression baseline on a
    frozen text encoder's vectors."""
    result = extract_features(dataset, image=None, text=encoder, progress=False)["text"]
    features = FeatureFolder(result.directory).read()
    x = features.values.reshape(len(features.ids), -1).astype(np.float64)
    out = []
    for data in folded:
        _, probabilities, classes, _ = logistic_regression_proba(data, features.ids, x, C_VALUES)
        assert list(classes) == dataset.labels
        out.append(probabilities)
    return out


def _cached(path: Path, compute: Callable[[], Any]) -> Any:
    """Baselines are deterministic and slow (scikit-learn on 1,664 values): computed once per
    output folder, as lists of per-fold arrays."""
    if not path.exists():
        value = compute()
        plain = (
            {k: [np.asarray(a).tolist() for a in v] for k, v in value.items()}
            if isinstance(value, dict)
            else [np.asarray(a).tolist() for a in value]
        )
        write_json_atomic(path, plain)
    stored = json.loads(path.read_text())
    if isinstance(stored, dict):
        return {k: [np.asarray(a) for a in v] for k, v in stored.items()}
    return [np.asarray(a) for a in stored]


def table(args: argparse.Namespace, dataset: PreparedDataset) -> None:
    runs = _load_runs(args.out)
    if not runs:
        raise SystemExit(f"{args.out}: no configuration with all {FOLDS} folds stored")
    first = next(iter(runs.values()))
    folded = fold_data(dataset, args.seed)
    classes = first[0]["classes"]
    truths = [_truth(dataset, f["ids"]) for f in first]
    scored: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    if args.baselines:
        base = _cached(args.out / "_baselines.json", lambda: _baselines(dataset, folded))
        base_truth = base.pop("_truth")
        scored.update({name: (base_truth, s) for name, s in base.items()})
    for name, folds in runs.items():
        if [f["ids"] for f in folds] != [f["ids"] for f in first]:
            raise SystemExit(f"{name}: folds differ from the first configuration's")
        scored.update({row: (truths, s) for row, s in _rows_of(name, folds).items()})
    for encoder in args.add_frozen:
        frozen = _cached(
            args.out / f"_frozen-{encoder}.json",
            lambda e=encoder: _frozen_text_probs(dataset, e, folded),
        )
        for data, f in zip(folded, first, strict=True):
            assert data.split("test")["id"].astype(str).tolist() == f["ids"], "fold order"
        scored[f"logreg, frozen {encoder}"] = (truths, frozen)
        for name, folds in runs.items():
            if "text" not in folds[0]:
                continue
            scored[f"{name} + frozen {encoder} (mean of 3 branches)"] = (
                truths,
                [
                    (np.asarray(f["text"]) + np.asarray(f["image"]) + p) / 3
                    for f, p in zip(folds, frozen, strict=True)
                ],
            )
    for spec in args.ensemble:
        members = spec.split("+")
        missing = [m for m in members if m not in runs]
        if missing:
            raise SystemExit(f"--ensemble {spec}: not stored: {', '.join(missing)}")
        scores = [
            np.mean([np.asarray(runs[m][k]["fused"]) for m in members], axis=0)
            for k in range(FOLDS)
        ]
        scored[f"mean of {' + '.join(members)}"] = (truths, scores)
    lines = []
    for row, (truth, scores) in scored.items():
        reports = [_report(t, s, classes) for t, s in zip(truth, scores, strict=True)]
        cells: dict[str, Any] = {"model": row}
        for figure in FIGURES:
            values = [r[figure] for r in reports]
            cells[figure] = f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"
        for label in classes:
            values = [r["per_class_f1"][label] or 0.0 for r in reports]
            cells[f"F1 {label}"] = f"{np.mean(values):.3f}"
        lines.append(cells)
    print(markdown_table(pd.DataFrame(lines)))
    for name, folds in runs.items():
        seconds = [f["seconds"] for f in folds]
        epochs = [f["best_epoch"] for f in folds]
        print(f"- {name}: {np.mean(seconds):.0f} s per fit, best epochs {epochs}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path, help="a prepared MVSA-Single dataset")
    parser.add_argument("--out", type=Path, required=True, help="one folder per configuration")
    parser.add_argument("--name", help="the configuration's name (its folder under --out)")
    parser.add_argument("--config", type=Path, help="YAML run config (default: train's default)")
    parser.add_argument("--folds", type=int, nargs="+", default=list(range(FOLDS)))
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds")
    parser.add_argument("--train-seed", type=int, default=0, help="seed of training")
    parser.add_argument(
        "--no-val", action="store_true", help="train on all four folds (no best-epoch choice)"
    )
    parser.add_argument("--table", action="store_true", help="print the stored folds' table")
    parser.add_argument("--baselines", action="store_true", help="majority + logreg rows")
    parser.add_argument(
        "--add-frozen", nargs="*", default=[], help="text encoders added as a third branch"
    )
    parser.add_argument("--ensemble", nargs="*", default=[], help="NAME+NAME: mean of runs")
    args = parser.parse_args()
    dataset = labelled(args.dataset)
    if args.table:
        table(args, dataset)
    elif args.name:
        train(args, dataset)
    else:
        parser.error("give --name (train folds) or --table")


if __name__ == "__main__":
    main()
