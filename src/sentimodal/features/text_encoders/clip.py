"""``clip:<model id or folder>``: the text tower of a joint image-text model (CLIP, SigLIP):
unit vectors of the joint space, where images and label prompts are too (see
:mod:`sentimodal.features.joint`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from sentimodal.features.joint import joint_source, joint_width, text_vectors
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.features.text_encoders.registry import register_text_encoder
from sentimodal.features.text_normalize import (
    DEFAULT_TEXT_NORMALIZATION,
    check_normalization,
    normalize_texts,
)


@register_text_encoder
class JointTextEncoder(TextEncoder):
    """A joint model's text vectors; ``max_len`` tokens (CLIP reads 77 at most)."""

    name = "clip"
    family: ClassVar[bool] = True
    #: the posts' vectors share a space with the joint model's images and label prompts
    joint = True

    def __init__(
        self,
        model: str,
        max_len: int = 77,
        normalize: str = DEFAULT_TEXT_NORMALIZATION,
        revision: str | None = None,
        device: str = "cpu",
    ) -> None:
        self.name = f"clip:{model}"
        self.model, self.max_len, self.revision, self.device = model, max_len, revision, device
        self.normalize = check_normalization(normalize)
        self.source = joint_source(model, revision)
        self.shape = (joint_width(self.source.folder),)

    @property
    def folder(self) -> Path:
        return self.source.folder

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"max_len": self.max_len, "normalize": self.normalize}
        if self.revision is not None:
            config["revision"] = self.revision
        return config

    @property
    def identity(self) -> str:
        return f"{self.source.identity}:text"

    def to(self, device: Any) -> Self:
        self.device = str(device)
        return self

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = normalize_texts(texts, self.normalize)
        return text_vectors(self.folder, texts, max_len=self.max_len, device=self.device)
