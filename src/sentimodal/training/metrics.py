"""The metrics of a prediction frame against a dataset's labels: what ``evaluate`` reports and
experiment scores record, computed in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from sentimodal.evaluation.metrics import classification_report
from sentimodal.preparation.dataset import PreparedDataset


def frame_metrics(
    frame: pd.DataFrame,
    dataset: PreparedDataset,
    classes: Sequence[str],
    train_splits: Sequence[str],
    split: str,
) -> dict[str, Any] | None:
    """Metrics on the posts of ``frame`` (``predict_frame``'s) that were predicted, with the
    training splits' labels for the majority baseline; ``n_missing`` counts those that were
    not. None when no post was predicted."""
    predicted = frame[frame["error"].isna()]
    if predicted.empty:
        return None
    truth = dataset.examples.set_index(dataset.examples["id"].astype(str))["label"]
    y_true = truth.loc[predicted["id"].astype(str).tolist()].astype(str).to_numpy()
    labels = list(dict.fromkeys([*classes, *sorted(set(y_true))]))
    y_train = [
        label
        for name in train_splits
        if name in dataset.splits
        for label in dataset.split(name)["label"].astype(str)
    ]
    metrics = classification_report(
        y_true, predicted["label"].to_numpy(), labels, y_train=y_train or None
    )
    metrics["split"] = split
    metrics["n_missing"] = int(len(frame) - len(predicted))
    return metrics
