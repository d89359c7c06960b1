"""``SentimentModel``: a table of posts in, a trained and shippable predictor out.

It composes the layers below: a prepared dataset (or a DataFrame turned into one), the feature
store (encoders run once, cached by id), a model from the registry, the trainer, and the
metrics. Predictions work on prepared datasets (through the feature cache) and on raw posts
(encoders run on the fly), so a saved model directory serves new data with no training code.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from pydantic import ValidationError

from sentimodal.errors import UserInputError
from sentimodal.evaluation.metrics import classification_report
from sentimodal.features.batch_work import ImageBatchWork, TextBatchWork
from sentimodal.features.engine import Row
from sentimodal.features.folder import FeatureFolder, FeatureSet
from sentimodal.features.image_encoders import get_image_encoder
from sentimodal.features.image_encoders.base import ImageEncoder
from sentimodal.features.store import ExtractionResult, extract_features
from sentimodal.features.text_encoders import get_text_encoder
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.features.text_encoders.minilm_tokens import MiniLMTokensEncoder
from sentimodal.models.base import SentimentNet
from sentimodal.models.config import ModelConfig, TextTransformerConfig
from sentimodal.models.fusion import LateFusion
from sentimodal.models.label_space import LabelSpace
from sentimodal.models.registry import build_model, config_from_dict, model_config
from sentimodal.models.text_lstm import TextBiLSTM, glove_embedding_matrix
from sentimodal.models.text_transformer import TextTransformer, backbone_architecture
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.label_set import check_trainable, soft_targets
from sentimodal.training import model_dir
from sentimodal.training.confident import fine_tune_confident
from sentimodal.training.inference import extract_embeddings, predict_outputs, predict_scores
from sentimodal.training.run_config import RunConfig
from sentimodal.training.scaler import FeatureScaler
from sentimodal.training.trainer import fit as train_model

DatasetLike = PreparedDataset | str | Path | pd.DataFrame


@dataclass
class Prediction:
    """One raw post's prediction, or the reason it could not be made."""

    id: str
    label: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.error is None:
            out.update(label=self.label, scores=self.scores)
        else:
            out["error"] = self.error
        return out


@dataclass
class _Inputs:
    """Model inputs of the examples that have every needed modality, in dataset order."""

    ids: list[str]
    data: dict[str, np.ndarray]
    #: ids left out because a needed modality has no features (no image, empty text, reject)
    missing: list[str]


class SentimentModel:
    """Multimodal sentiment classifier with a scikit-learn-like API.

    >>> model = SentimentModel(model="gated").fit("runs/mvsa")       # a prepared dataset dir
    >>> model.evaluate("runs/mvsa", split="test")["accuracy"]
    >>> model.save("models/gated"); SentimentModel.load("models/gated").predict_posts(df)

    Settings are a :class:`RunConfig` (or its fields as keyword arguments).
    """

    def __init__(self, config: RunConfig | Mapping[str, Any] | None = None, **overrides: Any):
        self.config = config
        self.overrides = overrides

    # ----------------------------------------------------------------------------- settings

    def run_config(self) -> RunConfig:
        """The validated settings (config, then keyword overrides on top)."""
        base = self.config
        data = base.to_dict() if isinstance(base, RunConfig) else dict(base or {})
        data.update(self.overrides)
        try:
            return RunConfig.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise UserInputError(f"invalid model setting {where}: {first['msg']}") from None

    # ----------------------------------------------------------------------------- training

    def fit(
        self,
        data: DatasetLike,
        *,
        text_columns: Sequence[str] = ("text",),
        image_column: str | None = "image",
        label_column: str = "label",
        work_dir: str | Path | None = None,
        train_splits: Sequence[str] = ("train",),
        progress: bool = True,
    ) -> Self:
        """Train on the dataset's ``train`` split, validating on ``val`` when it has one
        (early stopping and keeping the best epoch, as the train config says).

        ``train_splits=("train", "val")`` trains on both for the configured epochs, with no
        validation: the way to retrain a configuration chosen on val on all labelled data.
        A DataFrame is split 80/20 into train/val (stratified, seeded) and stored under
        ``work_dir`` (a temporary folder by default) so its features are cached like any
        prepared dataset's.
        """
        run = self.run_config()
        dataset = self._dataset(
            data, text_columns, image_column, label_column, work_dir, split=(0.8, 0.2)
        )
        train_splits = list(dict.fromkeys(train_splits))
        absent = [split for split in train_splits if split not in dataset.splits]
        if not train_splits or absent:
            raise UserInputError(
                f"{dataset.root}: no {', '.join(absent) or 'train'} split to fit on "
                f"(splits: {', '.join(dataset.splits)})"
            )
        check_trainable(dataset, train_splits)
        self.run_ = run
        self.labels_ = dataset.labels
        self.image_encoder_, self.text_encoder_, results = self._fit_encoders(
            run, dataset, progress
        )
        sets = _read(results)

        self.scaler_ = None
        train = self._split_inputs(dataset, sets, train_splits)
        self.scaler_ = FeatureScaler().fit(train.data)
        train.data = self.scaler_.transform(train.data)
        validate = "val" in dataset.splits and "val" not in train_splits
        val = self._split_inputs(dataset, sets, "val") if validate else None
        self.train_splits_ = train_splits
        y_train = self._label_indices(dataset, train.ids)

        self.label_space_ = (
            LabelSpace.from_source(run.label_source, self.labels_)
            if run.head == "embedding"
            else None
        )
        self.model_config_ = self._model_config(run, train.data)
        self.model_ = build_model(self.model_config_, seed=run.train.seed)
        self._init_pretrained(run.train.seed)
        if self.label_space_ is not None:
            self.model_.set_label_space(self.label_space_)
        val_pair = (val.data, self._label_indices(dataset, val.ids)) if val else None
        result = train_model(
            self.model_,
            train.data,
            y_train,
            val=val_pair,
            config=run.train,
            progress=progress,
            soft_targets=soft_targets(dataset, train.ids, run.head)
            if run.train.soft_targets
            else None,
        )
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        if run.confident is not None:
            tuned = fine_tune_confident(
                self.model_,
                train.data,
                y_train,
                val=val_pair,
                train_config=run.train,
                config=run.confident,
                progress=progress,
            )
            offset = len(self.history_)
            self.history_ += [
                {**r, "epoch": r["epoch"] + offset, "phase": "confident"}
                for r in tuned.result.history
            ]
            self.confident_kept_ = int(tuned.kept.sum())
        self.metrics_: dict[str, Any] = {}
        return self

    def _init_pretrained(self, seed: int) -> None:
        """Start text models from pretrained weights where their configs ask for it: the
        BiLSTM's token table from GloVe, the transformer from the bundled MiniLM."""
        for module in self.model_.modules():
            if isinstance(module, TextBiLSTM) and module.config.embedding_init == "glove":
                vocab = self.text_encoder_.vocab_
                module.init_embeddings(glove_embedding_matrix(sorted(vocab, key=vocab.get), seed))
            if isinstance(module, TextTransformer) and module.config.init == "pretrained":
                module.load_pretrained()

    def _fit_encoders(
        self, run: RunConfig, dataset: PreparedDataset, progress: bool
    ) -> tuple[ImageEncoder | None, TextEncoder | None, dict[str, ExtractionResult]]:
        """Extract (or find) the dataset's features and keep the encoders that made them.

        A text encoder that learns (``tokens``) is fit on the train split by the store; the
        fitted state is read back from its feature folder so predictions use the same vocab.
        """
        results = extract_features(
            dataset,
            image=run.image_encoder if run.uses_image else None,
            text=run.text_encoder if run.uses_text else None,
            image_config=run.image_encoder_config,
            text_config=run.text_encoder_config,
            batch_size=run.feature_batch_size,
            workers=run.feature_workers,
            progress=progress,
        )
        image = text = None
        if run.uses_image:
            image = get_image_encoder(run.image_encoder, **run.image_encoder_config)
        if run.uses_text:
            text = get_text_encoder(run.text_encoder, **run.text_encoder_config)
            if text.learns:
                text.load(results["text"].directory)
        return image, text, results

    def _model_config(self, run: RunConfig, data: Mapping[str, np.ndarray]) -> ModelConfig:
        head = {
            "head": run.head,
            "n_classes": len(self.labels_),
            "label_dim": self.label_space_.dim if self.label_space_ is not None else None,
        }
        options = dict(run.model_options)
        if run.model == "text":
            return model_config(**self._text_branch(data), **head, **options)
        if run.model == "image":
            return model_config(**self._image_branch(data), **head, **options)
        if run.model == "late":
            branches = {
                kind: {**_as_kind(branch(data)), **head, **options.pop(kind, {})}
                for kind, branch in (("text", self._text_branch), ("image", self._image_branch))
            }
            return model_config("late", **branches, **head, **options)
        if "text_lengths" in data:
            raise UserInputError(
                f"the {run.model} fusion reads text feature vectors; the {run.text_encoder!r} "
                f"encoder gives token ids: use minilm or glove_mean (or model=late)"
            )
        dims = {"text_dim": data["text"].shape[1], "image_dim": _flat_dim(data["image"])}
        return model_config(run.model, **dims, **head, **options)

    def _text_branch(self, data: Mapping[str, np.ndarray]) -> dict[str, Any]:
        if isinstance(self.text_encoder_, MiniLMTokensEncoder):
            architecture = backbone_architecture(TextTransformerConfig())
            return {"name": "text_transformer", "architecture": architecture}
        if "text_lengths" in data:
            return {"name": "text_lstm", "vocab_size": int(self.text_encoder_.vocab_size)}
        return {"name": "mlp", "input": "text", "input_dim": data["text"].shape[1]}

    @staticmethod
    def _image_branch(data: Mapping[str, np.ndarray]) -> dict[str, Any]:
        if data["image"].ndim == 4:
            return {"name": "pixel_cnn", "image_size": int(data["image"].shape[-1])}
        return {"name": "mlp", "input": "image", "input_dim": data["image"].shape[1]}

    # ----------------------------------------------------------------------------- features

    def _dataset(
        self,
        data: DatasetLike,
        text_columns: Sequence[str] = ("text",),
        image_column: str | None = "image",
        label_column: str | None = "label",
        work_dir: str | Path | None = None,
        split: tuple[float, ...] | None = None,
    ) -> PreparedDataset:
        if isinstance(data, PreparedDataset):
            if data.root is None:
                return data.save(self._work_dir(work_dir))
            return data
        if isinstance(data, str | Path):
            return PreparedDataset.load(data)
        if isinstance(data, pd.DataFrame):
            has_label = label_column is not None and label_column in data.columns
            return PreparedDataset.from_dataframe(
                data,
                text_columns=[c for c in text_columns if c in data.columns],
                image_column=image_column if image_column in data.columns else None,
                label_column=label_column if has_label else None,
                split=split if has_label else None,
                root=self._work_dir(work_dir),
            )
        raise UserInputError(
            f"expected a prepared dataset, its directory or a DataFrame, got {type(data).__name__}"
        )

    def _work_dir(self, work_dir: str | Path | None) -> Path:
        if work_dir is not None:
            return Path(work_dir)
        self._tmp = tempfile.TemporaryDirectory(prefix="sentimodal-")
        return Path(self._tmp.name)

    def _inputs(self, dataset: PreparedDataset, split: str | None, progress: bool) -> _Inputs:
        """Features of one split (None: all examples), for the examples that have them all."""
        run = self.run_
        results = extract_features(
            dataset,
            image=self.image_encoder_ if run.uses_image else None,
            text=self.text_encoder_ if run.uses_text else None,
            batch_size=run.feature_batch_size,
            workers=run.feature_workers,
            progress=progress,
        )
        return self._split_inputs(dataset, _read(results), split)

    def _split_inputs(
        self,
        dataset: PreparedDataset,
        sets: Mapping[str, FeatureSet],
        split: str | Sequence[str] | None,
    ) -> _Inputs:
        """The rows of one split (or several, in order) from features already read, scaled
        once a scaler is fitted."""
        splits = [split] if split is None or isinstance(split, str) else list(split)
        wanted = [
            str(i)
            for name in splits
            for i in (dataset.examples if name is None else dataset.split(name))["id"]
        ]
        split = "+".join(name or "all" for name in splits)
        have = set(wanted)
        for features in sets.values():
            have &= set(features.ids)
        ids = [i for i in wanted if i in have]
        if not ids:
            raise UserInputError(
                f"{dataset.root}: no example of split {split or 'all'!r} has every input "
                f"this model needs ({', '.join(sets)})"
            )
        data: dict[str, np.ndarray] = {}
        for kind, features in sets.items():
            data.update(_as_inputs(kind, features.select(ids)))
        if self.scaler_ is not None:
            data = self.scaler_.transform(data)
        return _Inputs(ids, data, [i for i in wanted if i not in have])

    def _label_indices(self, dataset: PreparedDataset, ids: Sequence[str]) -> np.ndarray:
        labels = dataset.examples.set_index(dataset.examples["id"].astype(str))["label"]
        index = {label: i for i, label in enumerate(self.labels_)}
        values = labels.loc[list(ids)].tolist()
        unknown = sorted({str(v) for v in values if v not in index})
        if unknown:
            raise UserInputError(
                f"{dataset.root}: labels {unknown} are not among the model's labels {self.labels_}"
            )
        return np.array([index[v] for v in values], dtype=np.int64)

    # ----------------------------------------------------------------------------- predicting

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise UserInputError("this SentimentModel is not fitted: call fit() or load() first")

    @property
    def classes_(self) -> list[str]:
        """The labels scores are given for (replaceable with ``set_labels`` for embedding heads)."""
        self._check_fitted()
        if self.label_space_ is not None:
            return list(self.label_space_.labels)
        return list(self.labels_)

    def set_labels(self, labels: Sequence[str]) -> Self:
        """Score a new label set (open vocabulary); only embedding heads can place new labels."""
        self._check_fitted()
        if self.label_space_ is None:
            raise UserInputError(
                "only models with an embedding head can take new labels; this one is softmax"
            )
        self.label_space_ = self.label_space_.with_labels([str(x).strip() for x in labels])
        self.model_.set_label_space(self.label_space_)
        return self

    def predict_proba(self, data: DatasetLike, split: str | None = None) -> np.ndarray:
        """Per-label scores (N, labels): probabilities, or cosines for embedding heads.

        Rows are the examples of ``split`` that have every input; see ``predict_frame`` for
        the ids and for those left out.
        """
        return self.predict_frame(data, split)[self.classes_].to_numpy()

    def predict(self, data: DatasetLike, split: str | None = None) -> np.ndarray:
        """The best-scoring label of each example (same rows as ``predict_proba``)."""
        return self.predict_frame(data, split)["label"].to_numpy()

    def predict_frame(
        self, data: DatasetLike, split: str | None = None, *, progress: bool = False
    ) -> pd.DataFrame:
        """A table with ``id``, ``label`` and one score column per label, for a dataset split.

        The frame's ``attrs["missing"]`` lists ids without every needed input.
        """
        self._check_fitted()
        dataset = self._dataset(data)
        inputs = self._inputs(dataset, split, progress)
        scores = predict_scores(self.model_, inputs.data, self.run_.train.eval_batch_size)
        frame = self._frame(inputs.ids, scores)
        frame.attrs["missing"] = inputs.missing
        return frame

    def vectors(
        self, data: DatasetLike, split: str | None = None, *, penultimate: bool = False
    ) -> tuple[list[str], np.ndarray]:
        """Ids and where the model places them: its raw outputs (label-space vectors for
        embedding heads, logits for softmax heads) or, with ``penultimate``, the body's
        representation (for pictures of the embedding space and for feature export)."""
        self._check_fitted()
        inputs = self._inputs(self._dataset(data), split, progress=False)
        batch = self.run_.train.eval_batch_size
        if penultimate:
            return inputs.ids, extract_embeddings(self.model_, inputs.data, batch)
        return inputs.ids, predict_outputs(self.model_, inputs.data, batch)

    def _frame(self, ids: Sequence[str], scores: np.ndarray) -> pd.DataFrame:
        classes = self.classes_
        frame = pd.DataFrame(scores, columns=classes)
        frame.insert(0, "label", [classes[i] for i in scores.argmax(axis=1)])
        frame.insert(0, "id", list(ids))
        return frame

    def predict_posts(
        self, posts: pd.DataFrame | Iterable[Mapping[str, Any]], *, batch_size: int = 32
    ) -> list[Prediction]:
        """Predict raw posts (``text`` and/or ``image`` path or URL per post, optional ``id``).

        A post that cannot be predicted (missing text, unreadable image) gets an ``error`` and
        the others go on.
        """
        self._check_fitted()
        records = posts.to_dict("records") if isinstance(posts, pd.DataFrame) else list(posts)
        out: list[Prediction] = []
        for start in range(0, len(records), batch_size):
            out += self._predict_batch(records[start : start + batch_size], start)
        return out

    def _predict_batch(self, records: list[Mapping[str, Any]], offset: int) -> list[Prediction]:
        rows: list[Row] = []
        errors: dict[int, str] = {}
        for position, record in enumerate(records):
            row_id = _cell(record.get("id")) or str(offset + position)
            text = _cell(record.get("text"))
            image = _cell(record.get("image"))
            if self.run_.uses_text and not text:
                errors[position] = "empty text"
            elif self.run_.uses_image and not image:
                errors[position] = "no image"
            rows.append({"position": position, "id": row_id, "text": text, "image": image})
        parts: dict[str, dict[int, np.ndarray]] = {}
        lengths: dict[int, int] = {}
        todo = [r for r in rows if r["position"] not in errors]
        if self.run_.uses_image and todo:
            result = ImageBatchWork(self.image_encoder_)(todo)
            errors.update({int(r["position"]): r["reason"] for r in result.rejects})
            parts["image"] = dict(zip(result.positions.tolist(), result.values, strict=True))
        if self.run_.uses_text and todo:
            result = TextBatchWork(self.text_encoder_)(todo)
            parts["text"] = dict(zip(result.positions.tolist(), result.values, strict=True))
            if result.lengths is not None:
                lengths = dict(zip(result.positions.tolist(), result.lengths.tolist(), strict=True))
        ok = [r["position"] for r in rows if r["position"] not in errors]
        predictions = {p: Prediction(id=rows[p]["id"], error=f"{errors[p]}") for p in errors}
        if ok:
            data = {kind: np.stack([values[p] for p in ok]) for kind, values in parts.items()}
            if lengths:
                data["text_lengths"] = np.array([lengths[p] for p in ok], dtype=np.int64)
            data = self.scaler_.transform(data)
            scores = predict_scores(self.model_, data, self.run_.train.eval_batch_size)
            classes = self.classes_
            for p, row_scores in zip(ok, scores, strict=True):
                predictions[p] = Prediction(
                    id=rows[p]["id"],
                    label=classes[int(row_scores.argmax())],
                    scores={c: float(s) for c, s in zip(classes, row_scores, strict=True)},
                )
        return [predictions[r["position"]] for r in rows]

    # ----------------------------------------------------------------------------- evaluating

    def evaluate(self, data: DatasetLike, split: str = "test") -> dict[str, Any]:
        """Metrics on one split: accuracy, per-class accuracy, macro/weighted F1, confusion.

        ``n_missing`` counts examples that could not be predicted (no features for a needed
        modality); they are left out of the metrics.
        """
        dataset = self._dataset(data)
        frame = self.predict_frame(dataset, split)
        truth = dataset.examples.set_index(dataset.examples["id"].astype(str))["label"]
        y_true = truth.loc[frame["id"].tolist()].astype(str).to_numpy()
        labels = list(dict.fromkeys([*self.classes_, *sorted(set(y_true))]))
        metrics = classification_report(y_true, frame["label"].to_numpy(), labels)
        metrics["split"] = split
        metrics["n_missing"] = len(frame.attrs["missing"])
        return metrics

    def score(self, data: DatasetLike, split: str = "test") -> float:
        """Accuracy on one split (scikit-learn's ``score``)."""
        return float(self.evaluate(data, split)["accuracy"])

    # ----------------------------------------------------------------------------- persistence

    def save(self, directory: str | Path) -> Path:
        """Write the model directory (config, safetensors weights, labels, vocab, history)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        encoders: dict[str, Any] = {}
        if self.image_encoder_ is not None:
            encoders["image"] = _encoder_entry(self.image_encoder_)
        if self.text_encoder_ is not None:
            encoders["text"] = _encoder_entry(self.text_encoder_)
            self.text_encoder_.save(directory)
        config = {
            **model_dir.config_header(),
            "run": self.run_.to_dict(),
            "model": self.model_config_.to_dict(),
            "labels": list(self.labels_),
            "encoders": encoders,
            "best_epoch": self.best_epoch_,
            "train_splits": list(self.train_splits_),
        }
        model_dir.save_weights(self.model_, directory)
        self.scaler_.save(directory)
        space = self.label_space_.to_dict() if self.label_space_ is not None else None
        model_dir.write_json(
            directory / model_dir.LABELS_FILE, {"labels": list(self.labels_), "space": space}
        )
        model_dir.write_json(directory / model_dir.HISTORY_FILE, self.history_)
        if self.metrics_:
            model_dir.write_json(directory / model_dir.METRICS_FILE, self.metrics_)
        model_dir.write_json(directory / model_dir.CONFIG_FILE, config)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> SentimentModel:
        """Read a model directory; refuses foreign, corrupted or incompatible ones."""
        directory = Path(directory)
        config = model_dir.read_config(directory)
        try:
            run = RunConfig.model_validate(config["run"])
        except ValidationError as exc:
            raise UserInputError(f"{directory}: bad run config: {exc.errors()[0]['msg']}") from None
        self = cls(run)
        self.run_ = run
        self.labels_ = list(config["labels"])
        self.model_config_ = config_from_dict(config["model"])
        self.model_: SentimentNet = build_model(self.model_config_)
        labels = model_dir.read_json(directory / model_dir.LABELS_FILE)
        space = labels.get("space") if isinstance(labels, dict) else None
        self.label_space_ = LabelSpace.from_dict(space) if space else None
        if self.label_space_ is not None:
            self.model_.set_label_space(self.label_space_)
        model_dir.load_weights(self.model_, directory)
        self.model_.eval()
        self.scaler_ = FeatureScaler.load(directory)
        self.image_encoder_, self.text_encoder_ = _load_encoders(config["encoders"], directory)
        history = directory / model_dir.HISTORY_FILE
        self.history_ = model_dir.read_json(history) if history.is_file() else []
        metrics = directory / model_dir.METRICS_FILE
        self.metrics_ = model_dir.read_json(metrics) if metrics.is_file() else {}
        self.best_epoch_ = config.get("best_epoch")
        self.train_splits_ = list(config.get("train_splits", ["train"]))
        return self

    def branch(self, modality: str) -> SentimentModel:
        """The text or image half of a late fusion as a model of its own, sharing its weights:
        what each modality predicts alone, next to what the fusion predicts."""
        self._check_fitted()
        if not isinstance(self.model_, LateFusion) or modality not in ("text", "image"):
            raise UserInputError(
                f"only late fusions have text and image branches (this is {self.run_.model!r}, "
                f"asked for {modality!r})"
            )
        view = copy.copy(self)
        view.run_ = self.run_.model_copy(update={"model": modality})
        view.model_ = getattr(self.model_, modality)
        view.model_config_ = view.model_.config
        if modality == "text":
            view.image_encoder_ = None
        else:
            view.text_encoder_ = None
        return view

    def gate_stats(self) -> dict[str, Any] | None:
        """How much of each modality the gated fusion lets through (None for other models)."""
        self._check_fitted()
        stats = getattr(self.model_, "gate_stats", None)
        return stats() if callable(stats) else None


def _read(results: Mapping[str, ExtractionResult]) -> dict[str, FeatureSet]:
    return {kind: FeatureFolder(r.directory).read() for kind, r in results.items()}


def _as_inputs(kind: str, features: FeatureSet) -> dict[str, np.ndarray]:
    data = {kind: features.values}
    if features.lengths is not None:
        data[f"{kind}_lengths"] = features.lengths
    return data


def _as_kind(branch: dict[str, Any]) -> dict[str, Any]:
    """A branch of a late fusion names its model kind as nested configs do (``kind``)."""
    return {"kind" if key == "name" else key: value for key, value in branch.items()}


def _flat_dim(values: np.ndarray) -> int:
    return int(np.prod(values.shape[1:]))


def _cell(value: Any) -> str:
    """A table cell as stripped text; missing values (None, NaN) are empty."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def _encoder_entry(encoder: ImageEncoder | TextEncoder) -> dict[str, Any]:
    return {"name": encoder.name, "config": encoder.config, "identity": encoder.identity}


def _load_encoders(
    entries: Mapping[str, Any], directory: Path
) -> tuple[ImageEncoder | None, TextEncoder | None]:
    """Rebuild the encoders and check they are the very ones the model was trained on."""
    image = text = None
    if "image" in entries:
        image = get_image_encoder(entries["image"]["name"], **entries["image"]["config"])
    if "text" in entries:
        text = get_text_encoder(entries["text"]["name"], **entries["text"]["config"])
        if text.learns:
            text.load(directory)
    for kind, encoder in (("image", image), ("text", text)):
        if encoder is not None and encoder.identity != entries[kind]["identity"]:
            raise UserInputError(
                f"{directory}: the {kind} encoder {encoder.name!r} here has weights "
                f"{encoder.identity}, but the model was trained on {entries[kind]['identity']}"
            )
    return image, text
