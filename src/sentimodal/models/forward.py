"""Batched prediction with any model: outputs, per-label scores, labels, penultimate features.

Inputs are the same modality-keyed arrays as for training. Token sequences are processed in
length order (and put back in input order), so padding costs nothing at prediction time either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from sentimodal.devices import module_device
from sentimodal.errors import UserInputError
from sentimodal.models.base import Batch, SentimentNet
from sentimodal.models.batches import (
    Data,
    as_tensors,
    inference_batches,
    n_examples,
    sequence_lengths,
    take,
    to_device,
)


@torch.inference_mode()
def run_batched(
    model: SentimentNet,
    data: Mapping[str, torch.Tensor],
    fn: Callable[[Batch], torch.Tensor],
    batch_size: int = 512,
    trim: bool = True,
) -> torch.Tensor:
    """``fn`` over the data in evaluation mode, batch by batch, on the model's device; rows in
    input order, on the CPU."""
    n = n_examples(data)
    device = module_device(model)
    if n == 0:
        raise UserInputError("no examples to predict")
    was_training = model.training
    model.eval()
    try:
        batches = inference_batches(n, batch_size, sequence_lengths(data) if trim else None)
        parts = [fn(to_device(take(data, index, trim=trim), device)).cpu() for index in batches]
    finally:
        model.train(was_training)
    out = torch.empty((n, *parts[0].shape[1:]), dtype=parts[0].dtype, device=parts[0].device)
    out[torch.cat(batches)] = torch.cat(parts)
    return out


def predict_outputs(model: SentimentNet, data: Data, batch_size: int = 512) -> np.ndarray:
    """Raw outputs: logits (softmax head) or label-space vectors (embedding head)."""
    return run_batched(model, as_tensors(data), model, batch_size).numpy()


def predict_scores(model: SentimentNet, data: Data, batch_size: int = 512) -> np.ndarray:
    """Per-label scores (N, labels): class probabilities, or cosines for embedding heads."""
    return run_batched(model, as_tensors(data), model.scores, batch_size).numpy()


def predict_labels(model: SentimentNet, data: Data, batch_size: int = 512) -> np.ndarray:
    """Index of the best-scoring label per example."""
    return predict_scores(model, data, batch_size).argmax(axis=1)


def extract_embeddings(model: SentimentNet, data: Data, batch_size: int = 512) -> np.ndarray:
    """Penultimate representations, e.g. the text model's features to feed a fusion model."""
    return run_batched(model, as_tensors(data), model.embed, batch_size).numpy()
