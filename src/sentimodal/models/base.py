"""What every model is: a body that reads a modality-keyed batch, then a head.

The trainer, the estimator and the exporters only use this interface, so any model kind can be
trained, evaluated, saved and asked for its penultimate features the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from sentimodal.errors import UserInputError
from sentimodal.features.model_inputs import PRESENT
from sentimodal.models.batches import Data
from sentimodal.models.config import ModelConfig
from sentimodal.models.heads import EmbeddingHead, Head
from sentimodal.models.label_space import LabelSpace

if TYPE_CHECKING:
    from sentimodal.models.modality_weights import ModalityWeights

Batch = dict[str, torch.Tensor]


def present(batch: Batch, modality: str) -> torch.Tensor | None:
    """Which rows have ``modality`` (None: all of them)."""
    return batch.get(modality + PRESENT)


#: token ids are post-padded with 0 by every token encoder (the store counts lengths by it)
PAD_ID = 0


@dataclass(frozen=True)
class PretrainedStart:
    """What a model's pretrained parts may start from before training: the text encoder's
    learned vocabulary (tokens by id, for word-vector tables) and the run's seed."""

    seed: int = 0
    vocabulary: Sequence[str] | None = None


@dataclass(frozen=True)
class Solved:
    """A network fitted directly (a convex problem, no gradient steps): what the training
    history records (e.g. the chosen L2 strength) and one line saying how it was chosen."""

    record: dict[str, float]
    summary: str


class SentimentNet(nn.Module, ABC):
    """Base class: ``embed`` (the body's representation) -> ``head`` -> outputs.

    ``forward`` returns logits (softmax head) or label-space vectors (embedding head);
    ``scores`` returns per-label probabilities or cosine similarities.
    """

    #: batch keys the model reads
    inputs: tuple[str, ...] = ()

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.head: Head

    @classmethod
    def from_config(cls, config: ModelConfig) -> SentimentNet:
        """The network a config describes (a composite one builds its parts first)."""
        return cls(config)

    @abstractmethod
    def embed(self, batch: Batch) -> torch.Tensor:
        """The penultimate representation (N, dim), e.g. to export text features for fusion."""

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.head(self.embed(batch))

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Pretrained parameters that are fine-tuned, at their own (smaller) learning rate."""
        return []

    def start_pretrained(self, start: PretrainedStart) -> None:
        """Load pretrained weights where the config asks for them, before training (never when
        a saved model is rebuilt: its weights file holds them). Composite models pass it on."""
        for child in self.children():
            if isinstance(child, SentimentNet):
                child.start_pretrained(start)

    def end_training(self) -> None:
        """Drop what only training needed (a memo of frozen layers' outputs), once ``fit`` is
        done; composite models pass it on."""
        for child in self.children():
            if isinstance(child, SentimentNet):
                child.end_training()

    def branches(self) -> dict[str, SentimentNet]:
        """The unimodal networks this one combines that also predict alone, by modality (a
        late fusion's text and image models); none for the others."""
        return {}

    def modality_weights(self, batch: Batch) -> ModalityWeights | None:
        """How much this network itself weighs each modality in each post's decision, where
        its architecture says (a fusion's branch weights or gates); None, the default: it has
        no such weights (see :mod:`sentimodal.models.modality_weights`)."""
        return None

    def solve(
        self, data: Batch, labels: torch.Tensor, *, seed: int, sample_weight: torch.Tensor | None
    ) -> Solved | None:
        """Fit the network directly where its training is a convex problem (hard labels);
        None, the default, means: train it by gradient steps."""
        return None

    def fit_after_training(self, data: Data, labels: np.ndarray, batch_size: int) -> None:
        """Learn what only a trained network can, on posts it did not train on (the val
        split): nothing, by default."""

    def training_outputs(self, batch: Batch) -> list[torch.Tensor]:
        """Outputs the training loss is computed on (summed); one per jointly trained part."""
        return [self(batch)]

    @property
    def head_kind(self) -> str:
        return self.config.head

    def scores(self, batch: Batch) -> torch.Tensor:
        """Per-label scores (N, labels): probabilities, or cosines for the embedding head."""
        return self.scores_of(self(batch))

    def scores_of(self, outputs: torch.Tensor) -> torch.Tensor:
        """Per-label scores of outputs already computed (saves a second forward pass)."""
        return self.head.scores(outputs)

    def set_label_space(self, space: LabelSpace) -> None:
        """Give an embedding head the labels (and vectors) to decode into; replaceable later."""
        if not isinstance(self.head, EmbeddingHead):
            raise UserInputError("only models with an embedding head take a label space")
        self.head.set_label_space(space)

    def label_vectors(self) -> torch.Tensor:
        """The label vectors the embedding losses compare predictions with."""
        if not isinstance(self.head, EmbeddingHead):
            raise UserInputError("only models with an embedding head have label vectors")
        return self.head.require_label_vectors()

    def token_ids(self, batch: Batch, encoder: str) -> torch.Tensor:
        """The batch's text as int64 token ids; float features mean the wrong encoder was
        used, and the error names the one this model needs."""
        self.check_inputs(batch)
        ids = batch["text"]
        if ids.dtype != torch.int64:
            raise UserInputError(
                f"{type(self).__name__} reads token ids (int64), not {ids.dtype} features: use "
                f"the {encoder!r} text encoder"
            )
        return ids

    def check_inputs(self, batch: Batch) -> None:
        """Fail early, naming the missing modality, rather than with a KeyError deep inside."""
        missing = [key for key in self.inputs if key not in batch]
        if missing:
            raise UserInputError(
                f"{type(self).__name__} needs the input(s) {missing}; the data has {sorted(batch)}"
            )
