"""Training: losses, optimisers, the seeded training loop with early stopping, batched
prediction, and fine-tuning on confident examples.

Names are imported on first use (PEP 562), so that a light submodule such as ``.config`` can be
imported without loading torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConfidentConfig": "sentimodal.training.config",
    "ConfidentResult": "sentimodal.training.confident",
    "Data": "sentimodal.training.batches",
    "TrainConfig": "sentimodal.training.config",
    "TrainResult": "sentimodal.training.trainer",
    "confident_mask": "sentimodal.training.confident",
    "cosine_proximity": "sentimodal.training.losses",
    "cross_entropy": "sentimodal.training.losses",
    "extract_embeddings": "sentimodal.training.inference",
    "fine_tune_confident": "sentimodal.training.confident",
    "fit": "sentimodal.training.trainer",
    "hinge_rank": "sentimodal.training.losses",
    "make_loss": "sentimodal.training.losses",
    "make_optimizer": "sentimodal.training.optim",
    "mse": "sentimodal.training.losses",
    "predict_labels": "sentimodal.training.inference",
    "predict_outputs": "sentimodal.training.inference",
    "predict_scores": "sentimodal.training.inference",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
