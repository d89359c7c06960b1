"""Open-vocabulary labels for a model over a joint image-text encoder (``clip:``).

Whatever its head, such a model can score any labels at predict time: each post's joint vectors
(its text's, its image's, or their mean) are compared with the label prompts' (a template,
"a photo of something {label}" by default) in the joint model's own space, bypassing the
trained head, which only knows its training labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sentimodal.errors import UserInputError
from sentimodal.features.joint import DEFAULT_TEMPLATE, prompt_scores
from sentimodal.features.model_inputs import PRESENT


@dataclass(frozen=True)
class OpenLabels:
    """Labels scored by prompt in the joint space of the model in ``folder``."""

    labels: tuple[str, ...]
    folder: Path
    template: str = DEFAULT_TEMPLATE

    @classmethod
    def of(cls, encoders: Sequence[object], labels: Sequence[str], template: str) -> OpenLabels:
        joint = [e for e in encoders if e is not None and getattr(e, "joint", False)]
        if not joint:
            raise UserInputError(
                "only models with an embedding head or clip: encoders can take new labels; "
                "this one is softmax over other encoders"
            )
        names = [str(x).strip() for x in labels if str(x).strip()]
        if len(names) < 2 or len(set(names)) != len(names):
            raise UserInputError(f"give at least two distinct labels, got {names}")
        if "{label}" not in template:
            raise UserInputError(f"the label template {template!r} has no {{label}} to fill in")
        return cls(tuple(names), joint[0].folder, template)  # type: ignore[attr-defined]

    def scores(self, data: Mapping[str, np.ndarray]) -> np.ndarray:
        """(N, labels) probabilities for unscaled joint vectors; a modality a row lacks (its
        ``<modality>_present`` false) is left out of its mean."""
        parts = {}
        for key in ("text", "image"):
            if key in data:
                values = np.asarray(data[key], dtype=np.float32)
                present = data.get(key + PRESENT)
                if present is not None:
                    values = values * np.asarray(present, dtype=np.float32)[:, None]
                parts[key] = values
        return prompt_scores(
            self.folder, parts.get("text"), parts.get("image"), self.labels, template=self.template
        )


class Unscaled:
    """The joint vectors as the encoders gave them (the prompts are unit vectors too)."""

    def transform(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(data)
