"""The labels a saved model scores: one rule for model directories and ONNX exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sentimodal.errors import UserInputError


def check_labels(labels: Any, where: Path) -> list[str]:
    """A model's labels: at least two, distinct, non-empty strings."""
    if not isinstance(labels, list) or not all(isinstance(x, str) and x.strip() for x in labels):
        raise UserInputError(f"{where}: labels must be a list of non-empty strings")
    if len(labels) < 2:
        raise UserInputError(f"{where}: a model needs at least two labels, got {len(labels)}")
    if len(set(labels)) != len(labels):
        seen: set[str] = set()
        duplicate = next(x for x in labels if x in seen or seen.add(x))  # type: ignore[func-returns-value]
        raise UserInputError(f"{where}: the label {duplicate!r} is listed twice")
    return labels
