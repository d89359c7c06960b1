"""Evaluation: accuracy, per-class accuracy, macro/weighted F1, confusion, baselines;
calibration error and log-loss."""

from sentimodal.evaluation.calibration import (
    expected_calibration_error,
    log_loss,
    reliability_bins,
)
from sentimodal.evaluation.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    macro_f1,
    majority_baseline,
    per_class_accuracy,
    weighted_f1,
)

__all__ = [
    "accuracy",
    "classification_report",
    "confusion_matrix",
    "expected_calibration_error",
    "log_loss",
    "macro_f1",
    "majority_baseline",
    "per_class_accuracy",
    "reliability_bins",
    "weighted_f1",
]
