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
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from pydantic import ValidationError
from sklearn.base import BaseEstimator, ClassifierMixin

from sentimodal.config import validation_message
from sentimodal.errors import UserInputError
from sentimodal.evaluation.metrics import classification_report
from sentimodal.features.engine import LocalEngine
from sentimodal.features.folder import FeatureFolder, FeatureSet
from sentimodal.features.image_encoders import get_image_encoder
from sentimodal.features.image_encoders.base import ImageEncoder
from sentimodal.features.model_inputs import model_inputs
from sentimodal.features.store import ExtractionResult, extract_features
from sentimodal.features.text_encoders import get_text_encoder, saved_text_encoder
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.inference.posts import PostBatchWork, Prediction, post_rows, predict_rows
from sentimodal.models.base import PretrainedStart, SentimentNet
from sentimodal.models.config import ModelConfig
from sentimodal.models.forward import (
    extract_embeddings,
    predict_outputs,
    predict_scores,
)
from sentimodal.models.label_space import LabelSpace
from sentimodal.models.recipes import ModalityInput, get_recipe
from sentimodal.models.registry import build_model, config_from_dict
from sentimodal.net import FetchPolicy
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.dataset_labels import check_trainable, soft_targets
from sentimodal.progress import note
from sentimodal.training import model_dir
from sentimodal.training.confident import fine_tune_confident
from sentimodal.training.run_config import RunConfig, check_run
from sentimodal.training.scaler import FeatureScaler
from sentimodal.training.train_config import given_settings
from sentimodal.training.trainer import fit as train_model

DatasetLike = PreparedDataset | str | Path | pd.DataFrame
#: scikit-learn style inputs: texts (or image paths) one per post
PostsLike = Sequence[str] | np.ndarray | pd.Series
#: the split name meaning every example of a dataset
ALL = "all"
#: why a raw post lacks a modality
_NOTHING = {"text": "empty text", "image": "no image"}


@dataclass
class _Inputs:
    """Model inputs of the examples that have every needed modality, in dataset order."""

    ids: list[str]
    data: dict[str, np.ndarray]
    #: every asked-for id, in order (``ids`` and the missing ones)
    wanted: list[str]
    #: id -> why it has no input: a needed modality has no features (no image, empty text,
    #: an image rejected at extraction)
    missing: dict[str, str]
    #: id -> the modalities its prediction reads ("text+image", or the one a fusion fell
    #: back to)
    modalities: dict[str, str]


class SentimentModel(ClassifierMixin, BaseEstimator):
    """Multimodal sentiment classifier, a scikit-learn estimator.

    >>> model = SentimentModel(model="gated").fit("runs/mvsa")       # a prepared dataset dir
    >>> model.evaluate("runs/mvsa", split="test")["accuracy"]
    >>> model.save("models/gated"); SentimentModel.load("models/gated").predict_posts(df)
    >>> SentimentModel(model="text").fit(df_posts, labels).predict(["i love it"])

    Settings are a :class:`RunConfig` (or its fields as keyword arguments). They are the
    estimator's parameters: ``get_params``/``set_params`` (nested as ``train__epochs``), so
    ``sklearn.base.clone``, ``GridSearchCV`` and pipelines work.
    """

    def __init__(self, config: RunConfig | Mapping[str, Any] | None = None, **overrides: Any):
        self.config = config
        self.overrides = overrides

    # ----------------------------------------------------------------------------- parameters

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The settings given to the constructor: ``config`` and each keyword override."""
        return {"config": self.config, **self.overrides}

    def set_params(self, **params: Any) -> Self:
        """Change settings; ``train__epochs=5`` sets one field of a nested group."""
        for key, value in params.items():
            if key == "config":
                self.config = value
                continue
            group, _, field_name = key.partition("__")
            if field_name:
                current = self.overrides.get(group)
                nested = current.to_dict() if hasattr(current, "to_dict") else dict(current or {})
                value = {**nested, field_name: value}
            self.overrides = {**self.overrides, group: value}
        return self

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.get_params().items() if v is not None}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    # ----------------------------------------------------------------------------- settings

    def run_config(self) -> RunConfig:
        """The validated settings the user gave (config, then keyword overrides on top); what
        the recipe derives from them is filled in by ``fit`` (``run_``, see
        :meth:`RunConfig.resolved`)."""
        base = self.config
        data = base.to_dict() if isinstance(base, RunConfig) else dict(base or {})
        for key, value in self.overrides.items():
            # training settings given on top of a config change those fields, not the group
            if key == "train" and isinstance(data.get(key), Mapping):
                value = {**data[key], **given_settings(value)}
            data[key] = value
        try:
            return RunConfig.model_validate(data)
        except ValidationError as exc:
            raise UserInputError(validation_message(exc, "invalid model setting ")) from None

    # ----------------------------------------------------------------------------- training

    def fit(
        self,
        data: DatasetLike | PostsLike,
        y: Sequence[Any] | None = None,
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
        prepared dataset's. As in scikit-learn, the labels may come apart as ``y`` (then
        ``data`` is a DataFrame of posts, or a list of texts for a text model).
        """
        given = self.run_config()
        run = given.resolved()
        check_run(run)
        data = self._posts_table(data, y, label_column, run)
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
        self.given_ = given
        self.labels_ = dataset.labels
        self.image_encoder_, self.text_encoder_, results = self._fit_encoders(
            run, dataset, progress
        )
        sets = _read(results)

        train = self._split_inputs(dataset, sets, train_splits, scaler=None)
        self.scaler_ = FeatureScaler().fit(train.data)
        train.data = self.scaler_.transform(train.data)
        validate = "val" in dataset.splits and "val" not in train_splits
        val = self._split_inputs(dataset, sets, "val", self.scaler_) if validate else None
        self.train_splits_ = train_splits
        y_train = self._label_indices(dataset, train.ids)

        self.label_space_ = (
            LabelSpace.from_source(run.label_source, self.labels_)
            if run.head == "embedding"
            else None
        )
        self.model_config_ = self._model_config(run)
        self.model_ = build_model(self.model_config_, seed=run.train.seed)
        vocabulary = self.text_encoder_.vocabulary() if self.text_encoder_ is not None else None
        self.model_.start_pretrained(PretrainedStart(run.train.seed, vocabulary))
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
        if val_pair is not None:
            self.model_.fit_after_training(*val_pair, run.train.eval_batch_size)
        self.model_.end_training()
        self.metrics_: dict[str, Any] = {}
        checked = (val.data, "val") if val is not None else (train.data, "train")
        self.warnings_ = self._collapse_warnings(*checked)
        if progress:
            for warning in self.warnings_:
                note(("warning: ", "bold yellow"), warning)
        return self

    def _collapse_warnings(self, data: Mapping[str, np.ndarray], split: str) -> list[str]:
        """A model that predicts one class for everything learned nothing but the majority:
        say so, rather than let its accuracy pass for skill."""
        predicted = self._scores(data, len(next(iter(data.values())))).argmax(axis=1)
        if len(np.unique(predicted)) > 1 or len(self.labels_) < 2:
            return []
        label = self.classes_[int(predicted[0])]
        return [
            f"the model predicts {label!r} for every {split} post: it learned only the "
            f"majority class (train longer, e.g. more epochs or less patience for early "
            f"stopping, or use class_weight='balanced')"
        ]

    def _fit_encoders(
        self, run: RunConfig, dataset: PreparedDataset, progress: bool
    ) -> tuple[ImageEncoder | None, TextEncoder | None, dict[str, ExtractionResult]]:
        """Extract (or find) the dataset's features and keep the encoders that made them.

        A text encoder that learns (``tokens``) is fit on the train split by the store; the
        fitted state is read back from its feature folder so predictions use the same vocab.
        """
        results = extract_run_features(run, dataset, progress=progress)
        image = text = None
        if run.uses_image:
            image = get_image_encoder(run.image_encoder, **run.image_encoder_config)
        if run.uses_text:
            text = get_text_encoder(run.text_encoder, **run.text_encoder_config)
            if text.learns:
                text.load(results["text"].directory)
        return image, text, results

    def _model_config(self, run: RunConfig) -> ModelConfig:
        """The network's config from the run's recipe and what the fitted encoders give."""
        inputs = {}
        if self.text_encoder_ is not None:
            inputs["text"] = ModalityInput.of_text(self.text_encoder_)
        if self.image_encoder_ is not None:
            inputs["image"] = ModalityInput.of_image(self.image_encoder_)
        head = {
            "head": run.head,
            "n_classes": len(self.labels_),
            "label_dim": self.label_space_.dim if self.label_space_ is not None else None,
        }
        encoders = {"text": str(run.text_encoder), "image": run.image_encoder}
        return get_recipe(run.model).model_config(inputs, head, run.model_options, encoders)

    # ----------------------------------------------------------------------------- features

    @staticmethod
    def _posts_table(
        data: DatasetLike | PostsLike, y: Sequence[Any] | None, label_column: str, run: RunConfig
    ) -> DatasetLike:
        """scikit-learn's (X, y): a DataFrame or a list of texts (image paths for an image
        model), with the labels as a column; a dataset given as such is kept."""
        if isinstance(data, PreparedDataset | str | Path) and y is None:
            return data
        if isinstance(data, pd.DataFrame):
            table = data.copy()
        elif isinstance(data, list | tuple | np.ndarray | pd.Series):
            if run.uses_text and run.uses_image:
                raise UserInputError(
                    f"the {run.model} model reads texts and images: give a DataFrame with "
                    "'text' and 'image' columns, not a list"
                )
            table = pd.DataFrame({"text" if run.uses_text else "image": list(data)})
        else:
            raise UserInputError(
                "expected a prepared dataset, its directory, a DataFrame or a list of posts, "
                f"got {type(data).__name__}"
            )
        if y is not None:
            if len(y) != len(table):
                raise UserInputError(f"{len(table)} posts but {len(y)} labels")
            table[label_column] = [str(label) for label in y]
        return table

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
        """Features of one split (None or "all": every example), for those that have them all."""
        run = self.run_
        results = extract_features(
            dataset,
            image=self.image_encoder_ if run.uses_image else None,
            text=self.text_encoder_ if run.uses_text else None,
            batch_size=run.feature_batch_size,
            workers=run.feature_workers,
            progress=progress,
        )
        return self._split_inputs(
            dataset, _read(results), split, self.scaler_, require=False, partial=True
        )

    @staticmethod
    def _split_inputs(
        dataset: PreparedDataset,
        sets: Mapping[str, FeatureSet],
        split: str | Sequence[str] | None,
        scaler: FeatureScaler | None,
        *,
        require: bool = True,
        partial: bool = False,
    ) -> _Inputs:
        """The rows of one split (or several, in order) from features already read, scaled by
        ``scaler`` when given. With ``require``, a split where no example has every input is
        an error (nothing to train or validate on). With ``partial`` (prediction), a fusion
        also takes the rows that have one of its modalities: it falls back to that one."""
        splits = [split] if split is None or isinstance(split, str) else list(split)
        wanted = [
            str(i)
            for name in splits
            for i in (dataset.examples if name in (None, ALL) else dataset.split(name))["id"]
        ]
        known = {kind: set(features.ids) for kind, features in sets.items()}
        # a fusion predicting falls back to one modality; training needs them all
        enough = len(sets) - 1 if partial and len(sets) > 1 else 0
        missing = {
            i: "no " + " and no ".join(f"{kind} input" for kind in lacking)
            for i in wanted
            if len(lacking := [kind for kind, have in known.items() if i not in have]) > enough
        }
        ids = [i for i in wanted if i not in missing]
        if require and not ids:
            name = "+".join(name or ALL for name in splits)
            raise UserInputError(
                f"{dataset.root}: no example of split {name!r} has every input "
                f"this model needs ({', '.join(sets)})"
            )
        parts = {
            kind: (features.ids, features.values, features.lengths)
            for kind, features in sets.items()
        }
        order = [kind for kind in ("text", "image") if kind in sets]
        modalities = {i: "+".join(kind for kind in order if i in known[kind]) for i in ids}
        return _Inputs(ids, model_inputs(parts, ids, scaler), wanted, missing, modalities)

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

    def predict_proba(self, data: DatasetLike | PostsLike, split: str | None = None) -> np.ndarray:
        """Per-label scores (N, labels): probabilities, or cosines for embedding heads.

        One row per example of ``split`` (None or "all": every example), in order; an example
        the model cannot read (a needed modality has no input) gets a row of NaN.
        """
        return self.predict_frame(data, split)[self.classes_].to_numpy(dtype=float)

    def predict(self, data: DatasetLike | PostsLike, split: str | None = None) -> np.ndarray:
        """The best-scoring label of each example, one per row as in ``predict_proba``; None
        where the model cannot read the example (``predict_frame`` says why)."""
        return self.predict_frame(data, split)["label"].to_numpy()

    def predict_frame(
        self, data: DatasetLike | PostsLike, split: str | None = None, *, progress: bool = False
    ) -> pd.DataFrame:
        """A table with ``id``, ``label``, one score column per label and ``error``: one row
        per example of ``split`` (None or "all": every example), in dataset order.

        ``error`` is None for predicted rows; for an example without every needed input it
        says which is missing, and its label is None and its scores NaN.
        """
        self._check_fitted()
        dataset = self._dataset(self._posts_table(data, None, "label", self.run_))
        inputs = self._inputs(dataset, split, progress)
        scores = self._scores(inputs.data, len(inputs.ids))
        predicted = self._frame(inputs.ids, scores).set_index("id")
        frame = predicted.reindex(inputs.wanted)
        frame["label"] = frame["label"].astype(object).where(frame["label"].notna(), None)
        frame["modalities"] = [inputs.modalities.get(i) for i in inputs.wanted]
        frame["error"] = [inputs.missing.get(i) for i in inputs.wanted]
        return frame.reset_index(names="id")

    def _scores(self, data: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        if n == 0:
            return np.zeros((0, len(self.classes_)), dtype=np.float32)
        return predict_scores(self.model_, data, self.run_.train.eval_batch_size)

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
        self,
        posts: pd.DataFrame | Iterable[Mapping[str, Any]],
        *,
        batch_size: int = 32,
        allow_private_addresses: bool = False,
        workers: int | None = None,
    ) -> list[Prediction]:
        """Predict raw posts (``text`` and/or ``image`` path or URL per post, optional ``id``).

        A post that cannot be predicted (missing text, unreadable image) gets an ``error`` and
        the others go on; a fusion reads a post that lacks one modality by the other, and
        every prediction says which it read. Batches run in ``workers`` processes like
        feature extraction (default: the run's ``feature_workers``). Image URLs may reach
        non-public addresses only with ``allow_private_addresses`` (see :mod:`sentimodal.net`).
        """
        self._check_fitted()
        records = posts.to_dict("records") if isinstance(posts, pd.DataFrame) else posts
        network = FetchPolicy(allow_private=allow_private_addresses)
        work = self.post_work(network)
        engine = LocalEngine(self.run_.feature_workers if workers is None else workers)
        return predict_rows(work, post_rows(records), batch_size=batch_size, engine=engine)

    def post_work(self, network: FetchPolicy | None = None) -> PostBatchWork:
        """The per-batch work of predicting raw posts with this model (its encoders, scaler,
        network and labels): what ``predict_posts``, table streaming and the server run.
        Image URLs are fetched under ``network``."""
        self._check_fitted()
        embedding = self.label_space_ is not None
        return PostBatchWork(
            image_encoder=self.image_encoder_ if self.run_.uses_image else None,
            text_encoder=self.text_encoder_ if self.run_.uses_text else None,
            scaler=self.scaler_,
            score=partial(predict_scores, self.model_, batch_size=self.run_.train.eval_batch_size),
            classes=self.classes_,
            network=network,
            scores_are=(
                "cosine similarities to each label's vector (not probabilities)"
                if embedding
                else "class probabilities"
            ),
        )

    # ----------------------------------------------------------------------------- evaluating

    def evaluate(
        self,
        data: DatasetLike | PostsLike,
        split: str | None = None,
        *,
        y: Sequence[Any] | None = None,
    ) -> dict[str, Any]:
        """Metrics on one split: accuracy, per-class accuracy, macro/weighted F1, confusion.

        ``split`` None means the test split of a prepared dataset that has one, and every
        example otherwise (a DataFrame); "all" is every example. ``n_missing`` counts examples
        that could not be predicted (no input for a needed modality); they are left out of the
        metrics. The labels may come apart as ``y``, as in ``fit``.
        """
        self._check_fitted()
        dataset = self._dataset(self._posts_table(data, y, "label", self.run_))
        if split is None:
            split = "test" if "test" in dataset.splits else ALL
        frame = self.predict_frame(dataset, split)
        predicted = frame[frame["error"].isna()]
        truth = dataset.examples.set_index(dataset.examples["id"].astype(str))["label"]
        y_true = truth.loc[predicted["id"].tolist()].astype(str).to_numpy()
        if len(y_true) == 0:
            raise UserInputError(
                f"{dataset.root}: no example of split {split!r} has every input this model "
                f"needs ({', '.join(self._modalities())})"
            )
        labels = list(dict.fromkeys([*self.classes_, *sorted(set(y_true))]))
        y_train = [
            label
            for split in self.train_splits_
            if split in dataset.splits
            for label in dataset.split(split)["label"].astype(str)
        ]
        metrics = classification_report(
            y_true, predicted["label"].to_numpy(), labels, y_train=y_train or None
        )
        metrics["split"] = split
        metrics["n_missing"] = int(len(frame) - len(predicted))
        return metrics

    def evaluate_splits(
        self, data: DatasetLike, splits: Sequence[str] = ("val", "test")
    ) -> dict[str, dict[str, Any]]:
        """``evaluate`` on each of ``splits`` the dataset has, except those trained on (a
        model fitted on train + val is evaluated on test only)."""
        self._check_fitted()
        dataset = self._dataset(data)
        return {
            split: self.evaluate(dataset, split)
            for split in splits
            if split in dataset.splits and split not in self.train_splits_
        }

    def score(
        self,
        data: DatasetLike | PostsLike,
        y: Sequence[Any] | None = None,
        split: str | None = None,
    ) -> float:
        """Accuracy, scikit-learn's ``score(X, y)``; ``split`` as in ``evaluate``."""
        return float(self.evaluate(data, split, y=y)["accuracy"])

    def _modalities(self) -> list[str]:
        return [m for m, e in (("text", self.text_encoder_), ("image", self.image_encoder_)) if e]

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
            "given": self.given_.to_dict(),
            "model": self.model_config_.to_dict(),
            "labels": list(self.labels_),
            "encoders": encoders,
            "best_epoch": self.best_epoch_,
            "warnings": list(self.warnings_),
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
        self.run_.save(directory / model_dir.RUN_FILE)
        model_dir.write_json(directory / model_dir.CONFIG_FILE, config)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> SentimentModel:
        """Read a model directory; refuses foreign, corrupted or incompatible ones."""
        directory = Path(directory)
        config = model_dir.read_config(directory)
        try:
            run = RunConfig.model_validate(config["run"])
            # models saved before the two were kept apart recorded the resolved settings only
            given = RunConfig.model_validate(config.get("given", config["run"]))
        except ValidationError as exc:
            raise UserInputError(validation_message(exc, f"{directory}: bad run config ")) from None
        self = cls(given)
        self.run_, self.given_ = run, given
        self.labels_ = list(config["labels"])
        self.model_config_ = config_from_dict(config["model"])
        space = model_dir.read_labels(directory, self.labels_)
        self.label_space_ = LabelSpace.from_dict(space) if space else None

        def build() -> SentimentNet:
            net = build_model(self.model_config_)
            if self.label_space_ is not None:
                net.set_label_space(self.label_space_)
            return net

        # shapes checked against the weights file before anything is allocated
        self.model_: SentimentNet = model_dir.build_checked(build, directory)
        model_dir.load_weights(self.model_, directory)
        self.model_.eval()
        self.scaler_ = FeatureScaler.load(directory)
        self.image_encoder_, self.text_encoder_ = _load_encoders(config["encoders"], directory)
        history = directory / model_dir.HISTORY_FILE
        self.history_ = model_dir.read_json(history) if history.is_file() else []
        metrics = directory / model_dir.METRICS_FILE
        self.metrics_ = model_dir.read_json(metrics) if metrics.is_file() else {}
        self.best_epoch_ = config.get("best_epoch")
        self.warnings_ = list(config.get("warnings", []))
        self.train_splits_ = list(config.get("train_splits", ["train"]))
        return self

    def branch(self, modality: str) -> SentimentModel:
        """The text or image half of a late fusion as a model of its own, sharing its weights:
        what each modality predicts alone, next to what the fusion predicts."""
        self._check_fitted()
        branches = self.model_.branches()
        if modality not in branches:
            raise UserInputError(
                f"the {self.run_.model!r} model has no {modality!r} branch"
                + (f" (it has: {', '.join(branches)})" if branches else "")
            )
        view = copy.copy(self)
        view.run_ = self.run_.model_copy(update={"model": modality})
        view.model_ = branches[modality]
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


def extract_run_features(
    run: RunConfig, dataset: PreparedDataset, *, progress: bool = True
) -> dict[str, ExtractionResult]:
    """Extract (or find in the cache) the features a run reads, with its encoders, their
    settings and its batch size and workers: what ``fit`` trains from."""
    return extract_features(
        dataset,
        image=run.image_encoder if run.uses_image else None,
        text=run.text_encoder if run.uses_text else None,
        image_config=run.image_encoder_config,
        text_config=run.text_encoder_config,
        batch_size=run.feature_batch_size,
        workers=run.feature_workers,
        progress=progress,
    )


def _read(results: Mapping[str, ExtractionResult]) -> dict[str, FeatureSet]:
    return {kind: FeatureFolder(r.directory).read() for kind, r in results.items()}


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
        text = saved_text_encoder(entries["text"]["name"], entries["text"]["config"])
        if text.learns:
            text.load(directory)
    for kind, encoder in (("image", image), ("text", text)):
        if encoder is not None and encoder.identity != entries[kind]["identity"]:
            raise UserInputError(
                f"{directory}: the {kind} encoder {encoder.name!r} here has weights "
                f"{encoder.identity}, but the model was trained on {entries[kind]['identity']}"
            )
    return image, text
