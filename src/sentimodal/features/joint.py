"""``clip:<model id or folder>``: one joint image-text model (CLIP or SigLIP, through
transformers) giving both modalities' vectors in one space, and scoring posts against label
prompts there.

The text encoder ``clip:X`` and the image encoder ``clip:X`` read the same weights (loaded once
per process). Both give unit vectors of the joint space, so a post's text and image, and a
label prompt ("a photo of something {label}"), compare by their dot product: that is what
open-vocabulary labels at predict time score (:func:`prompt_scores`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sentimodal.errors import UserInputError
from sentimodal.features import resources
from sentimodal.features.hub import HubSource, resolve_source

#: the label prompt of the seed study's zero-shot hope
DEFAULT_TEMPLATE = "a photo of something {label}"


def joint_source(model: str, revision: str | None = None) -> HubSource:
    return resolve_source(model, prefix="clip", revision=revision)


@functools.cache
def joint_model(folder: Path, device: str = "cpu") -> Any:
    """The joint model saved in ``folder`` (eval mode, on ``device``), loaded once."""
    transformers: Any = resources.require("transformers")
    with resources.quiet_loading():
        model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
    if not (hasattr(model, "get_text_features") and hasattr(model, "get_image_features")):
        raise UserInputError(
            f"clip:{folder}: a {type(model).__name__} is not a joint image-text model (CLIP, "
            "SigLIP)"
        )
    return model.eval().to(device)


@functools.cache
def joint_tokenizer(folder: Path) -> Any:
    transformers: Any = resources.require("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


@functools.cache
def joint_image_config(folder: Path) -> dict[str, Any]:
    """The image processor's settings (size, crop, mean, std, resampling) as plain data."""
    transformers: Any = resources.require("transformers")
    processor = transformers.AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
    return {
        key: getattr(processor, key, None)
        for key in ("size", "crop_size", "image_mean", "image_std", "resample", "do_center_crop")
    }


def joint_width(folder: Path) -> int:
    """The joint space's width (the projection's)."""
    config = resources.transformer_config(folder)
    width = config.get("projection_dim") or config.get("text_config", {}).get("hidden_size")
    if not width:
        raise UserInputError(f"clip:{folder}: its config.json names no projection_dim")
    return int(width)


def _tensor(out: Any) -> torch.Tensor:
    """transformers returns the projected features as a tensor or inside an output object."""
    return out if torch.is_tensor(out) else out.pooler_output


def text_vectors(
    folder: Path, texts: Sequence[str], *, max_len: int, device: str = "cpu", batch_size: int = 64
) -> np.ndarray:
    """(N, width) unit vectors of ``texts`` in the joint space."""
    model, tokenizer = joint_model(folder, device), joint_tokenizer(folder)
    limit = int(getattr(model.config.text_config, "max_position_embeddings", max_len))
    out = np.zeros((len(texts), joint_width(folder)), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        chunk = [text or "" for text in texts[start : start + batch_size]]
        encoded = tokenizer(chunk, padding="max_length", truncation=True,
                            max_length=min(max_len, limit), return_tensors="pt")  # fmt: skip
        encoded = {k: v.to(device) for k, v in encoded.items() if k != "token_type_ids"}
        with torch.inference_mode():
            vectors = _tensor(model.get_text_features(**encoded)).float()
        out[start : start + len(chunk)] = torch.nn.functional.normalize(vectors, dim=-1).cpu()
    return out


class JointImageFeatures(torch.nn.Module):
    """Pixels -> unit vectors of the joint space (the vision tower and its projection)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        vectors = _tensor(self.model.get_image_features(pixel_values=pixels)).float()
        return torch.nn.functional.normalize(vectors, dim=-1)


def prompt_scores(
    folder: Path,
    text: np.ndarray | None,
    image: np.ndarray | None,
    labels: Sequence[str],
    *,
    template: str = DEFAULT_TEMPLATE,
    max_len: int = 77,
) -> np.ndarray:
    """(N, labels) probabilities of each label for posts given by their joint vectors: the
    softmax over the label prompts of the model's own logit scale times the cosine of the
    post (the mean of its text and image vectors where it has both; a row of zeros means the
    post lacks that modality) with each prompt."""
    if "{label}" not in template:
        raise UserInputError(f"the label template {template!r} has no {{label}} to fill in")
    prompts = text_vectors(folder, [template.format(label=x) for x in labels], max_len=max_len)
    parts = [v for v in (text, image) if v is not None]
    total = np.sum(parts, axis=0)
    post = total / np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12)
    model = joint_model(folder)
    # CLIP's learned temperature (SigLIP's too); 100, CLIP's trained value, where none is kept
    scale = float(model.logit_scale.detach().exp()) if hasattr(model, "logit_scale") else 100.0
    logits = torch.from_numpy(scale * post @ prompts.T)
    return torch.softmax(logits, dim=1).numpy()
