"""The per-batch work of predicting raw posts: decode, encode, scale, score.

One batch of posts goes through the feature store's own per-batch work (``ImageBatchWork``'s
forward pass, ``TextBatchWork``'s encoding), then the model's scores. Shaped like the store's
work (``load`` in a worker, ``compute`` wherever the model is, ``work(rows)`` for both), so the
same engines run it: ``LocalEngine`` with DataLoader workers, or ``RayEngine``. The scores come
from a function of the model inputs, so the same work serves a torch network (the estimator
hands over its own, :meth:`SentimentModel.post_work`) and an ONNX graph; nothing here knows
how a model was trained.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from sentimodal.errors import RecordError
from sentimodal.features.batch_work import (
    ImageBatchWork,
    LoadedImages,
    TextBatchWork,
    is_token_encoder,
)
from sentimodal.features.engine import BatchResult, Engine, LocalEngine, Row
from sentimodal.features.image_encoders.base import ImageEncoder
from sentimodal.features.model_inputs import Scaler, model_inputs
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.net import FetchPolicy

#: why a raw post lacks a modality
_NOTHING = {"text": "empty text", "image": "no image"}
#: scores of a batch of model inputs (modality-keyed arrays) -> (N, labels)
ScoreFn = Callable[[dict[str, np.ndarray]], np.ndarray]
#: the network's own weights per modality for a batch of model inputs, or None where it has
#: none (see :func:`sentimodal.models.modality_weights.modality_weights`)
WeighFn = Callable[[dict[str, np.ndarray]], dict[str, Any] | None]


#: modality -> (keys, values, lengths): a batch's features before they become model inputs
_Parts = dict[str, tuple[list[str], np.ndarray, np.ndarray | None]]


@dataclass
class Prediction:
    """One raw post's prediction, or the reason it could not be made.

    ``modalities`` says what the prediction read ("text+image", or the one modality a fusion
    fell back to); ``warning`` why an input the post gave was not used (an unreadable image);
    ``explanation`` why it got its label, when asked for (``explained``; see
    :mod:`sentimodal.inference.explanations`).
    """

    id: str
    label: str | None = None
    scores: dict[str, float] | None = None
    error: str | None = None
    modalities: str | None = None
    warning: str | None = None
    explanation: dict[str, Any] | None = None
    explained: bool = False

    def to_row(self) -> dict[str, Any]:
        """The same keys for every post (None where they do not apply): a table row; with
        ``explanation`` when the posts were explained."""
        row = {
            "id": self.id,
            "label": self.label,
            "scores": self.scores,
            "modalities": self.modalities,
            "error": self.error,
            "warning": self.warning,
        }
        if self.explained:
            row["explanation"] = self.explanation
        return row

    to_dict = to_row


@dataclass
class LoadedPosts:
    """A batch on its way from a loading worker to the forward passes."""

    rows: list[Row]
    images: LoadedImages | None
    #: position -> reason, for posts that failed before any model ran
    errors: dict[int, str]
    #: position -> why an input of a post that still goes on was not used
    warnings: dict[int, str] = field(default_factory=dict)


class PostBatchWork:
    """Raw posts -> class scores, one batch at a time (see the module docstring).

    A row is ``{"position", "id", "text", "image"}``; ``image`` is a path or URL (read with
    the encoder, so through :func:`sentimodal.features.images.load_image`) or an already
    decoded PIL image (the server decodes uploads itself, under its pixel limit). ``values``
    of the result are the scores of the rows that worked, in ``classes`` order.
    """

    def __init__(
        self,
        *,
        image_encoder: ImageEncoder | None,
        text_encoder: TextEncoder | None,
        scaler: Scaler,
        score: ScoreFn,
        classes: Sequence[str],
        fetch: FetchPolicy | None = None,
        scores_are: str = "class probabilities",
        weigh: WeighFn | None = None,
    ) -> None:
        self.image_work = (
            ImageBatchWork(image_encoder, fetch) if image_encoder is not None else None
        )
        self.text_work = TextBatchWork(text_encoder) if text_encoder is not None else None
        self.scaler = scaler
        self.score = score
        #: what the scores are, for people reading them (they need not sum to 1)
        self.scores_are = scores_are
        self.classes = list(classes)
        self.weigh = weigh

    def with_classes(self, classes: Sequence[str]) -> PostBatchWork:
        """The same work scoring another label list (an embedding head's free labels; the
        caller puts the matching label space on the network)."""
        other = copy.copy(self)
        other.classes = list(classes)
        return other

    @property
    def parallel(self) -> bool:
        """Worker processes pay off when there are images to decode."""
        return self.image_work is not None

    @property
    def compute_in_workers(self) -> bool:
        return self.image_work.compute_in_workers if self.image_work is not None else True

    @property
    def uses_text(self) -> bool:
        return self.text_work is not None

    @property
    def uses_image(self) -> bool:
        return self.image_work is not None

    @property
    def modalities(self) -> list[str]:
        return [m for m, on in (("text", self.uses_text), ("image", self.uses_image)) if on]

    def batches(self, rows: Sequence[Row], batch_size: int) -> list[list[Row]]:
        """``rows`` cut into batches for this work. A model that reads token ids gets texts of
        similar length together: a transformer's cost grows with the batch's longest text, and
        tweets of mixed length padded to the longest cost it half as much again (measured on
        MVSA posts, MiniLM). ``predictions`` puts rows back in their order."""
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        if self.text_work is not None and is_token_encoder(self.text_work.encoder):
            rows = sorted(rows, key=lambda row: len(str(row.get("text") or "")))
        return [list(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]

    def load(self, rows: list[Row]) -> LoadedPosts:
        """Decode the images. A post without what the model reads is an error; a fusion reads
        a post that has one of its modalities (an unreadable image then becomes a warning)."""
        needed = self.modalities
        fusion = len(needed) > 1  # the scorer reads the <modality>_present masks
        errors: dict[int, str] = {}
        warnings: dict[int, str] = {}
        for row in rows:
            if row.get("reject"):
                errors[int(row["position"])] = str(row["reject"])
                continue
            has = {"text": bool(row.get("text")), "image": not _missing(row.get("image"))}
            lacking = [m for m in needed if not has[m]]
            if lacking and (not fusion or len(lacking) == len(needed)):
                errors[int(row["position"])] = " and ".join(_NOTHING[m] for m in lacking)
        images = None
        if self.image_work is not None:
            encoder = self.image_work.encoder
            tensors: list[torch.Tensor] = []
            positions: list[int] = []
            for row in rows:
                position = int(row["position"])
                if position in errors or _missing(row.get("image")):
                    continue
                try:
                    source = row["image"]
                    tensors.append(
                        encoder.transform(source)
                        if isinstance(source, Image.Image)
                        else encoder.read(source, policy=self.image_work.fetch)
                    )
                except RecordError as exc:
                    if fusion and row.get("text"):
                        warnings[position] = f"image not used: {exc}"
                    else:
                        errors[position] = str(exc)
                    continue
                positions.append(position)
            pixels = torch.stack(tensors) if tensors else None
            images = LoadedImages(np.asarray(positions, dtype=np.int64), pixels)
        return LoadedPosts(rows, images, errors, warnings)

    def _encode(self, loaded: LoadedPosts) -> tuple[list[str], _Parts, dict[str, np.ndarray]]:
        """The keys (positions) of the posts that go on, their features per modality and the
        model inputs made of them (empty when none goes on)."""
        ok = [row for row in loaded.rows if int(row["position"]) not in loaded.errors]
        keys = [str(row["position"]) for row in ok]
        parts: _Parts = {}
        if not ok:
            return keys, parts, {}
        if self.image_work is not None and loaded.images is not None:
            values = self.image_work.compute(loaded.images).values
            parts["image"] = ([str(p) for p in loaded.images.positions], values, None)
        if self.text_work is not None:
            with_text = [row for row in ok if row.get("text")]
            text = self.text_work.compute(with_text)
            parts["text"] = ([str(p) for p in text.positions], text.values, text.lengths)
        return keys, parts, model_inputs(parts, keys, self.scaler)

    def compute(self, loaded: LoadedPosts) -> BatchResult:
        errors = loaded.errors
        keys, parts, data = self._encode(loaded)
        positions = np.array([int(key) for key in keys], dtype=np.int64)
        scores = np.zeros((0, len(self.classes)), dtype=np.float32)
        if keys:
            scores = np.asarray(self.score(data), dtype=np.float32)
        have = {m: set(ids) for m, (ids, _, _) in parts.items()}
        notes = [
            {
                "position": int(key),
                "modalities": "+".join(m for m in self.modalities if key in have.get(m, ())),
                "warning": loaded.warnings.get(int(key)),
            }
            for key in keys
        ]
        rejects = [
            {
                "position": int(row["position"]),
                "id": str(row["id"]),
                "image": _source_name(row.get("image")),
                "reason": errors[int(row["position"])],
            }
            for row in loaded.rows
            if int(row["position"]) in errors
        ]
        return BatchResult(positions, scores, rejects=rejects, notes=notes)

    def __call__(self, rows: list[Row]) -> BatchResult:
        return self.compute(self.load(rows))

    def network_weights(self, rows: list[Row]) -> dict[int, dict[str, Any]]:
        """Position -> the network's own weights per modality for that post (see
        :mod:`sentimodal.models.modality_weights`), for the rows that can be predicted;
        empty where the model has no such weights (unimodal, ONNX)."""
        if self.weigh is None:
            return {}
        keys, _, data = self._encode(self.load(rows))
        found = self.weigh(data) if keys else None
        if found is None:
            return {}
        return {int(key): _post_weights(found, i, self.classes) for i, key in enumerate(keys)}

    def predictions(self, rows: Sequence[Row], results: Iterable[BatchResult]) -> list[Prediction]:
        """One prediction per row, in row order, from the results covering them."""
        by_position: dict[int, Prediction] = {}
        ids = {int(row["position"]): str(row["id"]) for row in rows}
        for result in results:
            notes = {int(n["position"]): n for n in result.notes}
            for position, values in zip(result.positions.tolist(), result.values, strict=True):
                note = notes.get(position, {})
                by_position[position] = Prediction(
                    id=ids[position],
                    label=self.classes[int(np.argmax(values))],
                    scores={c: float(s) for c, s in zip(self.classes, values, strict=True)},
                    modalities=note.get("modalities"),
                    warning=note.get("warning"),
                )
            for reject in result.rejects:
                position = int(reject["position"])
                by_position[position] = Prediction(id=ids[position], error=reject["reason"])
        return [by_position[int(row["position"])] for row in rows]


def _post_weights(found: Mapping[str, Any], row: int, classes: Sequence[str]) -> dict[str, Any]:
    """Row ``row`` of the network's weights as JSON-ready numbers (branch scores by label)."""
    return {
        "weights": {m: _number(v[row]) for m, v in found["weights"].items()},
        "gates": {name: _number(v[row]) for name, v in found["gates"].items()},
        "branches": {
            m: {c: _number(s) for c, s in zip(classes, v[row], strict=True)}
            for m, v in found["branch_scores"].items()
        },
        "method": found["method"],
    }


def _number(value: Any) -> float:
    return round(float(value), 6)


def post_rows(records: Iterable[Mapping[str, Any]], start: int = 0) -> list[Row]:
    """Table records (``id``, ``text``, ``image``; any may be missing) as rows to predict.

    A missing id becomes the row's number in the table (counting from 0).
    """
    rows: list[Row] = []
    for offset, record in enumerate(records):
        position = start + offset
        image = record.get("image")
        row = {
            "position": position,
            "id": cell(record.get("id")) or str(position),
            "text": cell(record.get("text")),
            "image": image if isinstance(image, Image.Image) else cell(image),
        }
        if cell(record.get("reject")):
            row["reject"] = cell(record.get("reject"))  # not a post: its reason is the error
        rows.append(row)
    return rows


def predict_rows(
    work: PostBatchWork,
    rows: Sequence[Row],
    *,
    batch_size: int = 32,
    engine: Engine | None = None,
) -> list[Prediction]:
    """Predictions for ``rows`` (one per row, in order), batch by batch on ``engine``
    (default: the calling process, no workers)."""
    if not rows:
        return []
    engine = engine or LocalEngine(workers=0)
    return work.predictions(rows, engine.run(work, work.batches(rows, batch_size)))


def cell(value: Any) -> str:
    """A table cell as stripped text; missing values (None, NaN) are empty."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def _missing(image: Any) -> bool:
    return not isinstance(image, Image.Image) and not image


def _source_name(image: Any) -> str:
    return "<upload>" if isinstance(image, Image.Image) else str(image or "")
