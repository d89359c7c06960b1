"""What every text encoder provides, so the feature store, the trainer and the server can use
any text representation the same way."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np


class TextEncoder(ABC):
    """Texts -> fixed-shape arrays (vectors, or token-id sequences for the study's text model).

    Encoders with learned state (the ``tokens`` vocabulary) learn it in ``fit`` from the train
    split only and persist it with ``save`` / ``load`` as plain files (JSON), never pickles.
    """

    name: str
    #: per-text output shape, e.g. (384,) or (101,)
    shape: tuple[int, ...]
    #: numpy dtype of the output (float32 vectors, int64 token ids)
    dtype: str = "float32"
    #: the pretrained transformer whose own token ids this encoder gives (that transformer is
    #: then fine-tuned with the model); None for everything else
    backbone: str | None = None
    #: settings added after models were first saved, at the value those models were trained
    #: with: a saved config without one of them means this (see ``saved_text_encoder``)
    legacy_config: ClassVar[dict[str, Any]] = {}

    @classmethod
    def gives_ids(cls, config: dict[str, Any]) -> bool:
        """Whether this encoder, with ``config``, gives a pretrained transformer's own ids (the
        transformer is then fine-tuned with the model), known without building it."""
        return cls.backbone is not None

    @property
    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Plain-data settings that rebuild this encoder: ``get_text_encoder(name, **config)``."""

    @property
    @abstractmethod
    def identity(self) -> str:
        """A stable string naming the weights/vocabulary (part of the feature cache key)."""

    @property
    def learns(self) -> bool:
        """True for encoders with learned state (saved with ``save``, part of ``identity``)."""
        return False

    @property
    def needs_fit(self) -> bool:
        """True while ``fit`` must still see the training texts before ``encode`` works.

        A fitted (or loaded) encoder keeps its state, so a trained model's vocabulary is used
        as it is on new data rather than relearned there.
        """
        return False

    def fit(self, texts: Sequence[str]) -> Self:
        return self

    def to(self, device: Any) -> Self:
        """Run on ``device`` (a torch device or its name); encoders without a network ignore
        it."""
        return self

    @abstractmethod
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """A batch of texts -> array of shape (len(texts), *shape)."""

    def vocabulary(self) -> list[str] | None:
        """Learned tokens by id (for starting an embedding table from word vectors)."""
        return None

    def save(self, directory: str | Path) -> None:  # noqa: B027 (optional hook: no state, no file)
        """Write learned state (if any) under ``directory``."""

    def load(self, directory: str | Path) -> Self:
        """Read learned state written by ``save``."""
        return self
