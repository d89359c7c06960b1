"""The model behind the server: loaded once, posts decoded under limits, batches scored.

Per-post work (decoding an upload, the image transform) runs in the request's thread-pool
thread, so several posts decode while the model computes; the forward passes of a micro-batch
run in the batcher's single model thread (``run``), the only place that touches the network.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from sentimodal import __version__
from sentimodal.errors import RecordError, UserInputError
from sentimodal.features.batch_work import LoadedImages
from sentimodal.features.images import decode_image
from sentimodal.inference.explanations import ExplainSettings, explain_predictions
from sentimodal.inference.posts import LoadedPosts, PostBatchWork, Prediction
from sentimodal.sources.pixels import BatchPixels, DecodeDeadline, ImageTooLarge, PixelBudget

if TYPE_CHECKING:  # the torch runtime's types; the onnx runtime imports no training code
    from sentimodal.interfaces.server.settings import ServerSettings
    from sentimodal.models.label_space import LabelSpace
    from sentimodal.training.estimator import SentimentModel


class ImageRejected(Exception):
    """An uploaded image that is not decodable (``too_large`` False) or over the pixel bound;
    ``late``: its decode could not start before the request's deadline."""

    def __init__(self, message: str, too_large: bool = False, late: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large
        self.late = late


def decode_upload(
    data: bytes,
    budget: PixelBudget,
    draft: int | None = None,
    pixels: BatchPixels | None = None,
    deadline: float | None = None,
) -> Image.Image:
    """Bytes of an uploaded image -> upright RGB, by the rules every image follows
    (:func:`~sentimodal.features.images.decode_image`): within ``budget``, taking its pixels
    from the request's ``pixels``, started before ``deadline`` (``time.monotonic()``)."""
    if not data:
        raise ImageRejected("the image is empty")
    try:
        return decode_image(data, "the uploaded image", draft, budget, pixels, deadline)
    except RecordError as exc:
        raise ImageRejected(
            str(exc),
            too_large=isinstance(exc, ImageTooLarge),
            late=isinstance(exc, DecodeDeadline),
        ) from None


class ServedModel:
    """A model ready to serve: ``load_posts`` anywhere, ``run`` batches in one thread.

    ``runtime`` ``torch`` serves a model directory; ``onnx`` serves an ONNX export (see
    ``sentimodal export``) with onnxruntime, without the training code.
    """

    def __init__(
        self,
        work: PostBatchWork,
        info: dict[str, Any],
        *,
        network: Any = None,
        space: LabelSpace | None = None,
        open_work: Callable[[Sequence[str]], PostBatchWork] | None = None,
    ) -> None:
        self.work = work
        self.classes = list(work.classes)
        self._info = info
        self.network = network
        self.space = space
        self._spaces: dict[tuple[str, ...], LabelSpace] = {}
        #: a model over clip: encoders scores free labels by prompt (its own work per labels)
        self.open_work = open_work
        self._open: dict[tuple[str, ...], PostBatchWork] = {}

    @classmethod
    def load(
        cls, directory: str | Path, runtime: str = "torch", device: str = "auto"
    ) -> ServedModel:
        directory = Path(directory)
        if runtime == "onnx":
            from sentimodal.inference.onnx_runtime import OnnxModel

            exported = OnnxModel.load(directory)
            served = cls(exported.work, exported.info())
        elif runtime == "torch":
            from sentimodal.training.estimator import SentimentModel

            model = SentimentModel.load(directory, device=device)
            served = cls(
                model.post_work(),
                _torch_info(model, directory),
                network=model.network_,
                space=model.label_space_,
                open_work=_open_work(model),
            )
        else:
            raise UserInputError(f"unknown runtime {runtime!r}: choose torch or onnx")
        served.warm_up()
        return served

    @property
    def uses_text(self) -> bool:
        return self.work.uses_text

    @property
    def uses_image(self) -> bool:
        return self.work.uses_image

    @property
    def image_draft(self) -> int | None:
        return self.work.image_work.encoder.load_size if self.work.image_work else None

    def warm_up(self) -> None:
        """One forward pass on a made-up post, so the first client does not pay for lazy
        initialisation (thread pools, allocator, weights paged in)."""
        image = Image.new("RGB", (64, 64), (128, 128, 128)) if self.uses_image else None
        rows = [{"position": 0, "id": "warm-up", "text": "warm up", "image": image}]
        self.run(None, [self.work.load(rows)])

    def info(self) -> dict[str, Any]:
        """What /v1/model tells: labels, encoders, metrics, versions, runtime."""
        return dict(self._info)

    def label_space(self, labels: Sequence[str]) -> tuple[str, ...]:
        """Check a free label list (embedding heads, clip: encoders); returns its key for
        ``run``."""
        if self.open_work is not None:
            key = tuple(str(label).strip() for label in labels)
            if key not in self._open:
                if len(self._open) > 64:
                    self._open.clear()
                self._open[key] = self.open_work(key)
            return key
        if self.space is None:
            info = self._info
            raise UserInputError(
                f"free labels need an embedding head served with torch (this model: "
                f"{info.get('head')} head, {info.get('runtime')} runtime)"
            )
        key = tuple(str(label).strip() for label in labels)
        if key not in self._spaces:
            if len(self._spaces) > 64:
                self._spaces.clear()
            self._spaces[key] = self.space.with_labels(list(key))
        return key

    def explain_settings(self, settings: ServerSettings) -> ExplainSettings:
        return ExplainSettings(max_words=settings.explain_max_words, grid=settings.explain_grid)

    def explain(
        self, rows: list[dict[str, Any]], predictions: list[Prediction], settings: ServerSettings
    ) -> list[Prediction]:
        """The predictions of ``rows`` with their explanations (occlusion through this
        model's own work, in the calling thread)."""
        return explain_predictions(
            self.work, rows, predictions, settings=self.explain_settings(settings)
        )

    def load_posts(self, rows: list[dict[str, Any]]) -> LoadedPosts:
        return self.work.load(rows)

    def run(self, key: Hashable, batch: list[LoadedPosts]) -> list[list[Prediction]]:
        """Score the posts of several requests in one forward pass; one list per request."""
        merged = _merge(batch)
        work = self.work
        if key is not None and key in self._open:
            work = self._open[key]  # type: ignore[index]
            key = None
        if key is not None:
            space = self._spaces[key]  # type: ignore[index]
            self.network.set_label_space(space)
            work = self.work.with_classes(space.labels)
        try:
            with torch.inference_mode():
                result = work.compute(merged)
        finally:
            if key is not None and self.space is not None:
                self.network.set_label_space(self.space)
        predictions = work.predictions(merged.rows, [result])
        out, start = [], 0
        for loaded in batch:
            out.append(predictions[start : start + len(loaded.rows)])
            start += len(loaded.rows)
        return out


def _open_work(model: SentimentModel) -> Callable[[Sequence[str]], PostBatchWork] | None:
    """Free labels by prompt, for a model over clip: encoders (None for the others)."""
    encoders = (model.text_encoder_, model.image_encoder_)
    if not any(getattr(e, "joint", False) for e in encoders):
        return None

    def work(labels: Sequence[str]) -> PostBatchWork:
        # a shallow copy: the served model keeps its own labels
        return copy.copy(model).set_labels(labels, template=model_template(model)).post_work()

    return work


def model_template(model: SentimentModel) -> str:
    from sentimodal.features.joint import DEFAULT_TEMPLATE

    opened = getattr(model, "open_labels_", None)
    return opened.template if opened is not None else DEFAULT_TEMPLATE


def _torch_info(model: SentimentModel, directory: Path) -> dict[str, Any]:
    from sentimodal.training import model_dir

    config = model_dir.read_json(directory / model_dir.CONFIG_FILE)
    run = model.run_
    return {
        "labels": list(model.classes_),
        "head": run.head,
        "model": run.model,
        "open_labels": model.label_space_ is not None or _open_work(model) is not None,
        "inputs": {"text": run.uses_text, "image": run.uses_image},
        "encoders": config.get("encoders", {}),
        "metrics": model.metrics_,
        "calibration": (
            {"method": model.calibration_.method, "temperature": model.calibration_.effective}
            if model.calibration_ is not None
            else None
        ),
        "version": {
            "sentimodal": __version__,
            "trained_with": config.get("sentimodal_version"),
            "format": config.get("format_version"),
        },
        "runtime": "torch",
    }


def _merge(batch: list[LoadedPosts]) -> LoadedPosts:
    """Several requests' loaded posts as one (row positions are unique across requests),
    with every request's errors and warnings."""
    rows = [row for loaded in batch for row in loaded.rows]
    errors = {p: reason for loaded in batch for p, reason in loaded.errors.items()}
    warnings = {p: reason for loaded in batch for p, reason in loaded.warnings.items()}
    parts = [loaded.images for loaded in batch if loaded.images is not None]
    if not parts:
        return LoadedPosts(rows, None, errors, warnings)
    pixels = [part.pixels for part in parts if part.pixels is not None]
    images = LoadedImages(
        np.concatenate([part.positions for part in parts]).astype(np.int64),
        torch.cat(pixels) if pixels else None,
    )
    return LoadedPosts(rows, images, errors, warnings)
