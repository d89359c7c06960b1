"""Explanations shown beside example posts in a report: the modality shares, the words that
spoke for and against the label, and the image with its heatmap as the post's thumbnail."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import pandas as pd
from PIL import Image

from sentimodal.analysis.report import image_thumbnail
from sentimodal.errors import RecordError
from sentimodal.inference.heatmap import region_overlay_png
from sentimodal.training.estimator import SentimentModel

#: words listed on each side of a post's label
TOP_WORDS = 3
SHARES = "why: shares"
WORDS = "why: words for / against"


def explain_frame(model: SentimentModel, posts: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Post id -> ``model``'s explanation of it (posts with ``id``, ``text``, ``image``)."""
    if posts.empty:
        return {}
    records = [
        {"id": str(r["id"]), "text": r.get("text") or "", "image": r.get("image") or ""}
        for r in posts.to_dict("records")
    ]
    explained = model.explain_posts(records, workers=0)
    return {p.id: p.explanation for p in explained if p.explanation is not None}


def explanation_cells(explanation: Mapping[str, Any] | None) -> dict[str, str]:
    """The two report columns of one explanation (empty when there is none)."""
    if explanation is None:
        return {SHARES: "", WORDS: ""}
    shares = explanation["modalities"]["shares"]
    scored = [w for w in explanation["words"] or [] if w["score"] is not None]
    ranked = sorted(scored, key=lambda w: w["score"], reverse=True)
    pro = [w["word"] for w in ranked[:TOP_WORDS] if w["score"] > 0]
    con = [w["word"] for w in ranked[::-1][:TOP_WORDS] if w["score"] < 0]
    return {
        SHARES: ", ".join(f"{m} {v:.0%}" for m, v in shares.items()),
        WORDS: f"{' '.join(pro) or '-'} / {' '.join(con) or '-'}",
    }


def with_explanations(
    posts: pd.DataFrame, explanations: Mapping[str, Mapping[str, Any]]
) -> tuple[pd.DataFrame, list[str], dict[str, bytes]]:
    """``posts`` with the explanation columns, their names, and each post's heatmap over its
    thumbnail (post id -> PNG) where it has image regions."""
    cells = [explanation_cells(explanations.get(str(i))) for i in posts["id"]]
    frame = posts.assign(**{name: [c[name] for c in cells] for name in (SHARES, WORDS)})
    pictures: dict[str, bytes] = {}
    for post_id, image in zip(posts["id"].astype(str), posts["image"], strict=True):
        regions = (explanations.get(post_id) or {}).get("regions")
        if regions is None:
            continue
        try:
            thumbnail = Image.open(io.BytesIO(image_thumbnail(image)))
        except RecordError:
            continue
        pictures[post_id] = region_overlay_png(thumbnail, regions)
    return frame, [SHARES, WORDS], pictures
