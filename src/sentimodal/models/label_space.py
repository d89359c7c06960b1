"""Label spaces: the labels an embedding head can predict, each placed as a vector.

An embedding head predicts a point in the space of word (or sentence) vectors, and the label is
the nearest label vector by cosine. Because the model never learns the label set itself, the
space can be rebuilt for new labels at prediction time, as long as the vectors come from the
same source (the model was trained to predict in that source's space).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sentimodal.errors import UserInputError
from sentimodal.features import resources
from sentimodal.features.text_encoders.glove_mean import glove_vector, glove_words
from sentimodal.features.text_encoders.minilm import minilm_vectors
from sentimodal.models.config import GLOVE_SOURCE, MINILM_SOURCE

#: vector sources that can place any new label
SOURCES = (GLOVE_SOURCE, MINILM_SOURCE)


class LabelSpace:
    """Labels and their vectors (one row per label), with the name of the vectors' source.

    ``source`` is ``glove_6b_50d``, ``minilm`` or any other name for vectors given by hand
    (those cannot be rebuilt for new labels).
    """

    def __init__(
        self, labels: Sequence[str], vectors: np.ndarray | Sequence[Sequence[float]], source: str
    ) -> None:
        labels = [str(label) for label in labels]
        matrix = np.asarray(vectors, dtype=np.float32)
        if len(labels) < 2:
            raise UserInputError("a label space needs at least two labels")
        if len(set(labels)) != len(labels):
            raise UserInputError(f"labels are not unique: {labels}")
        if matrix.ndim != 2 or matrix.shape[0] != len(labels):
            raise UserInputError(
                f"label vectors must be one row per label: {len(labels)} labels, "
                f"array of shape {matrix.shape}"
            )
        norms = np.linalg.norm(matrix, axis=1)
        if not np.all(np.isfinite(matrix)) or np.any(norms == 0):
            raise UserInputError("label vectors must be finite and non-zero")
        self.labels: list[str] = labels
        self.vectors: np.ndarray = matrix
        self.source: str = source

    @classmethod
    def from_glove(cls, labels: Sequence[str]) -> LabelSpace:
        """Labels placed by GloVe 6B 50-d; a phrase label is the mean of its words' vectors
        (words split as the ``glove_mean`` text encoder splits posts). Every word needs a
        vector: a label with an unknown word is refused (no silent fallback to another space,
        whose vectors the model was not trained to predict)."""
        vocab = resources.glove_table().vocab
        for label in labels:
            words = glove_words(label)
            missing = [word for word in words if word.lower() not in vocab]
            if not words or missing:
                what = f"the word {missing[0]!r}" if missing else "no word"
                raise UserInputError(
                    f"label {label!r}: {what} has no GloVe 6B vector; rename the label or use "
                    f"the minilm label source (which places any phrase)"
                )
        vectors = np.stack([glove_vector(label) for label in labels])
        return cls(labels, vectors, GLOVE_SOURCE)

    @classmethod
    def from_minilm(cls, labels: Sequence[str]) -> LabelSpace:
        """Labels placed by the MiniLM sentence encoder (384-d), phrases encoded as sentences."""
        return cls(labels, minilm_vectors(labels), MINILM_SOURCE)

    @classmethod
    def from_source(cls, source: str, labels: Sequence[str]) -> LabelSpace:
        """Place ``labels`` with a named source (``glove_6b_50d`` or ``minilm``)."""
        if source == GLOVE_SOURCE:
            return cls.from_glove(labels)
        if source == MINILM_SOURCE:
            return cls.from_minilm(labels)
        raise UserInputError(f"unknown label vector source {source!r}; known: {', '.join(SOURCES)}")

    def with_labels(self, labels: Sequence[str]) -> LabelSpace:
        """The same vector source with another label set (zero-shot prediction on new labels)."""
        if self.source not in SOURCES:
            raise UserInputError(
                f"label vectors from {self.source!r} were given by hand; they cannot place new "
                f"labels, so build a LabelSpace with their vectors"
            )
        return LabelSpace.from_source(self.source, labels)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"LabelSpace({self.labels}, dim={self.dim}, source={self.source!r})"

    def index(self, label: str) -> int:
        try:
            return self.labels.index(label)
        except ValueError:
            raise UserInputError(f"label {label!r} is not among {self.labels}") from None

    def vector(self, label: str) -> np.ndarray:
        return self.vectors[self.index(label)]

    def tensor(self) -> torch.Tensor:
        return torch.from_numpy(self.vectors.copy())

    def similarities(self, outputs: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of each predicted vector (N, dim) to each label vector: (N, labels)."""
        return cosine_scores(outputs, self.tensor().to(outputs.device, outputs.dtype))

    def decode(self, outputs: torch.Tensor) -> list[str]:
        """The nearest label (by cosine) of each predicted vector."""
        return [self.labels[i] for i in self.similarities(outputs).argmax(dim=1).tolist()]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``labels.json`` (no pickle): labels, vectors as lists, source."""
        return {"labels": self.labels, "vectors": self.vectors.tolist(), "source": self.source}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelSpace:
        try:
            return cls(data["labels"], data["vectors"], data["source"])
        except KeyError as missing:
            raise UserInputError(f"label space data lacks the field {missing}") from None


def cosine_scores(outputs: torch.Tensor, label_vectors: torch.Tensor) -> torch.Tensor:
    """Cosine similarities (N, L) between predictions (N, D) and label vectors (L, D)."""
    return F.normalize(outputs, dim=1) @ F.normalize(label_vectors, dim=1).T
