"""k-fold cross-validation of models and baselines on one prepared dataset, for any label set.

Small datasets (Emotion6: 1,386 images) make one split's test figures noisy; k folds give a
mean and a spread. Folds are stratified by label and seeded (the same cut as the splits:
ids sorted, then shuffled within each label). In each fold the other folds are the training
data, of which a stratified tenth is held out as validation (early stopping, the
logistic regression's C); the fold itself is the test set. Every fold reuses the dataset's
feature cache: only the split column changes, never the examples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.linear_model import LogisticRegression

from sentimodal.config import Config
from sentimodal.errors import UserInputError
from sentimodal.evaluation.metrics import classification_report, kl_divergence
from sentimodal.features.folder import FeatureFolder
from sentimodal.features.store import extract_features
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.dataset_labels import split_counts
from sentimodal.preparation.splits import assign_splits
from sentimodal.progress import progress_bar
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.run_config import RunConfig

#: figures reported per fold (and as mean / std over folds)
FIGURES: tuple[str, ...] = ("accuracy", "macro_f1", "weighted_f1")


class CrossValConfig(Config):
    """Folds, the validation share inside the training folds, and the models to compare."""

    folds: int = Field(5, ge=2)
    seed: int = 0
    val_fraction: float = Field(0.1, gt=0, lt=1)
    #: name -> run config of each model
    models: dict[str, RunConfig] = Field(default_factory=dict)
    #: image encoders (frozen features) a logistic-regression baseline is fitted on
    logreg_image_encoders: list[str] = Field(default_factory=list)
    #: inverse regularisation strengths tried; the best on the fold's val accuracy is kept
    c_values: list[float] = Field(default_factory=lambda: [0.001, 0.01, 0.1, 1.0], min_length=1)
    majority: bool = True


def fold_of(ids: Sequence[str], labels: Sequence[str], folds: int, seed: int) -> np.ndarray:
    """Each post's fold (0..folds-1), stratified by label: every fold holds its share of
    every class to within one post."""
    ids_array = np.asarray(ids, dtype=object)
    labels_array = np.asarray(labels, dtype=object)
    out = np.empty(len(ids_array), dtype=np.int64)
    rng = np.random.default_rng(seed)
    start = 0  # each class's remainder starts where the last one's ended: folds stay even
    for label in sorted(set(labels_array.tolist())):
        members = np.flatnonzero(labels_array == label)
        members = rng.permutation(members[np.argsort(ids_array[members], kind="stable")])
        out[members] = (np.arange(len(members)) + start) % folds
        start += len(members)
    return out


def fold_dataset(
    dataset: PreparedDataset, folds: np.ndarray, fold: int, val_fraction: float, seed: int
) -> PreparedDataset:
    """The dataset with fold ``fold`` as test and the others as train + val (same root, so
    the feature cache is shared)."""
    examples = dataset.examples.copy()
    rest = folds != fold
    ids = examples["id"].astype(str).to_numpy()
    labels = examples["label"].astype(str).to_numpy()
    split = np.full(len(examples), "test", dtype=object)
    split[rest] = assign_splits(ids[rest], labels[rest], [1 - val_fraction, val_fraction], seed)
    examples["split"] = split
    info = {**dataset.info, "counts": {}}
    folded = PreparedDataset(examples, info, dataset.root)
    folded.info["counts"] = {
        name: per for name, per in split_counts(folded).items() if name in ("train", "val", "test")
    }
    if "val" not in folded.info["counts"]:
        raise UserInputError(
            f"{dataset.root}: fold {fold} leaves no validation post ({val_fraction:.0%} of "
            f"{int(rest.sum())} training posts, per class): use fewer folds or a larger "
            f"validation fraction"
        )
    return folded


def _image_features(dataset: PreparedDataset, encoder: str) -> tuple[list[str], np.ndarray]:
    result = extract_features(dataset, image=encoder, text=None, progress=False)["image"]
    features = FeatureFolder(result.directory).read()
    return features.ids, features.values.reshape(len(features.ids), -1).astype(np.float64)


def majority_label(labels: Sequence[str]) -> str:
    """The most frequent label (ties: the first in sorted order), what the majority baseline
    predicts for every post."""
    counts = pd.Series(list(labels), dtype=object).value_counts()
    return str(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0])


def logistic_regression(
    dataset: PreparedDataset, ids: list[str], x: np.ndarray, c_values: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, float]:
    """Fit on train (standardised), C by val accuracy (ties: the first listed); test truth,
    test predictions and the chosen C."""
    y_test, probabilities, classes, c = logistic_regression_proba(dataset, ids, x, c_values)
    return y_test, classes[probabilities.argmax(axis=1)], c


def logistic_regression_proba(
    dataset: PreparedDataset, ids: list[str], x: np.ndarray, c_values: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """:func:`logistic_regression` with the test posts' class probabilities: test truth,
    probabilities (posts, classes), the classes (sorted, as scikit-learn orders them) and the
    chosen C; for combining the baseline with other models' probabilities."""
    position = {i: n for n, i in enumerate(ids)}

    def part(split: str) -> tuple[np.ndarray, np.ndarray]:
        frame = dataset.split(split)
        keep = [i for i in frame["id"].astype(str) if i in position]
        labels = frame.set_index(frame["id"].astype(str))["label"].astype(str)
        return x[[position[i] for i in keep]], labels.loc[keep].to_numpy()

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = map(part, ("train", "val", "test"))
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std < 1e-6] = 1.0
    x_train, x_val, x_test = ((v - mean) / std for v in (x_train, x_val, x_test))
    fitted = [LogisticRegression(C=c, max_iter=2000).fit(x_train, y_train) for c in c_values]
    scores = [float((m.predict(x_val) == y_val).mean()) for m in fitted]
    best = fitted[int(np.argmax(scores))]
    return y_test, best.predict_proba(x_test), best.classes_, float(best.C)


def _row(name: str, fold: int, metrics: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": name, "fold": fold, **{k: metrics[k] for k in FIGURES}, **extra}


def cross_validate(
    dataset: PreparedDataset, config: CrossValConfig, *, progress: bool = True
) -> pd.DataFrame:
    """One row per (model, fold): accuracy, macro-F1, weighted-F1 on the fold's test posts
    (and the mean KL divergence from the target distribution when the dataset has one)."""
    ids = dataset.examples["id"].astype(str).tolist()
    labels = dataset.examples["label"].astype(str).tolist()
    folds = fold_of(ids, labels, config.folds, config.seed)
    features = {e: _image_features(dataset, e) for e in config.logreg_image_encoders}
    rows: list[dict[str, Any]] = []
    steps = config.folds * (len(config.models) + len(features) + int(config.majority))
    with progress_bar(progress, unit="fits") as bar:
        task = bar.add_task("cross-validation", total=steps)
        for fold in range(config.folds):
            data = fold_dataset(dataset, folds, fold, config.val_fraction, config.seed)
            truth = data.split("test")["label"].astype(str).to_numpy()
            if config.majority:
                majority = majority_label(data.split("train")["label"].astype(str))
                predicted = np.full(len(truth), majority, dtype=object)
                report = classification_report(truth, predicted, dataset.labels)
                rows.append(_row("majority class", fold, report))
                bar.advance(task)
            for encoder, (feature_ids, x) in features.items():
                y_test, y_pred, c = logistic_regression(data, feature_ids, x, config.c_values)
                report = classification_report(y_test, y_pred, dataset.labels)
                rows.append(_row(f"logistic regression ({encoder})", fold, report, c=c))
                bar.advance(task)
            for name, run in config.models.items():
                model = SentimentModel(run).fit(data, progress=False)
                frame = model.predict_frame(data, "test")
                truth_of = data.examples.set_index(data.examples["id"].astype(str))["label"]
                y_true = truth_of.loc[frame["id"]].astype(str).to_numpy()
                report = classification_report(y_true, frame["label"].to_numpy(), dataset.labels)
                extra: dict[str, Any] = {"best_epoch": model.best_epoch_}
                kl = _mean_kl(data, frame, model.classes_)
                if kl is not None:
                    extra["kl"] = kl
                rows.append(_row(name, fold, report, **extra))
                bar.advance(task)
    return pd.DataFrame(rows)


def _mean_kl(dataset: PreparedDataset, frame: pd.DataFrame, classes: list[str]) -> float | None:
    """Mean KL(target || predicted) over the test posts that have a target distribution,
    for softmax scores over the dataset's labels (None otherwise)."""
    if classes != dataset.labels:
        return None
    by_id = dataset.examples.set_index(dataset.examples["id"].astype(str))["label_distribution"]
    targets = by_id.loc[frame["id"]].tolist()
    if any(t is None or len(t) != len(classes) for t in targets):
        return None
    scores = frame[classes].to_numpy(dtype=np.float64)
    if (scores < 0).any():  # cosines of an embedding head are not probabilities
        return None
    return kl_divergence(np.asarray(targets, dtype=np.float64), scores)


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (over folds, ddof 1) of each figure per model, in first-seen order."""
    figures = [f for f in (*FIGURES, "kl") if f in rows.columns]
    grouped = rows.groupby("model", sort=False)[figures]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    out = pd.DataFrame({"model": mean.index, "folds": grouped.size().to_numpy()})
    for figure in figures:
        out[figure] = mean[figure].to_numpy()
        out[f"{figure}_std"] = std[figure].to_numpy()
    return out.reset_index(drop=True)


def mean_std_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as text cells "0.512 ± 0.013", for reports and docs."""
    figures = [f for f in (*FIGURES, "kl") if f in summary.columns]
    table = summary[["model", "folds"]].copy()
    for figure in figures:
        table[figure] = [
            "–" if pd.isna(m) else f"{m:.3f} ± {s:.3f}"
            for m, s in zip(summary[figure], summary[f"{figure}_std"], strict=True)
        ]
    return table
