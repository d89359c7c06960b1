"""Simple baselines every grid is measured against: if a model cannot beat them, it learned little.

- ``majority``: always the most frequent train label (the floor of any classifier).
- ``vader``: VADER's compound polarity of the text with the usual thresholds (a lexicon, no
  training: what text sentiment gives for free).
- ``logreg``: logistic regression on frozen MiniLM + EfficientNet-Lite0 features, concatenated
  and standardised, C chosen on val (what a linear model gets from the same features the
  neural models read); either encoder may be None, for one modality's features alone.

Each returns the metrics dict of :meth:`SentimentModel.evaluate` per split (``val``, ``test``),
so baselines and models share one results table.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator
from sklearn.linear_model import LogisticRegression

from sentimodal.config import Config
from sentimodal.errors import UserInputError
from sentimodal.evaluation.metrics import classification_report
from sentimodal.features.folder import FeatureFolder
from sentimodal.features.store import extract_features
from sentimodal.features.text_encoders import get_text_encoder
from sentimodal.preparation.dataset import PreparedDataset

BaselineName = Literal["majority", "vader", "logreg"]
EVAL_SPLITS: tuple[str, ...] = ("val", "test")


class BaselineConfig(Config):
    """One baseline and its settings (only ``logreg`` has any)."""

    name: BaselineName
    #: VADER compound thresholds: >= positive is positive, <= negative is negative
    vader_positive: float = 0.05
    vader_negative: float = -0.05
    #: None: no image features (a text-only logistic regression)
    image_encoder: str | None = "efficientnet_lite0"
    #: the image encoder's settings (e.g. ``levels: true``), as in a RunConfig
    image_encoder_config: dict[str, Any] = Field(default_factory=dict)
    #: None: no text features (an image-only logistic regression)
    text_encoder: str | None = "minilm"
    #: inverse regularisation strengths tried; the best on val accuracy is kept
    c_values: list[float] = Field(
        default_factory=lambda: [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0], min_length=1
    )
    max_iter: int = Field(2000, ge=1)

    def encoders(self) -> dict[str, str]:
        """The stored features this baseline reads (extracted before a grid starts)."""
        if self.name != "logreg":
            return {}
        chosen = {"image": self.image_encoder, "text": self.text_encoder}
        return {kind: name for kind, name in chosen.items() if name is not None}

    @model_validator(mode="after")
    def _some_features(self) -> BaselineConfig:
        if self.name == "logreg" and self.image_encoder is None and self.text_encoder is None:
            raise ValueError("the logreg baseline needs an image_encoder, a text_encoder or both")
        return self


def _labels_of(dataset: PreparedDataset, split: str) -> np.ndarray:
    return dataset.split(split)["label"].astype(str).to_numpy()


def _report(
    dataset: PreparedDataset, y_true: np.ndarray, y_pred: np.ndarray, split: str
) -> dict[str, Any]:
    metrics = classification_report(
        y_true, y_pred, dataset.labels, y_train=_labels_of(dataset, "train")
    )
    metrics["split"] = split
    return metrics


def majority_baseline(dataset: PreparedDataset) -> dict[str, Any]:
    """Predict the most frequent train label for every post."""
    train = _labels_of(dataset, "train")
    values, counts = np.unique(train, return_counts=True)
    majority = str(values[counts.argmax()])
    out: dict[str, Any] = {}
    for split in EVAL_SPLITS:
        y_true = _labels_of(dataset, split)
        out[split] = _report(dataset, y_true, np.full(len(y_true), majority, dtype=object), split)
    out["majority_label"] = majority
    return out


def vader_labels(
    compound: np.ndarray, labels: list[str], positive: float, negative: float
) -> np.ndarray:
    """Compound polarity -> label; 2-class label sets have no neutral, so the sign decides."""
    if "neutral" in labels:
        return np.where(
            compound >= positive, "positive", np.where(compound <= negative, "negative", "neutral")
        )
    return np.where(compound >= 0, "positive", "negative")


def vader_baseline(dataset: PreparedDataset, config: BaselineConfig) -> dict[str, Any]:
    """VADER thresholds on each post's full text (no training)."""
    if not {"positive", "negative"} <= set(dataset.labels):
        raise UserInputError(
            f"the vader baseline needs positive/negative labels, this dataset has {dataset.labels}"
        )
    encoder = get_text_encoder("vader")
    out: dict[str, Any] = {}
    for split in EVAL_SPLITS:
        frame = dataset.split(split)
        compound = encoder.encode(dataset.texts(frame))[:, -1]
        predicted = vader_labels(
            compound, dataset.labels, config.vader_positive, config.vader_negative
        )
        out[split] = _report(dataset, frame["label"].astype(str).to_numpy(), predicted, split)
    return out


def _stored_features(
    dataset: PreparedDataset, config: BaselineConfig, split: str
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated image + text features of the split's posts that have both, with labels."""
    results = extract_features(
        dataset,
        image=config.image_encoder,
        text=config.text_encoder,
        image_config=config.image_encoder_config if config.image_encoder else None,
        progress=False,
    )
    sets = {kind: FeatureFolder(result.directory).read() for kind, result in results.items()}
    if "text" in sets and sets["text"].lengths is not None:
        raise UserInputError(
            f"the logreg baseline needs text feature vectors; {config.text_encoder!r} gives "
            "token ids (use minilm, glove_mean or vader)"
        )
    frame = dataset.split(split)
    have = set.intersection(*(set(features.ids) for features in sets.values()))
    ids = [i for i in frame["id"].astype(str) if i in have]
    if not ids:
        raise UserInputError(f"{dataset.root}: no {split} post has {' and '.join(sets)} features")
    # image tensors (pixels32) are flattened: a linear model on raw pixels is a baseline too
    x = np.hstack([sets[kind].select(ids).values.reshape(len(ids), -1) for kind in sets])
    labels = frame.set_index(frame["id"].astype(str))["label"].astype(str)
    return x.astype(np.float64), labels.loc[ids].to_numpy()


def logistic_regression_baseline(
    dataset: PreparedDataset, config: BaselineConfig
) -> dict[str, Any]:
    """Logistic regression on standardised frozen features; C picked on val accuracy."""
    x_train, y_train = _stored_features(dataset, config, "train")
    data = {split: _stored_features(dataset, config, split) for split in EVAL_SPLITS}
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std < 1e-6] = 1.0
    x_train = (x_train - mean) / std
    data = {split: ((x - mean) / std, y) for split, (x, y) in data.items()}
    x_val, y_val = data["val"]
    fitted = {
        c: LogisticRegression(C=c, max_iter=config.max_iter).fit(x_train, y_train)
        for c in config.c_values
    }
    tried = {c: float((model.predict(x_val) == y_val).mean()) for c, model in fitted.items()}
    chosen = max(tried, key=lambda c: tried[c])  # ties: the first listed
    model = fitted[chosen]
    out: dict[str, Any] = {
        split: _report(dataset, y, model.predict(x), split) for split, (x, y) in data.items()
    }
    out.update(
        c=chosen,
        val_accuracy_by_c={str(c): a for c, a in tried.items()},
        n_features=int(x_train.shape[1]),
    )
    return out


def run_baseline(dataset: PreparedDataset, config: BaselineConfig) -> dict[str, Any]:
    """The baseline's metrics on val and test (plus what it chose), as a JSON-ready dict."""
    for split in ("train", *EVAL_SPLITS):
        if split not in dataset.splits:
            raise UserInputError(f"{dataset.root}: baselines need a {split} split")
    if config.name == "majority":
        return majority_baseline(dataset)
    if config.name == "vader":
        return vader_baseline(dataset, config)
    return logistic_regression_baseline(dataset, config)
