"""Training: losses, optimisers, the seeded training loop with early stopping, batched
prediction, and fine-tuning on confident examples."""

from sentimodal.training.batches import Data
from sentimodal.training.confident import ConfidentResult, confident_mask, fine_tune_confident
from sentimodal.training.config import ConfidentConfig, TrainConfig
from sentimodal.training.inference import (
    extract_embeddings,
    predict_labels,
    predict_outputs,
    predict_scores,
)
from sentimodal.training.losses import cosine_proximity, cross_entropy, hinge_rank, make_loss, mse
from sentimodal.training.optim import make_optimizer
from sentimodal.training.trainer import TrainResult, fit

__all__ = [
    "ConfidentConfig",
    "ConfidentResult",
    "Data",
    "TrainConfig",
    "TrainResult",
    "confident_mask",
    "cosine_proximity",
    "cross_entropy",
    "extract_embeddings",
    "fine_tune_confident",
    "fit",
    "hinge_rank",
    "make_loss",
    "make_optimizer",
    "mse",
    "predict_labels",
    "predict_outputs",
    "predict_scores",
]
