"""Typed settings of every model kind.

One :class:`~sentimodal.config.Config` subclass per kind, each with a ``kind`` tag, so that a
model directory's ``config.json`` rebuilds the exact architecture with
:func:`sentimodal.models.registry.build_model` (each network class names its config with
``register_network``). Head settings live on every config because any model can end in
either head (softmax or label-space embedding).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from sentimodal.config import Config

HeadKind = Literal["softmax", "embedding"]
GLOVE_SOURCE = "glove_6b_50d"
MINILM_SOURCE = "minilm"
#: where an embedding head's label vectors come from (any label word or phrase can be placed)
LabelSource = Literal["glove_6b_50d", "minilm"]


class ModelConfig(Config):
    """Settings shared by all models: which head, and its output size."""

    kind: str
    head: HeadKind = "softmax"
    #: number of classes of the softmax head (the embedding head gets it from its label space)
    n_classes: int = Field(3, ge=2)
    #: dimension of the label-vector space; required by the embedding head
    label_dim: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _head_needs_label_dim(self) -> Self:
        if self.head == "embedding" and self.label_dim is None:
            raise ValueError("the embedding head needs label_dim (the label vectors' dimension)")
        return self


class MLPConfig(ModelConfig):
    """MLP over one modality's precomputed feature vectors (CNN features, MiniLM, GloVe mean)."""

    kind: Literal["mlp"] = "mlp"
    input: Literal["text", "image"] = "text"
    input_dim: int = Field(ge=1)
    hidden: list[Annotated[int, Field(ge=1)]] = [512]
    #: one rate for every hidden layer, or one per hidden layer
    dropout: float | list[float] = 0.5

    @model_validator(mode="after")
    def _dropout_per_layer(self) -> Self:
        if isinstance(self.dropout, list) and len(self.dropout) != len(self.hidden):
            raise ValueError(
                f"dropout lists one rate per hidden layer: {len(self.hidden)} expected, "
                f"{len(self.dropout)} given"
            )
        return self


class LinearConfig(ModelConfig):
    """A linear softmax layer over one modality's standardised feature vectors, fitted to
    convergence (L-BFGS) with the L2 strength chosen by cross-validation on the training data:
    regularised logistic regression as a model kind (see ``models/logistic.py``). With an
    embedding head or soft targets it trains like any other model (gradient steps)."""

    kind: Literal["linear"] = "linear"
    input: Literal["text", "image"] = "image"
    input_dim: int = Field(ge=1)
    #: inverse L2 strengths tried (scikit-learn's C: larger is weaker): the logistic-regression
    #: baseline's grid (0.001 ... 1) and the half-decades between; a grid reaching down to 1e-4
    #: lost to the baseline on held-out folds (docs/results/image-only.md)
    c_values: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0], min_length=1
    )
    #: inner folds of the training data that choose C (one C given: no search)
    cv_folds: int = Field(5, ge=2)
    #: what the inner folds compare: mean held-out log-loss or accuracy
    select: Literal["log_loss", "accuracy"] = "accuracy"
    #: the strongest penalty within one standard error of the best CV score (the
    #: one-standard-error rule), rather than the best score itself
    one_standard_error: bool = True
    max_iter: int = Field(500, ge=1)


class TextLSTMConfig(ModelConfig):
    """The study's end-to-end text model over token ids: embedding, BiLSTM, head.

    ``embedding_init="glove"`` means the embedding table is initialised from GloVe 6B 50-d, so
    ``embedding_dim`` must then be 50: we keep the pretrained vectors as the (fine-tuned) table
    rather than adding a projection to 200, which would only be a rank-50 200-d table.

    ``sequence_mode`` says how padding is handled. ``masked`` (default) runs each direction over
    the (trimmed) batch and reads its state at each sequence's last real token, the backward
    direction reading each sequence reversed within its length: padding never enters a state,
    and it uses torch's fused LSTM kernels. ``packed`` uses ``pack_padded_sequence`` and gives
    the same outputs, but is about 1.8x slower on CPU. ``padded`` runs over the padding as Keras
    does without masking: only for comparisons, since its output depends on the pad count.
    """

    kind: Literal["text_lstm"] = "text_lstm"
    vocab_size: int = Field(ge=2)
    embedding_dim: int = Field(200, ge=1)
    embedding_init: Literal["random", "glove"] = "random"
    lstm_dim: int = Field(300, ge=1)
    bidirectional: bool = True
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    sequence_mode: Literal["masked", "packed", "padded"] = "masked"

    @model_validator(mode="after")
    def _glove_dim(self) -> Self:
        if self.embedding_init == "glove" and self.embedding_dim != 50:
            raise ValueError("embedding_init='glove' uses GloVe 6B 50-d: set embedding_dim=50")
        return self


class TextTransformerConfig(ModelConfig):
    """A pretrained transformer over its own token ids, fine-tuned with its head.

    ``backbone`` names the pretrained start: the bundled ``all-MiniLM-L6-v2`` (the default,
    over ``minilm_tokens``) or ``all-mpnet-base-v2``, or ``hf:<model id or folder>`` (over the
    ``hf:`` encoder's ids). ``architecture`` is the transformer's own config (its config.json
    keys, ``model_type`` included); empty means the backbone's, and a trained model stores it in
    full so its directory rebuilds the network without the weights' source.
    ``init="pretrained"`` starts from the backbone's weights (the estimator loads them before
    training); ``num_layers`` keeps only the first layers, a speed knob; ``frozen_layers``
    keeps the embeddings and the bottom layers at their pretrained weights. The representation
    is the mean of the token states (``pooling="mean"``, as sentence models were trained) or
    the first token's. ``id_shift`` is what the encoder added to the tokenizer's ids so that 0
    means padding (1 for tokenizers that pad with another id, as MPNet's).
    """

    kind: Literal["text_transformer"] = "text_transformer"
    backbone: str = Field("all-MiniLM-L6-v2", min_length=1)
    architecture: dict[str, Any] = Field(default_factory=dict)
    init: Literal["pretrained", "random"] = "pretrained"
    num_layers: int | None = Field(None, ge=1)
    frozen_layers: int = Field(0, ge=0)
    id_shift: int = Field(0, ge=0, le=1)
    pooling: Literal["mean", "cls"] = "mean"
    dropout: float = Field(0.1, ge=0.0, lt=1.0)


class TextCrossConfig(TextTransformerConfig):
    """The fine-tuned transformer whose token states also attend over an image's regions.

    After the transformer, each token reads a grid of image vectors (``image_positions`` x
    ``image_dim``, e.g. EfficientNet-Lite0's 7 x 7 map) through one multi-head cross-attention
    layer, added to its state through a learned gate that starts closed, so training starts
    from the text model and opens the gate only as far as the image helps.
    """

    kind: Literal["text_cross"] = "text_cross"  # type: ignore[assignment]
    image_dim: int = Field(ge=1)
    image_positions: int = Field(ge=1)
    attention_heads: int = Field(6, ge=1)
    #: dropout on the attention weights and on the projected region vectors: 49 wide regions
    #: per post are easy to memorise from a few thousand posts (0.3 for both beat 0.1 / 0 on
    #: all three figures by 5-fold CV on MVSA-Single, docs/results/fusion-cv.md)
    attention_dropout: float = Field(0.3, ge=0.0, lt=1.0)
    region_dropout: float = Field(0.3, ge=0.0, lt=1.0)


class TextMPNetConfig(TextTransformerConfig):
    """all-mpnet-base-v2 over its own ids plus one (``mpnet_tokens``), only its top layers
    fine-tuned: the bottom ``frozen_layers`` of its 12 layers (and the embeddings) keep their
    pretrained weights, and during training their output is computed once per post and reused
    every epoch, so an epoch costs the top ``12 - frozen_layers`` layers only. The same network
    as :class:`TextTransformerConfig`, under the kind its saved models carry."""

    kind: Literal["text_mpnet"] = "text_mpnet"  # type: ignore[assignment]
    backbone: str = "all-mpnet-base-v2"
    frozen_layers: int = Field(11, ge=0)
    id_shift: int = Field(1, ge=0, le=1)


class PixelCNNConfig(ModelConfig):
    """The study's small CNN over 32x32 pixels: two conv / max-pool / batch-norm stages, dense."""

    kind: Literal["pixel_cnn"] = "pixel_cnn"
    channels: tuple[int, int] = (96, 256)
    kernel_size: int = Field(3, ge=1)
    image_size: int = Field(32, ge=4)
    hidden: list[Annotated[int, Field(ge=1)]] = [256]
    dropout: float = Field(0.5, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _odd_kernel(self) -> Self:
        if self.kernel_size % 2 == 0:
            raise ValueError("kernel_size must be odd, so that convolutions keep the image size")
        return self


class ConcatFusionConfig(ModelConfig):
    """Early fusion: text and image feature vectors concatenated, then the head."""

    kind: Literal["concat"] = "concat"
    text_dim: int = Field(ge=1)
    image_dim: int = Field(ge=1)
    #: optional hidden layers between the concatenation and the head ([] = one linear layer)
    hidden: list[Annotated[int, Field(ge=1)]] = []
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    #: in training, hide each modality of a post with this probability (never both), so the
    #: model learns a "missing" input for it; 0: a missing modality reads as its mean features
    modality_dropout: float = Field(0.0, ge=0.0, lt=0.5)


class GatedFusionConfig(ModelConfig):
    """Gated fusion: trainable elementwise gates on text and (compressed) image features.

    ``gl1`` gates are free parameters (initialised to 1); ``gl2`` gates are the sigmoid of a
    parameter, so they stay in [0, 1] (initialised to 0.5).
    """

    kind: Literal["gated"] = "gated"
    text_dim: int = Field(ge=1)
    image_dim: int = Field(ge=1)
    gate: Literal["gl1", "gl2"] = "gl2"
    #: image features first go through dense(compress_image) + ReLU; None keeps them as they are
    compress_image: int | None = Field(600, ge=1)
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    #: as for concatenation: train a "missing" input per modality by hiding it at this rate
    modality_dropout: float = Field(0.0, ge=0.0, lt=0.5)
