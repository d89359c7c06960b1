"""Evaluation: accuracy, per-class accuracy, macro/weighted F1, confusion, baselines."""

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
    "macro_f1",
    "majority_baseline",
    "per_class_accuracy",
    "weighted_f1",
]
