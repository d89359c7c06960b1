"""Fine-tuning on confident examples, as in the study: drop the training examples the model
does not confidently get right (often noisy labels), then continue training on the rest."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sentimodal.errors import UserInputError
from sentimodal.models.base import SentimentNet
from sentimodal.models.batches import Data, as_labels, as_tensors, n_examples
from sentimodal.models.forward import predict_scores
from sentimodal.training.train_config import ConfidentConfig, TrainConfig
from sentimodal.training.trainer import Labels, TrainResult, fit


@dataclass
class ConfidentResult:
    """Which training examples were kept, and the history of the continued training."""

    kept: np.ndarray
    result: TrainResult


def confident_mask(
    model: SentimentNet, data: Data, labels: Labels, threshold: float, batch_size: int = 512
) -> np.ndarray:
    """True for examples whose score for their own label exceeds ``threshold``."""
    y = as_labels(labels, n_examples(as_tensors(data))).numpy()
    scores = predict_scores(model, data, batch_size)
    return scores[np.arange(len(y)), y] > threshold


def fine_tune_confident(
    model: SentimentNet,
    data: Data,
    labels: Labels,
    *,
    val: tuple[Data, Labels] | None = None,
    train_config: TrainConfig | None = None,
    config: ConfidentConfig | None = None,
    progress: bool = True,
) -> ConfidentResult:
    """Continue training ``model`` on its confident training examples only.

    The optimiser starts afresh (its state is not part of a trained model); epochs and learning
    rate come from ``config``, everything else from ``train_config``.
    """
    train_config = train_config or TrainConfig()
    config = config or ConfidentConfig()
    kept = confident_mask(model, data, labels, config.threshold, train_config.eval_batch_size)
    if not kept.any():
        raise UserInputError(
            f"no training example has a score above {config.threshold} for its label: "
            f"lower the confident-example threshold"
        )
    rows = np.flatnonzero(kept)
    subset = {key: np.asarray(value)[rows] for key, value in data.items()}
    y = np.asarray(labels)[rows]
    result = fit(
        model,
        subset,
        y,
        val=val,
        config=train_config.model_copy(update={"epochs": config.epochs}),
        lr=config.lr,
        progress=progress,
    )
    return ConfidentResult(kept=kept, result=result)
