"""Torch models: MLP body, softmax and embedding heads, label spaces, text BiLSTM, pixel CNN,
fusions, and the registry that builds them by name."""

from sentimodal.models.base import Batch, SentimentNet
from sentimodal.models.config import (
    ConcatFusionConfig,
    GatedFusionConfig,
    LateFusionConfig,
    MLPConfig,
    ModelConfig,
    PixelCNNConfig,
    TextLSTMConfig,
)
from sentimodal.models.fusion import ConcatFusion, GatedFusion, LateFusion
from sentimodal.models.heads import EmbeddingHead, SoftmaxHead
from sentimodal.models.label_space import LabelSpace
from sentimodal.models.mlp import FeatureMLP, MLPBody
from sentimodal.models.pixel_cnn import PixelCNN
from sentimodal.models.registry import (
    build_model,
    config_from_dict,
    get_model,
    list_models,
    model_config,
)
from sentimodal.models.text_lstm import TextBiLSTM, glove_embedding_matrix

__all__ = [
    "Batch",
    "ConcatFusion",
    "ConcatFusionConfig",
    "EmbeddingHead",
    "FeatureMLP",
    "GatedFusion",
    "GatedFusionConfig",
    "LabelSpace",
    "LateFusion",
    "LateFusionConfig",
    "MLPBody",
    "MLPConfig",
    "ModelConfig",
    "PixelCNN",
    "PixelCNNConfig",
    "SentimentNet",
    "SoftmaxHead",
    "TextBiLSTM",
    "TextLSTMConfig",
    "build_model",
    "config_from_dict",
    "get_model",
    "glove_embedding_matrix",
    "list_models",
    "model_config",
]
