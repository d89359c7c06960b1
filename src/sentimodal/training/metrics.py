"""The metrics of a prediction frame against a dataset's labels: what ``evaluate`` reports and
experiment scores record, computed in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sentimodal.evaluation.calibration import expected_calibration_error, log_loss
from sentimodal.evaluation.metrics import classification_report
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.training.seen_posts import seen_mask


def frame_metrics(
    frame: pd.DataFrame,
    dataset: PreparedDataset,
    classes: Sequence[str],
    train_splits: Sequence[str],
    split: str,
    seen: np.ndarray | None = None,
    *,
    probabilities: bool = True,
) -> dict[str, Any] | None:
    """Metrics on the posts of ``frame`` (``predict_frame``'s) that were predicted, with the
    training splits' labels for the majority baseline; ``n_missing`` counts those that were
    not. None when no post was predicted.

    With ``seen`` (the fingerprints of the model's training posts), ``n_training_posts``
    counts the evaluated posts the model trained on and, when there are any, ``unseen`` holds
    the metrics of the others alone (None if every one was trained on): scores on training
    posts flatter a model. With ``probabilities`` (a softmax head's scores), ``log_loss`` and
    ``ece`` (expected calibration error) say how far the scores are from frequencies; they are
    None for similarities (embedding heads)."""
    predicted = frame[frame["error"].isna()]
    if predicted.empty:
        return None
    metrics = _metrics(predicted, dataset, classes, train_splits)
    metrics.update(_calibration(predicted, dataset, classes) if probabilities else _UNCALIBRATED)
    metrics["split"] = split
    metrics["n_missing"] = int(len(frame) - len(predicted))
    if seen is not None:
        examples = dataset.examples.set_index(dataset.examples["id"].astype(str))
        trained_on = seen_mask(examples.loc[predicted["id"].astype(str).tolist()], seen)
        metrics["n_training_posts"] = int(trained_on.sum())
        if trained_on.any():
            others = predicted[~trained_on]
            metrics["unseen"] = (
                _metrics(others, dataset, classes, train_splits) if len(others) else None
            )
    return metrics


def _metrics(
    predicted: pd.DataFrame,
    dataset: PreparedDataset,
    classes: Sequence[str],
    train_splits: Sequence[str],
) -> dict[str, Any]:
    truth = dataset.examples.set_index(dataset.examples["id"].astype(str))["label"]
    y_true = truth.loc[predicted["id"].astype(str).tolist()].astype(str).to_numpy()
    labels = list(dict.fromkeys([*classes, *sorted(set(y_true))]))
    y_train = [
        label
        for name in train_splits
        if name in dataset.splits
        for label in dataset.split(name)["label"].astype(str)
    ]
    return classification_report(
        y_true, predicted["label"].to_numpy(), labels, y_train=y_train or None
    )


_UNCALIBRATED = {"log_loss": None, "ece": None}


def _calibration(
    predicted: pd.DataFrame, dataset: PreparedDataset, classes: Sequence[str]
) -> dict[str, float | None]:
    """Log-loss and ECE of the predicted posts' scores (None when a true label is not among
    the scored classes: its probability is not known)."""
    truth = dataset.examples.set_index(dataset.examples["id"].astype(str))["label"]
    y_true = truth.loc[predicted["id"].astype(str).tolist()].astype(str).tolist()
    position = {label: i for i, label in enumerate(classes)}
    if any(label not in position for label in y_true):
        return dict(_UNCALIBRATED)
    scores = predicted[list(classes)].to_numpy(dtype=np.float64)
    indices = np.array([position[label] for label in y_true], dtype=np.int64)
    return {
        "log_loss": log_loss(scores, indices),
        "ece": expected_calibration_error(scores, indices),
    }
