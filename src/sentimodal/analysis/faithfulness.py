"""Are explanations faithful? Removing what an explanation ranks highest must lower the
label's score more than removing as much at random.

For each explained post: its ``k`` top-scored words are removed together (or its ``k``
top-scored image cells greyed out together), the post is predicted again, and the fall of
the explained label's score is compared with the mean fall over ``draws`` random choices of
``k`` words (cells) of the same post. Averaged over posts, a faithful ranking's fall is
larger; the difference and its paired 95% interval say by how much.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from sentimodal.features.engine import Engine, LocalEngine, Row
from sentimodal.inference.explanations import mask_cells, without_words, words_of
from sentimodal.inference.posts import PostBatchWork, Prediction, predict_rows


def faithfulness(
    work: PostBatchWork,
    rows: Sequence[Row],
    explained: Sequence[Prediction],
    pictures: dict[int, Any],
    *,
    k: int = 3,
    draws: int = 3,
    seed: int = 0,
    engine: Engine | None = None,
) -> dict[str, dict[str, Any]]:
    """Per part (``words``, ``regions``): posts, mean fall of the label's score with the top
    ``k`` removed, with ``k`` random ones removed, their difference and its 95% interval.
    ``pictures``: row index -> the decoded image the regions were computed on."""
    rng = random.Random(seed)
    variants: list[Row] = []
    owners: list[tuple[int, str, bool]] = []  # (post, part, top?)

    def add(owner: int, part: str, top: bool, text: str, image: Any) -> None:
        variants.append(
            {"position": len(variants), "id": str(len(variants)), "text": text, "image": image}
        )
        owners.append((owner, part, top))

    for i, (row, prediction) in enumerate(zip(rows, explained, strict=True)):
        exp = prediction.explanation
        if exp is None:
            continue
        text, image = str(row.get("text") or ""), pictures.get(i, row.get("image"))
        words = words_of(text)
        scored = [j for j, w in enumerate(exp["words"] or []) if w["score"] is not None]
        if len(scored) > k:
            top = set(sorted(scored, key=lambda j: exp["words"][j]["score"], reverse=True)[:k])
            add(i, "words", True, without_words(words, top), image)
            for _ in range(draws):
                add(i, "words", False, without_words(words, set(rng.sample(scored, k))), image)
        regions = exp["regions"]
        if regions is not None and i in pictures:
            g = regions["rows"]
            cells = [(r, c) for r in range(g) for c in range(g)]
            values = {cell: regions["scores"][cell[0]][cell[1]] or 0.0 for cell in cells}
            top_cells = sorted(cells, key=lambda cell: values[cell], reverse=True)[:k]
            add(i, "regions", True, text, mask_cells(pictures[i], top_cells, g))
            for _ in range(draws):
                add(i, "regions", False, text, mask_cells(pictures[i], rng.sample(cells, k), g))
    predicted = predict_rows(work, variants, engine=engine or LocalEngine(workers=0))
    falls: dict[tuple[int, str], dict[bool, list[float]]] = {}
    for (owner, part, top), p in zip(owners, predicted, strict=True):
        if p.error is not None or p.scores is None:
            continue
        exp = explained[owner].explanation
        fall = exp["score"] - p.scores[exp["label"]]
        falls.setdefault((owner, part), {True: [], False: []})[top].append(fall)
    return {part: _summary(falls, part) for part in ("words", "regions")}


def _summary(falls: dict[tuple[int, str], dict[bool, list[float]]], part: str) -> dict[str, Any]:
    pairs = [
        (f[True][0], float(np.mean(f[False])))
        for (_, p), f in falls.items()
        if p == part and f[True] and f[False]
    ]
    if not pairs:
        return {"posts": 0}
    top, rand = np.array(pairs).T
    diff = top - rand
    half = 1.96 * diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
    return {
        "posts": len(diff),
        "fall_top": float(top.mean()),
        "fall_random": float(rand.mean()),
        "difference": float(diff.mean()),
        "difference_ci95": [float(diff.mean() - half), float(diff.mean() + half)],
        "share_of_posts_top_falls_more": float((diff > 0).mean()),
    }
