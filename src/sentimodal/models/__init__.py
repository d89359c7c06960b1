"""Torch models: MLP body, softmax and embedding heads, label spaces, text BiLSTM, pixel CNN,
fusions, and the registry that builds them by name (imported on first use, so that light
submodules such as ``.config`` and ``.recipes`` load without torch)."""

from sentimodal.lazy import lazy_exports

_EXPORTS = {
    "Batch": "sentimodal.models.base",
    "SentimentNet": "sentimodal.models.base",
    "ConcatFusionConfig": "sentimodal.models.config",
    "GatedFusionConfig": "sentimodal.models.config",
    "LateFusionConfig": "sentimodal.models.fusion",
    "LinearConfig": "sentimodal.models.config",
    "MLPConfig": "sentimodal.models.config",
    "ModelConfig": "sentimodal.models.config",
    "PixelCNNConfig": "sentimodal.models.config",
    "TextLSTMConfig": "sentimodal.models.config",
    "ConcatFusion": "sentimodal.models.fusion",
    "GatedFusion": "sentimodal.models.fusion",
    "LateFusion": "sentimodal.models.fusion",
    "EmbeddingHead": "sentimodal.models.heads",
    "SoftmaxHead": "sentimodal.models.heads",
    "LabelSpace": "sentimodal.models.label_space",
    "FeatureLinear": "sentimodal.models.linear",
    "FeatureMLP": "sentimodal.models.mlp",
    "MLPBody": "sentimodal.models.mlp",
    "PixelCNN": "sentimodal.models.pixel_cnn",
    "build_model": "sentimodal.models.registry",
    "config_from_dict": "sentimodal.models.registry",
    "get_model": "sentimodal.models.registry",
    "list_models": "sentimodal.models.registry",
    "config_for": "sentimodal.models.registry",
    "TextBiLSTM": "sentimodal.models.text_lstm",
    "glove_embedding_matrix": "sentimodal.models.text_lstm",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
