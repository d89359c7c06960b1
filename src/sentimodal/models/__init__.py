"""Torch models: MLP body, softmax and embedding heads, label spaces, text BiLSTM, pixel CNN,
fusions, and the registry that builds them by name.

Names are imported on first use (PEP 562), so that a light submodule such as ``.config`` can be
imported without loading torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Batch": "sentimodal.models.base",
    "ConcatFusion": "sentimodal.models.fusion",
    "ConcatFusionConfig": "sentimodal.models.config",
    "EmbeddingHead": "sentimodal.models.heads",
    "FeatureMLP": "sentimodal.models.mlp",
    "GatedFusion": "sentimodal.models.fusion",
    "GatedFusionConfig": "sentimodal.models.config",
    "LabelSpace": "sentimodal.models.label_space",
    "LateFusion": "sentimodal.models.fusion",
    "LateFusionConfig": "sentimodal.models.config",
    "MLPBody": "sentimodal.models.mlp",
    "MLPConfig": "sentimodal.models.config",
    "ModelConfig": "sentimodal.models.config",
    "PixelCNN": "sentimodal.models.pixel_cnn",
    "PixelCNNConfig": "sentimodal.models.config",
    "SentimentNet": "sentimodal.models.base",
    "SoftmaxHead": "sentimodal.models.heads",
    "TextBiLSTM": "sentimodal.models.text_lstm",
    "TextLSTMConfig": "sentimodal.models.config",
    "build_model": "sentimodal.models.registry",
    "config_from_dict": "sentimodal.models.registry",
    "get_model": "sentimodal.models.registry",
    "glove_embedding_matrix": "sentimodal.models.text_lstm",
    "list_models": "sentimodal.models.registry",
    "model_config": "sentimodal.models.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
