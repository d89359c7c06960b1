"""How far scores read as probabilities are from the frequencies they claim.

Expected calibration error (ECE) bins the posts by the probability of their predicted label
(the confidence) into equal-width bins and averages, weighted by each bin's size, the gap
between the bin's accuracy and its mean confidence. The same bins draw a reliability diagram.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sentimodal.errors import UserInputError

#: equal-width confidence bins of the ECE and the reliability diagram
ECE_BINS = 15


def _checked(probabilities: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.int64)
    if probabilities.ndim != 2 or len(probabilities) != len(truth) or len(truth) == 0:
        raise UserInputError(
            f"need (N, labels) probabilities and N true indices, got {probabilities.shape} "
            f"and {truth.shape}"
        )
    return probabilities, truth


def reliability_bins(
    probabilities: np.ndarray, truth: np.ndarray, bins: int = ECE_BINS
) -> list[dict[str, Any]]:
    """Per confidence bin: its range, post count, mean confidence and accuracy (None when
    empty): the points of a reliability diagram."""
    probabilities, truth = _checked(probabilities, truth)
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    # a confidence of exactly 1 goes into the last bin
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        out.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "n": n,
                "confidence": float(confidence[inside].mean()) if n else None,
                "accuracy": float(right[inside].mean()) if n else None,
            }
        )
    return out


def expected_calibration_error(
    probabilities: np.ndarray, truth: np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE: the size-weighted mean |accuracy - confidence| over the confidence bins."""
    table = reliability_bins(probabilities, truth, bins)
    total = sum(row["n"] for row in table)
    return float(
        sum(row["n"] * abs(row["accuracy"] - row["confidence"]) for row in table if row["n"])
        / total
    )


def log_loss(probabilities: np.ndarray, truth: np.ndarray, eps: float = 1e-12) -> float:
    """Mean negative log-probability of the true label (probabilities clipped at ``eps``)."""
    probabilities, truth = _checked(probabilities, truth)
    picked = probabilities[np.arange(len(truth)), truth]
    return float(-np.log(np.clip(picked, eps, 1.0)).mean())
