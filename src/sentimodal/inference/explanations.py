"""Why a post got its label: each modality's share, a score per word, a heatmap over the image.

Every explanation here is an occlusion: the post is predicted again with a part taken away
(one word, one cell of a grid over the image, one whole modality) and the part's score is
how much the predicted label's score falls without it (positive: the part spoke for the
label; negative: against it). The variants go through the model's own per-batch work
(:class:`~sentimodal.inference.posts.PostBatchWork`), the same encoders, scaler, network
and calibration, so one method explains every run model, torch or ONNX alike, frozen or
fine-tuned text encoders, and it measures the model rather than a proxy of it. The cost is
one forward pass per word, per grid cell and per modality, and one more for a fusion's own
weights (``explanation_cost``), which is why explanations are off unless asked for.

A post's explanation is a plain dict (JSON as it is), in every interface the same:
``label`` and ``score`` explained, ``modalities`` (``had``: what the post gave; ``shares``;
``alone``: the label's score from each modality by itself; ``network``: the fusion's own
weights per modality for the post, its gates and its branches' scores, where it has them:
:mod:`sentimodal.models.modality_weights`), ``words`` (reading order, None
without text), ``regions`` (a ``rows`` x ``cols`` grid of ``scores`` over an image of
``width`` x ``height``, None without image) and ``method`` (how each part was measured).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from sentimodal.errors import RecordError
from sentimodal.features.engine import Engine, LocalEngine, Row
from sentimodal.features.images import load_image
from sentimodal.inference.posts import PostBatchWork, Prediction
from sentimodal.models.modality_weights import MODALITIES


@dataclass(frozen=True)
class ExplainSettings:
    """How fine an explanation is, so how much it costs."""

    #: words of a text scored one by one (later ones get a score of None)
    max_words: int = 64
    #: the image's grid: ``grid`` x ``grid`` cells, each greyed out in turn
    grid: int = 4

    def __post_init__(self) -> None:
        if self.max_words < 0 or not 1 <= self.grid <= 16:
            raise ValueError("max_words must be >= 0 and grid between 1 and 16")


def explanation_cost(post: Row, work: PostBatchWork, settings: ExplainSettings) -> int:
    """Forward passes one post's explanation costs (a bound a server can check up front)."""
    words = min(len(str(post.get("text") or "").split()), settings.max_words)
    image = post.get("image") is not None and post.get("image") != ""
    cells = settings.grid**2 if image and work.uses_image else 0
    both = 2 if work.uses_text and work.uses_image and words and image else 0
    weighed = 1 if work.weigh is not None and len(work.modalities) == 2 else 0
    return (words if work.uses_text else 0) + cells + both + weighed


def words_of(text: str) -> list[str]:
    """The words scored: the text split at white space, in reading order."""
    return str(text or "").split()


def mask_cells(image: Image.Image, cells: Sequence[tuple[int, int]], grid: int) -> Image.Image:
    """``image`` with the given (row, column) cells of a ``grid`` x ``grid`` grid filled with
    the image's mean colour (an occluder with no edge or colour of its own)."""
    out = image.copy()
    mean = tuple(int(v) for v in np.asarray(image, dtype=np.float32).reshape(-1, 3).mean(0))
    width, height = image.size
    for r, c in cells:
        box = (
            c * width // grid,
            r * height // grid,
            (c + 1) * width // grid,
            (r + 1) * height // grid,
        )
        out.paste(mean, box)
    return out


def without_words(words: Sequence[str], drop: set[int]) -> str:
    return " ".join(w for i, w in enumerate(words) if i not in drop)


class _Variants:
    """The posts predicted to explain a batch: (explained post, what was removed) per row."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.what: list[tuple[int, str, Any]] = []

    def add(self, owner: int, kind: str, key: Any, text: str, image: Any) -> None:
        position = len(self.rows)
        self.rows.append({"position": position, "id": f"v{position}", "text": text, "image": image})
        self.what.append((owner, kind, key))


def explain_predictions(
    work: PostBatchWork,
    rows: Sequence[Row],
    predictions: Sequence[Prediction],
    *,
    settings: ExplainSettings | None = None,
    engine: Engine | None = None,
    batch_size: int = 32,
) -> list[Prediction]:
    """``predictions`` (of ``rows``, same order) with an ``explanation`` each; a post that
    could not be predicted keeps its error and gets None. Image sources are read again here
    (a path or URL under the work's fetch policy, or the PIL image the server decoded)."""
    settings = settings or ExplainSettings()
    variants = _Variants()
    pictures: dict[int, Image.Image] = {}
    texts: dict[int, list[str]] = {}
    for k, (row, prediction) in enumerate(zip(rows, predictions, strict=True)):
        if prediction.error is not None:
            continue
        had = had_modalities(prediction)
        text, image = str(row.get("text") or ""), row.get("image")
        if "image" in had:
            try:
                pictures[k] = picture_of(image, work)
            except RecordError:
                had = [m for m in had if m != "image"]  # read once, unreadable now: say so
        if "text" in had:
            texts[k] = words_of(text)
            for i in range(min(len(texts[k]), settings.max_words)):
                variants.add(k, "word", i, without_words(texts[k], {i}), pictures.get(k, image))
        if k in pictures:
            cells = [(r, c) for r in range(settings.grid) for c in range(settings.grid)]
            for cell in cells:
                masked = mask_cells(pictures[k], [cell], settings.grid)
                variants.add(k, "cell", cell, text if "text" in had else "", masked)
        if len(had) == 2:
            variants.add(k, "alone", "text", text, None)
            variants.add(k, "alone", "image", "", pictures[k])
    scored = _label_scores(work, variants, predictions, engine, batch_size)
    weighed = _network_weights(work, rows, predictions, pictures, batch_size)
    out: list[Prediction] = []
    for k, prediction in enumerate(predictions):
        explained = _copy(prediction)
        if prediction.error is None:
            explained.explanation = _explanation(
                work, prediction, texts.get(k), pictures.get(k), scored.get(k, {}), settings
            )
            network = weighed.get(k)
            explained.explanation["modalities"]["network"] = network
            explained.explanation["method"]["network"] = (
                network["method"] if network is not None else _NO_NETWORK_WEIGHTS
            )
        out.append(explained)
    return out


_NO_NETWORK_WEIGHTS = (
    "this model has no weights of its own per modality (a unimodal model, a concatenation "
    "with hidden layers, or an exported graph): 'shares' measure them from outside"
)


def _network_weights(
    work: PostBatchWork,
    rows: Sequence[Row],
    predictions: Sequence[Prediction],
    pictures: dict[int, Image.Image],
    batch_size: int,
) -> dict[int, dict[str, Any]]:
    """Explained post -> the network's own weights per modality (branch weights, gates),
    read from the post as the prediction read it; a branch's scores only for a modality the
    post had (the other branch read the missing input)."""
    if work.weigh is None or len(work.modalities) < 2:
        return {}
    posts = []
    for k, (row, prediction) in enumerate(zip(rows, predictions, strict=True)):
        had = had_modalities(prediction)
        if prediction.error is None and had:
            text = str(row.get("text") or "") if "text" in had else ""
            posts.append({"position": k, "id": str(k), "text": text, "image": pictures.get(k)})
    found: dict[int, dict[str, Any]] = {}
    for batch in work.batches(posts, batch_size):
        found.update(work.network_weights(batch))
    for k, weights in found.items():
        had = had_modalities(predictions[k])
        weights["branches"] = {m: v for m, v in weights["branches"].items() if m in had}
    return found


def had_modalities(prediction: Prediction) -> list[str]:
    """What the prediction read, as a list ("text+image" -> ["text", "image"])."""
    return [m for m in (prediction.modalities or "").split("+") if m in MODALITIES]


def picture_of(image: Any, work: PostBatchWork) -> Image.Image:
    """The decoded image an explanation greys cells of (as the model's encoder reads it)."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    assert work.image_work is not None
    encoder = work.image_work.encoder
    return load_image(image, draft=encoder.load_size, policy=work.image_work.fetch)


def _label_scores(
    work: PostBatchWork,
    variants: _Variants,
    predictions: Sequence[Prediction],
    engine: Engine | None,
    batch_size: int,
) -> dict[int, dict[tuple[str, Any], float | None]]:
    """Each variant's score of its post's predicted label (None: the variant had nothing
    the model reads, e.g. a one-word text without its word)."""
    if not variants.rows:
        return {}
    engine = engine or LocalEngine(workers=0)
    results = engine.run(work, work.batches(variants.rows, batch_size))
    scored: dict[int, dict[tuple[str, Any], float | None]] = {}
    predicted = work.predictions(variants.rows, results)
    for (owner, kind, key), p in zip(variants.what, predicted, strict=True):
        label = predictions[owner].label
        value = p.scores[label] if p.error is None and p.scores and label else None
        scored.setdefault(owner, {})[(kind, key)] = value
    return scored


def _explanation(
    work: PostBatchWork,
    prediction: Prediction,
    words: list[str] | None,
    picture: Image.Image | None,
    scored: dict[tuple[str, Any], float | None],
    settings: ExplainSettings,
) -> dict[str, Any]:
    assert prediction.label is not None and prediction.scores is not None
    base = prediction.scores[prediction.label]
    had = [m for m in had_modalities(prediction) if m != "image" or picture is not None]

    def drop(key: tuple[str, Any]) -> float | None:
        value = scored.get(key)
        return None if value is None else round(base - value, 6)

    method: dict[str, str] = {"modalities": _modality_method(work, had)}
    word_scores = None
    if words is not None:
        word_scores = [
            {"word": w, "score": drop(("word", i)) if i < settings.max_words else None}
            for i, w in enumerate(words)
        ]
        method["words"] = (
            "leave-one-word-out occlusion: the label's score minus its score with the word "
            f"removed (the first {settings.max_words} words)"
        )
    regions = None
    if picture is not None:
        g = settings.grid
        regions = {
            "rows": g,
            "cols": g,
            "width": picture.size[0],
            "height": picture.size[1],
            "scores": [[drop(("cell", (r, c))) for c in range(g)] for r in range(g)],
        }
        method["regions"] = (
            f"occlusion over a {g}x{g} grid: the label's score minus its score with the cell "
            "filled with the image's mean colour"
        )
    return {
        "label": prediction.label,
        "score": base,
        "modalities": _shares(work, had, base, scored),
        "words": word_scores,
        "regions": regions,
        "method": method,
    }


def _shares(
    work: PostBatchWork, had: list[str], base: float, scored: dict[tuple[str, Any], float | None]
) -> dict[str, Any]:
    """Each modality's share of the decision: how far the label's score falls when it is
    removed, as a fraction of both falls (all of it for the only modality a post had)."""
    used = work.modalities
    if len(had) < 2:
        shares = {m: (1.0 if m in had else 0.0) for m in used}
        return {"had": had, "shares": shares, "alone": None}
    alone = {m: scored.get(("alone", m)) for m in MODALITIES}
    falls = {m: max(0.0, base - (alone[o] if alone[o] is not None else 0.0)) for m, o in
             (("text", "image"), ("image", "text"))}  # fmt: skip
    total = sum(falls.values())
    shares = {m: round(falls[m] / total, 6) if total > 0 else 0.5 for m in MODALITIES}
    return {"had": had, "shares": shares, "alone": alone}


def _modality_method(work: PostBatchWork, had: list[str]) -> str:
    if len(work.modalities) == 1:
        return f"the model reads {work.modalities[0]} only"
    if len(had) == 1:
        return f"the post had {had[0]} only: the fusion read that alone"
    return (
        "modality ablation: each modality's share is how far the label's score falls without "
        "it, over both falls; 'alone' is the label's score from each modality by itself (for "
        "a late fusion, that branch's own probability)"
    )


def _copy(prediction: Prediction) -> Prediction:
    return Prediction(**{**vars(prediction), "explanation": None, "explained": True})
