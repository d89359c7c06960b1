"""In-memory data for training: modality-keyed arrays, and the batches cut from them.

Data is a plain ``dict[str, np.ndarray | Tensor]`` (one row per example) so that training does
not depend on how features are stored on disk. Token sequences are batched by length: examples
are shuffled, sorted by length within chunks of a few dozen batches, and each batch is trimmed
to its longest sequence, so a batch of tweets pays for about their own length, not for 101.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from sentimodal.errors import UserInputError

Data = Mapping[str, np.ndarray | torch.Tensor]

TOKENS, LENGTHS = "text", "text_lengths"


def as_tensors(data: Data) -> dict[str, torch.Tensor]:
    """Tensors sharing numpy memory where possible; float32 features, int64 ids and lengths.

    Token ids without ``text_lengths`` get their lengths counted (pad id 0, post-padded).
    """
    tensors: dict[str, torch.Tensor] = {}
    for key, value in data.items():
        tensor = torch.as_tensor(np.asarray(value) if not torch.is_tensor(value) else value)
        if tensor.is_floating_point():
            tensor = tensor.float()
        elif tensor.dtype != torch.bool:
            tensor = tensor.long()
        tensors[key] = tensor
    sizes = {key: len(t) for key, t in tensors.items()}
    if not sizes:
        raise UserInputError("no input data: give at least one of 'text' or 'image'")
    if len(set(sizes.values())) != 1:
        raise UserInputError(f"inputs have different numbers of examples: {sizes}")
    text = tensors.get(TOKENS)
    if text is not None and text.dtype == torch.int64 and text.ndim == 2 and LENGTHS not in tensors:
        tensors[LENGTHS] = (text != 0).sum(dim=1)
    return tensors


def to_device(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch on ``device`` (the same tensors when they are there already: the CPU)."""
    return {key: value.to(device) for key, value in batch.items()}


def n_examples(data: Mapping[str, torch.Tensor]) -> int:
    return len(next(iter(data.values())))


def as_labels(labels: np.ndarray | torch.Tensor | list[int], n: int) -> torch.Tensor:
    """Integer class indices, one per example."""
    tensor = torch.as_tensor(np.asarray(labels)).long()
    if tensor.ndim != 1 or len(tensor) != n:
        raise UserInputError(f"{n} examples but labels of shape {tuple(tensor.shape)}")
    return tensor


def sequence_lengths(data: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
    return data.get(LENGTHS)


def epoch_batches(
    n: int,
    batch_size: int,
    generator: torch.Generator,
    lengths: torch.Tensor | None = None,
    chunk_batches: int = 50,
) -> list[torch.Tensor]:
    """Shuffled index batches; with ``lengths``, length-bucketed.

    A lone last example joins the batch before it (batch-norm cannot train on one example).
    """
    order = torch.randperm(n, generator=generator)
    bucketed = lengths is not None
    if bucketed:
        chunk = batch_size * chunk_batches
        order = torch.cat(
            [part[torch.argsort(lengths[part], stable=True)] for part in order.split(chunk)]
        )
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    if bucketed:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
    return batches


def inference_batches(
    n: int, batch_size: int, lengths: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """Index batches in order, or sorted by length so that each batch trims its padding."""
    order = torch.arange(n) if lengths is None else torch.argsort(lengths, stable=True)
    return list(order.split(batch_size))


def take(
    data: Mapping[str, torch.Tensor], index: torch.Tensor, trim: bool = True
) -> dict[str, torch.Tensor]:
    """The rows ``index`` of every input; with ``trim``, token ids are cut to the batch's
    longest sequence (post-padding makes that safe)."""
    batch = {key: value[index] for key, value in data.items()}
    lengths = batch.get(LENGTHS)
    if trim and lengths is not None and batch[TOKENS].ndim == 2:
        batch[TOKENS] = batch[TOKENS][:, : max(int(lengths.max()), 1)]
    return batch
