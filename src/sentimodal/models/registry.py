"""Model kinds by name: build any model from its name and settings, or from a saved config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from pydantic import TypeAdapter, ValidationError

from sentimodal.errors import UserInputError
from sentimodal.models.base import SentimentNet
from sentimodal.models.config import (
    AnyModelConfig,
    ConcatFusionConfig,
    GatedFusionConfig,
    LateFusionConfig,
    LinearConfig,
    MLPConfig,
    ModelConfig,
    PixelCNNConfig,
    TextCrossConfig,
    TextLSTMConfig,
    TextMPNetConfig,
    TextTransformerConfig,
)
from sentimodal.models.fusion import ConcatFusion, GatedFusion, LateFusion
from sentimodal.models.linear import FeatureLinear
from sentimodal.models.mlp import FeatureMLP
from sentimodal.models.pixel_cnn import PixelCNN
from sentimodal.models.text_cross import TextImageCrossAttention
from sentimodal.models.text_lstm import TextBiLSTM
from sentimodal.models.text_mpnet import TextMPNet
from sentimodal.models.text_transformer import TextTransformer


def _late(config: LateFusionConfig) -> SentimentNet:
    return LateFusion(config, _build(config.text), _build(config.image))


_BUILDERS: dict[str, tuple[type[ModelConfig], Callable[[Any], SentimentNet]]] = {
    "mlp": (MLPConfig, FeatureMLP),
    "linear": (LinearConfig, FeatureLinear),
    "text_lstm": (TextLSTMConfig, TextBiLSTM),
    "text_transformer": (TextTransformerConfig, TextTransformer),
    "text_cross": (TextCrossConfig, TextImageCrossAttention),
    "text_mpnet": (TextMPNetConfig, TextMPNet),
    "pixel_cnn": (PixelCNNConfig, PixelCNN),
    "concat": (ConcatFusionConfig, ConcatFusion),
    "gated": (GatedFusionConfig, GatedFusion),
    "late": (LateFusionConfig, _late),
}

_ANY_CONFIG: TypeAdapter[ModelConfig] = TypeAdapter(AnyModelConfig)


def list_models() -> list[str]:
    return list(_BUILDERS)


def model_config(name: str, **cfg: Any) -> ModelConfig:
    """The validated config of model kind ``name``; bad settings are the user's to fix."""
    if name not in _BUILDERS:
        raise UserInputError(f"unknown model {name!r}; known: {', '.join(_BUILDERS)}")
    cfg.pop("kind", None)
    try:
        return _BUILDERS[name][0](**cfg)
    except ValidationError as error:
        raise UserInputError(f"bad settings for model {name!r}: {error}") from None


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """A model config from plain data with its ``kind`` (as in a model directory's config)."""
    try:
        return _ANY_CONFIG.validate_python(data)
    except ValidationError as error:
        raise UserInputError(f"bad model config: {error}") from None


def _build(config: ModelConfig) -> SentimentNet:
    return _BUILDERS[config.kind][1](config)


def build_model(config: ModelConfig | dict[str, Any], seed: int | None = None) -> SentimentNet:
    """The model a config describes; with ``seed``, its initial weights are reproducible."""
    if isinstance(config, dict):
        config = config_from_dict(config)
    if seed is None:
        return _build(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _build(config)


def get_model(name: str, *, seed: int | None = None, **cfg: Any) -> SentimentNet:
    """Build model kind ``name`` (see ``list_models()``) with settings ``cfg``."""
    return build_model(model_config(name, **cfg), seed=seed)
