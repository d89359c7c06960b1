"""``SentimentModel``: a table of posts in, a trained and shippable predictor out.

It composes the layers below: a prepared dataset (or a DataFrame turned into one), the feature
store (encoders run once, cached by id), a model from the registry, the trainer, and the
metrics. Predictions work on prepared datasets (through the feature cache) and on raw posts
(encoders run on the fly), so a saved model directory serves new data with no training code.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from sentimodal.errors import UserInputError
from sentimodal.features.engine import LocalEngine
from sentimodal.features.joint import DEFAULT_TEMPLATE
from sentimodal.inference.explanations import explain_predictions
from sentimodal.inference.posts import PostBatchWork, Prediction, post_rows, predict_rows
from sentimodal.models.forward import (
    extract_embeddings,
    predict_outputs,
    predict_scores,
)
from sentimodal.models.modality_weights import modality_weights
from sentimodal.net import FetchPolicy
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.dataset_labels import check_trainable
from sentimodal.progress import note
from sentimodal.training.checkpoint import Checkpoints
from sentimodal.training.fitting import collapse_warnings, run_fingerprint, train_network
from sentimodal.training.inputs import (
    ALL,
    CELL_COLUMNS,
    DatasetLike,
    PostsLike,
    SplitInputs,
    as_dataset,
    blank_rows,
    check_fit_rows,
    fit_encoders,
    posts_table,
    prediction_inputs,
    screen_posts,
    unreadable_rows,
)
from sentimodal.training.metrics import frame_metrics
from sentimodal.training.open_labels import OpenLabels, Unscaled
from sentimodal.training.parameters import RunParameters
from sentimodal.training.run_config import check_run
from sentimodal.training.saved_model import load_model, save_model
from sentimodal.training.seen_posts import post_fingerprints


class SentimentModel(RunParameters, ClassifierMixin, BaseEstimator):
    """Multimodal sentiment classifier, a scikit-learn estimator.

    >>> model = SentimentModel(model="gated").fit("runs/mvsa")       # a prepared dataset dir
    >>> model.evaluate("runs/mvsa", split="test")["accuracy"]
    >>> model.save("models/gated"); SentimentModel.load("models/gated").predict_posts(df)
    >>> SentimentModel(model="text").fit(df_posts, labels).predict(["i love it"])

    Settings are a :class:`RunConfig` (or its fields as keyword arguments). They are the
    estimator's parameters: ``get_params``/``set_params`` (nested as ``train__epochs``), so
    ``sklearn.base.clone``, ``GridSearchCV`` and pipelines work.
    """

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "network_")

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
        progress: bool | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
    ) -> Self:
        """Train on the dataset's ``train`` split, validating on ``val`` when it has one
        (early stopping and keeping the best epoch, as the train config says).

        ``train_splits=("train", "val")`` trains on both for the configured epochs, with no
        validation: the way to retrain a configuration chosen on val on all labelled data.
        A DataFrame (or list) is split into train and val, holding out the setting
        ``validation_fraction`` of its posts (0.2 by default; stratified by label, seeded; 0
        trains on every post with no validation), and stored under ``work_dir`` (a
        temporary folder by default) so its features are cached like any prepared
        dataset's; a prepared dataset keeps its own splits. As in scikit-learn, the labels
        may come apart as ``y`` (then ``data`` is a DataFrame of posts, or a list of texts
        for a text model). ``progress`` (default: the ``verbose`` parameter) shows the
        extraction and epoch progress and the warnings on stderr.

        With ``checkpoint_dir``, training saves its whole state there after every epoch,
        and ``resume=True`` continues from it (a killed run ends with the weights it would
        have had; settings or data that differ from the checkpoint's are refused).
        """
        given = self.run_config()
        run = given.resolved()
        check_run(run)
        progress = self.verbose if progress is None else progress
        if run.engine == "ray":
            from sentimodal.training.ray_train import check_ray

            check_ray(run.ray_address)  # before any extraction: Ray installed, head reachable
        data = posts_table(data, y, label_column, run)
        if isinstance(data, pd.DataFrame):
            check_fit_rows(data, [*text_columns, image_column or ""], label_column)
        held_out = run.validation_fraction
        dataset = as_dataset(
            data,
            text_columns,
            image_column,
            label_column,
            work_dir,
            split=(1 - held_out, held_out) if held_out else (1.0,),
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
        self.image_encoder_, self.text_encoder_, results = fit_encoders(run, dataset, progress)
        self.train_splits_ = train_splits
        self.train_fingerprints_ = post_fingerprints(
            dataset.examples[dataset.examples["split"].isin(train_splits)]
        )
        checkpoints = None
        if checkpoint_dir is not None:
            key = run_fingerprint(run, dataset, train_splits, results)
            checkpoints = Checkpoints(checkpoint_dir, key, resume=resume)
        trained = train_network(self, dataset, results, progress, checkpoints)
        self.warnings_ = collapse_warnings(self, *trained)
        if progress:
            for warning in self.warnings_:
                note(("warning: ", "bold yellow"), warning)
        return self

    # ----------------------------------------------------------------------------- predicting

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise UserInputError("this SentimentModel is not fitted: call fit() or load() first")

    @property
    def classes_(self) -> list[str]:
        """The labels scores are given for (replaceable with ``set_labels`` for embedding heads)."""
        self._check_fitted()
        if getattr(self, "open_labels_", None) is not None:
            return list(self.open_labels_.labels)
        if self.label_space_ is not None:
            return list(self.label_space_.labels)
        return list(self.labels_)

    def set_labels(self, labels: Sequence[str], template: str | None = None) -> Self:
        """Score a new label set (open vocabulary): an embedding head places the labels in its
        label space; a model over ``clip:`` encoders (any head) scores label prompts
        (``template``, "a photo of something {label}" by default) in the joint space."""
        self._check_fitted()
        joint = any(getattr(e, "joint", False) for e in (self.text_encoder_, self.image_encoder_))
        if joint and (self.label_space_ is None or template is not None):
            encoders = (self.text_encoder_, self.image_encoder_)
            self.open_labels_ = OpenLabels.of(encoders, labels, template or DEFAULT_TEMPLATE)
            return self
        if self.label_space_ is None:
            raise UserInputError(
                "only models with an embedding head or clip: encoders can take new labels; "
                "this one is softmax over other encoders"
            )
        self.label_space_ = self.label_space_.with_labels([str(x).strip() for x in labels])
        self.network_.set_label_space(self.label_space_)
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
        table = posts_table(data, None, "label", self.run_)
        unreadable: dict[str, str] = {}
        if isinstance(table, pd.DataFrame):
            # a row with a cell that is not text gets its error; the others are predicted
            bad = unreadable_rows(table, CELL_COLUMNS)
            table = blank_rows(table, bad, CELL_COLUMNS) if bad else table
            unreadable = {str(position): reason for position, reason in bad.items()}
        dataset = as_dataset(table)
        inputs = self._inputs(dataset, split, progress)
        scores = self._scores(inputs.data, len(inputs.ids))
        predicted = self._frame(inputs.ids, scores).set_index("id")
        frame = predicted.reindex(inputs.wanted)
        frame["label"] = frame["label"].astype(object).where(frame["label"].notna(), None)
        frame["modalities"] = [inputs.modalities.get(i) for i in inputs.wanted]
        frame["error"] = [unreadable.get(i) or inputs.missing.get(i) for i in inputs.wanted]
        return frame.reset_index(names="id")

    def _inputs(self, dataset: PreparedDataset, split: str | None, progress: bool) -> SplitInputs:
        encoders = (self.image_encoder_, self.text_encoder_)
        return prediction_inputs(dataset, split, self.run_, *encoders, self.scaler_, progress)

    def _scores(self, data: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        if n == 0:
            return np.zeros((0, len(self.classes_)), dtype=np.float32)
        opened = getattr(self, "open_labels_", None)
        if opened is not None:
            return opened.scores(self.scaler_.inverse(data))
        return self._calibrated(
            predict_scores(self.network_, data, self.run_.train.eval_batch_size)
        )

    def _calibrated(self, scores: np.ndarray) -> np.ndarray:
        """The network's scores through the temperature fitted on val, when one is applied."""
        calibration = getattr(self, "calibration_", None)
        return calibration.apply(scores) if calibration is not None else scores

    def _post_scores(self, data: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._calibrated(
            predict_scores(self.network_, data, batch_size=self.run_.train.eval_batch_size)
        )

    def _post_weights(self, data: Mapping[str, np.ndarray]) -> dict[str, Any] | None:
        return modality_weights(self.network_, data, self.run_.train.eval_batch_size)

    def vectors(
        self, data: DatasetLike, split: str | None = None, *, penultimate: bool = False
    ) -> tuple[list[str], np.ndarray]:
        """Ids and where the model places them: its raw outputs (label-space vectors for
        embedding heads, logits for softmax heads) or, with ``penultimate``, the body's
        representation (for pictures of the embedding space and for feature export)."""
        self._check_fitted()
        inputs = self._inputs(as_dataset(data), split, progress=False)
        batch = self.run_.train.eval_batch_size
        if penultimate:
            return inputs.ids, extract_embeddings(self.network_, inputs.data, batch)
        return inputs.ids, predict_outputs(self.network_, inputs.data, batch)

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
        explain: bool = False,
    ) -> list[Prediction]:
        """Predict raw posts (``text`` and/or ``image`` path or URL per post, optional ``id``;
        a plain string is a text-only post).

        A post that cannot be predicted (missing text, unreadable image, not a post at all: a
        number, undecodable bytes) gets an ``error`` and
        the others go on; a fusion reads a post that lacks one modality by the other, and
        every prediction says which it read. Batches run in ``workers`` processes like
        feature extraction (default: the run's ``feature_workers``). Image URLs may reach
        non-public addresses only with ``allow_private_addresses`` (see :mod:`sentimodal.net`).
        ``explain`` adds each prediction's ``explanation`` (see :meth:`explain_posts`).
        """
        self._check_fitted()
        records = screen_posts(
            posts.to_dict("records") if isinstance(posts, pd.DataFrame) else posts
        )
        work = self.post_work(FetchPolicy(allow_private=allow_private_addresses))
        engine = LocalEngine(self.run_.feature_workers if workers is None else workers)
        rows = post_rows(records)
        predictions = predict_rows(work, rows, batch_size=batch_size, engine=engine)
        if not explain:
            return predictions
        return explain_predictions(work, rows, predictions, engine=engine, batch_size=batch_size)

    def explain_posts(
        self, posts: pd.DataFrame | Iterable[Mapping[str, Any]], **options: Any
    ) -> list[Prediction]:
        """``predict_posts`` with an ``explanation`` per prediction: each modality's share of
        the decision, a score per word, a heatmap over the image, each saying its method
        (occlusion through this very model: :mod:`sentimodal.inference.explanations`).
        Costs a forward pass per word and per image cell."""
        return self.predict_posts(posts, explain=True, **options)

    def post_work(self, fetch: FetchPolicy | None = None) -> PostBatchWork:
        """The per-batch work of predicting raw posts with this model (its encoders, scaler,
        network and labels): what ``predict_posts``, table streaming and the server run.
        Image URLs are fetched under ``fetch``."""
        self._check_fitted()
        embedding = self.label_space_ is not None
        opened = getattr(self, "open_labels_", None)
        if opened is not None:
            return PostBatchWork(
                image_encoder=self.image_encoder_ if self.run_.uses_image else None,
                text_encoder=self.text_encoder_ if self.run_.uses_text else None,
                scaler=Unscaled(),
                score=opened.scores,
                classes=self.classes_,
                fetch=fetch,
                scores_are="probabilities of each label's prompt in the joint space",
            )
        return PostBatchWork(
            image_encoder=self.image_encoder_ if self.run_.uses_image else None,
            text_encoder=self.text_encoder_ if self.run_.uses_text else None,
            scaler=self.scaler_,
            score=self._post_scores,
            weigh=self._post_weights,
            classes=self.classes_,
            fetch=fetch,
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
        metrics. ``n_training_posts`` counts the evaluated posts the model was trained on, and
        ``unseen`` holds the metrics of the other posts alone. The labels may come apart as
        ``y``, as in ``fit``.
        """
        self._check_fitted()
        dataset = as_dataset(posts_table(data, y, "label", self.run_))
        if split is None:
            split = "test" if "test" in dataset.splits else ALL
        metrics = frame_metrics(
            self.predict_frame(dataset, split),
            dataset,
            self.classes_,
            self.train_splits_,
            split,
            self.train_fingerprints_,
            probabilities=self.label_space_ is None,
        )
        if metrics is None:
            raise UserInputError(
                f"{dataset.root}: no example of split {split!r} has every input this model "
                f"needs ({', '.join(self._modalities())})"
            )
        return metrics

    def evaluate_splits(
        self, data: DatasetLike, splits: Sequence[str] = ("val", "test")
    ) -> dict[str, dict[str, Any]]:
        """``evaluate`` on each of ``splits`` the dataset has, except those trained on (a
        model fitted on train + val is evaluated on test only)."""
        self._check_fitted()
        dataset = as_dataset(data)
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
        return save_model(self, directory)

    @classmethod
    def load(cls, directory: str | Path, device: str = "auto") -> SentimentModel:
        """Read a model directory onto ``device`` (``auto``: a GPU if there is one); refuses
        foreign, corrupted or incompatible ones."""
        return load_model(cls, directory, device)

    def branch(self, modality: str) -> SentimentModel:
        """The text or image half of a late fusion as a model of its own, sharing its weights:
        what each modality predicts alone, next to what the fusion predicts."""
        self._check_fitted()
        branches = self.network_.branches()
        if modality not in branches:
            raise UserInputError(
                f"the {self.run_.model!r} model has no {modality!r} branch"
                + (f" (it has: {', '.join(branches)})" if branches else "")
            )
        view = copy.copy(self)
        view.run_ = self.run_.model_copy(update={"model": modality})
        view.network_ = branches[modality]
        view.network_config_ = view.network_.config
        view.calibration_ = None  # the temperature was fitted on the whole model's scores
        if modality == "text":
            view.image_encoder_ = None
        else:
            view.text_encoder_ = None
        return view

    def gate_stats(self) -> dict[str, Any] | None:
        """How much of each modality the gated fusion lets through (None for other models)."""
        self._check_fitted()
        stats = getattr(self.network_, "gate_stats", None)
        return stats() if callable(stats) else None
