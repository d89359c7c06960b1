"""Classification metrics on any split, as plain numbers ready for JSON and reports.

Labels may be given as class indices (with the label names in order) or as label strings.
Per-class accuracy is the recall of each true label: the share of its examples predicted right.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sentimodal.errors import UserInputError

LabelArray = Sequence[int] | Sequence[str] | np.ndarray


def _indices(values: LabelArray, labels: Sequence[str]) -> np.ndarray:
    """Class indices from indices or label names; unknown labels are an error, not dropped."""
    array = np.asarray(values)
    if array.dtype.kind in "OUS":
        position = {label: i for i, label in enumerate(labels)}
        unknown = sorted({str(v) for v in array.tolist()} - set(position))
        if unknown:
            raise UserInputError(f"labels {unknown} are not among {list(labels)}")
        return np.array([position[str(v)] for v in array.tolist()], dtype=np.int64)
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= len(labels)):
        raise UserInputError(f"class indices must be in [0, {len(labels)})")
    return array


def _pair(y_true: LabelArray, y_pred: LabelArray, labels: Sequence[str]) -> tuple[np.ndarray, ...]:
    true, pred = _indices(y_true, labels), _indices(y_pred, labels)
    if true.shape != pred.shape or true.ndim != 1:
        raise UserInputError(f"{true.shape} true labels but {pred.shape} predictions")
    if true.size == 0:
        raise UserInputError("no examples to evaluate")
    return true, pred


def confusion_matrix(y_true: LabelArray, y_pred: LabelArray, labels: Sequence[str]) -> np.ndarray:
    """Counts (labels x labels): rows are true labels, columns predicted labels."""
    true, pred = _pair(y_true, y_pred, labels)
    k = len(labels)
    return np.bincount(true * k + pred, minlength=k * k).reshape(k, k)


def accuracy(y_true: LabelArray, y_pred: LabelArray, labels: Sequence[str]) -> float:
    true, pred = _pair(y_true, y_pred, labels)
    return float((true == pred).mean())


def _per_class(confusion: np.ndarray) -> tuple[np.ndarray, ...]:
    """Recall, precision, F1 and support per class; 0 where undefined (no examples)."""
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    hits = np.diag(confusion).astype(np.float64)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(hits), where=total > 0)
    return recall, precision, f1, support


def macro_f1(y_true: LabelArray, y_pred: LabelArray, labels: Sequence[str]) -> float:
    """Unweighted mean of the F1 of the labels that occur (as true or predicted labels)."""
    confusion = confusion_matrix(y_true, y_pred, labels)
    _, _, f1, support = _per_class(confusion)
    present = (support > 0) | (confusion.sum(axis=0) > 0)
    return float(f1[present].mean())


def weighted_f1(y_true: LabelArray, y_pred: LabelArray, labels: Sequence[str]) -> float:
    """Mean F1 weighted by each label's number of true examples."""
    _, _, f1, support = _per_class(confusion_matrix(y_true, y_pred, labels))
    return float((f1 * support).sum() / support.sum())


def per_class_accuracy(
    y_true: LabelArray, y_pred: LabelArray, labels: Sequence[str]
) -> dict[str, float | None]:
    """Per label: the share of its examples predicted right (None for a label with none)."""
    recall, _, _, support = _per_class(confusion_matrix(y_true, y_pred, labels))
    return {
        label: (float(r) if n > 0 else None)
        for label, r, n in zip(labels, recall, support, strict=True)
    }


def majority_baseline(
    y_true: LabelArray, labels: Sequence[str], y_train: LabelArray | None = None
) -> dict[str, Any]:
    """Accuracy of always predicting the most frequent label (of ``y_train`` if given)."""
    reference = _indices(y_true if y_train is None else y_train, labels)
    majority = int(np.bincount(reference, minlength=len(labels)).argmax())
    true = _indices(y_true, labels)
    return {"label": labels[majority], "accuracy": float((true == majority).mean())}


def _defined(
    labels: Sequence[str], values: np.ndarray, defined: np.ndarray
) -> dict[str, float | None]:
    return {
        label: (float(v) if ok else None)
        for label, v, ok in zip(labels, values, defined, strict=True)
    }


def classification_report(
    y_true: LabelArray,
    y_pred: LabelArray,
    labels: Sequence[str],
    y_train: LabelArray | None = None,
) -> dict[str, Any]:
    """All metrics in one JSON-ready dict.

    Keys: ``n``, ``labels`` (the order of ``confusion``'s rows and columns), ``accuracy``,
    ``macro_f1``, ``weighted_f1``, ``per_class`` (label -> accuracy), ``per_class_f1``,
    ``support``, ``confusion`` (rows = true labels), ``majority_baseline``, ``accuracy_ci95``
    (the 95% interval of the accuracy). An entry that is
    undefined on these examples (recall of a class with no example, precision of a class never
    predicted, F1 of a class neither present nor predicted) is None (JSON null), never 0.
    """
    labels = list(labels)
    confusion = confusion_matrix(y_true, y_pred, labels)
    recall, precision, f1, support = _per_class(confusion)
    present = (support > 0) | (confusion.sum(axis=0) > 0)
    return {
        "n": int(support.sum()),
        "labels": labels,
        "accuracy": float(np.trace(confusion) / support.sum()),
        "macro_f1": float(f1[present].mean()),
        "weighted_f1": float((f1 * support).sum() / support.sum()),
        "per_class": per_class_accuracy(y_true, y_pred, labels),
        "per_class_f1": _defined(labels, f1, present),
        "per_class_precision": _defined(labels, precision, confusion.sum(axis=0) > 0),
        "support": {label: int(n) for label, n in zip(labels, support, strict=True)},
        "confusion": confusion.tolist(),
        "majority_baseline": majority_baseline(y_true, labels, y_train),
        "accuracy_ci95": wilson_interval(int(np.trace(confusion)), int(support.sum())),
    }


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> list[float]:
    """The 95% Wilson score interval of a proportion: how far an accuracy measured on ``n``
    posts may be from the model's true accuracy (wide on small splits; sane at 0 and 1)."""
    if n <= 0:
        return [0.0, 1.0]
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def kl_divergence(target: np.ndarray, predicted: np.ndarray, eps: float = 1e-12) -> float:
    """Mean KL(target || predicted) in nats over rows of probability distributions (N, K):
    how far predicted distributions are from soft labels (0 when equal). Terms where the
    target is 0 contribute 0; predictions are clipped at ``eps`` so a confident miss is
    large but finite."""
    target = np.asarray(target, dtype=np.float64)
    predicted = np.clip(np.asarray(predicted, dtype=np.float64), eps, None)
    predicted = predicted / predicted.sum(axis=1, keepdims=True)
    terms = np.where(
        target > 0, target * (np.log(np.where(target > 0, target, 1)) - np.log(predicted)), 0.0
    )
    return float(terms.sum(axis=1).mean())
