"""How much do images add? Text-only, image-only and fused predictions compared on the same
posts, split by whether the dataset's own text and image annotations agree.

MVSA annotates the text and the image of each post separately. Where they disagree, the
question is which modality the fused model follows and which annotation the final label
sides with; and the posts whose prediction changed when the image was added show, one by
one, what the image did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from sentimodal.analysis.explained_posts import with_explanations
from sentimodal.analysis.plots import gate_distributions, grouped_bar_chart
from sentimodal.analysis.report import Report
from sentimodal.evaluation.metrics import macro_f1

AGREE = "text and image agree"
TEXT_POLAR = "text polar, image neutral"
IMAGE_POLAR = "image polar, text neutral"
OPPOSITE = "text and image opposite"
UNKNOWN = "modality labels missing"
AGREEMENT_ORDER: tuple[str, ...] = (AGREE, TEXT_POLAR, IMAGE_POLAR, OPPOSITE, UNKNOWN)
DISAGREEING: tuple[str, ...] = (TEXT_POLAR, IMAGE_POLAR, OPPOSITE)
ALL_DISAGREEING = "all disagreeing"

IMAGE_FIXED = "image fixed it"
IMAGE_BROKE = "image broke it"
STILL_WRONG = "changed, still wrong"

TEXT_MODEL, IMAGE_MODEL, FUSED_MODEL = "text only", "image only", "fused"


def as_labels(values: ArrayLike, labels: Sequence[str]) -> np.ndarray:
    """Label strings from label strings or integer class indices into ``labels``.

    Missing values (None/NaN) stay None, so annotations absent for some posts are kept apart.
    """
    series = pd.Series(list(np.asarray(values, dtype=object)), dtype=object)
    missing = series.isna()
    present = series[~missing]
    if len(present) and all(isinstance(v, int | np.integer) for v in present):
        codes = present.astype(int)
        if codes.min() < 0 or codes.max() >= len(labels):
            raise ValueError(f"class index out of range for {len(labels)} labels")
        series[~missing] = [labels[c] for c in codes]
    else:
        series[~missing] = present.astype(str)
        unknown = sorted(set(series[~missing]) - set(labels))
        if unknown:
            raise ValueError(f"labels {unknown} are not in the label list {list(labels)}")
    series[missing] = None
    return series.to_numpy(dtype=object)


def agreement_category(
    text_label: ArrayLike, image_label: ArrayLike, neutral: str = "neutral"
) -> np.ndarray:
    """Per post: do the text and image annotations agree, and if not, which one is polar?"""
    text = pd.Series(list(np.asarray(text_label, dtype=object)), dtype=object)
    image = pd.Series(list(np.asarray(image_label, dtype=object)), dtype=object)
    if len(text) != len(image):
        raise ValueError(f"{len(text)} text labels but {len(image)} image labels")
    missing = text.isna() | image.isna() | (text == "") | (image == "")
    categories = np.select(
        [missing, text == image, image == neutral, text == neutral],
        [UNKNOWN, AGREE, TEXT_POLAR, IMAGE_POLAR],
        default=OPPOSITE,
    )
    return categories.astype(object)


def modality_accuracy(
    y_true: np.ndarray, predictions: Mapping[str, np.ndarray], labels: Sequence[str]
) -> pd.DataFrame:
    """Accuracy and macro-F1 of each model on the same posts."""
    rows = []
    for model, predicted in predictions.items():
        correct = predicted == y_true
        rows.append(
            {
                "model": model,
                "posts": len(y_true),
                "correct": int(correct.sum()),
                "accuracy": float(correct.mean()) if len(y_true) else float("nan"),
                "macro_f1": macro_f1(y_true, predicted, labels),
            }
        )
    return pd.DataFrame(rows)


def accuracy_by_agreement(
    y_true: np.ndarray, predictions: Mapping[str, np.ndarray], categories: np.ndarray
) -> pd.DataFrame:
    """Accuracy of each model within each agreement category (categories with posts only)."""
    rows = []
    for category in AGREEMENT_ORDER:
        inside = categories == category
        if not inside.any():
            continue
        row: dict[str, Any] = {
            "agreement": category,
            "posts": int(inside.sum()),
            "share": float(inside.mean()),
        }
        for model, predicted in predictions.items():
            row[model] = float((predicted[inside] == y_true[inside]).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def _disagreement_masks(categories: np.ndarray) -> list[tuple[str, np.ndarray]]:
    masks = [(c, categories == c) for c in DISAGREEING if (categories == c).any()]
    if len(masks) > 1:
        masks.append((ALL_DISAGREEING, np.isin(categories, DISAGREEING)))
    return masks


def truth_when_disagreeing(
    y_true: np.ndarray, text_label: np.ndarray, image_label: np.ndarray, categories: np.ndarray
) -> pd.DataFrame:
    """Where the annotations disagree, which one does the final label side with?"""
    rows = []
    for category, inside in _disagreement_masks(categories):
        truth = y_true[inside]
        is_text, is_image = truth == text_label[inside], truth == image_label[inside]
        rows.append(
            {
                "agreement": category,
                "posts": int(inside.sum()),
                "label = text label": float(is_text.mean()),
                "label = image label": float(is_image.mean()),
                "label = neither": float((~is_text & ~is_image).mean()),
            }
        )
    return pd.DataFrame(rows)


def modality_following(
    y_true: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    text_label: np.ndarray,
    image_label: np.ndarray,
    categories: np.ndarray,
) -> pd.DataFrame:
    """Where the annotations disagree, whose label does each model predict, and is it right?"""
    rows = []
    for category, inside in _disagreement_masks(categories):
        for model, predicted in predictions.items():
            chosen = predicted[inside]
            follows_text = chosen == text_label[inside]
            follows_image = chosen == image_label[inside]
            rows.append(
                {
                    "agreement": category,
                    "model": model,
                    "posts": int(inside.sum()),
                    "follows text": float(follows_text.mean()),
                    "follows image": float(follows_image.mean()),
                    "follows neither": float((~follows_text & ~follows_image).mean()),
                    "accuracy": float((chosen == y_true[inside]).mean()),
                }
            )
    return pd.DataFrame(rows)


def changed_predictions(
    y_true: np.ndarray,
    pred_text: np.ndarray,
    pred_fused: np.ndarray,
    ids: ArrayLike | None = None,
    texts: ArrayLike | None = None,
    images: ArrayLike | None = None,
) -> pd.DataFrame:
    """Posts where adding the image changed the text-only prediction, and whether it helped."""
    n = len(y_true)
    changed = pred_text != pred_fused
    frame = pd.DataFrame(
        {
            "id": np.asarray(ids, dtype=object) if ids is not None else np.arange(n).astype(str),
            "text": np.asarray(texts, dtype=object) if texts is not None else [""] * n,
            "image": np.asarray(images, dtype=object) if images is not None else [None] * n,
            "label": y_true,
            TEXT_MODEL: pred_text,
            FUSED_MODEL: pred_fused,
        }
    )[changed]
    fused_right = frame[FUSED_MODEL] == frame["label"]
    text_right = frame[TEXT_MODEL] == frame["label"]
    frame["outcome"] = np.select(
        [fused_right, text_right], [IMAGE_FIXED, IMAGE_BROKE], default=STILL_WRONG
    )
    return frame.reset_index(drop=True)


@dataclass
class ModalityAnalysis:
    """All tables of the analysis, plus the headline numbers in ``summary``."""

    accuracy: pd.DataFrame
    changed: pd.DataFrame
    summary: dict[str, Any]
    by_agreement: pd.DataFrame | None = None
    truth: pd.DataFrame | None = None
    following: pd.DataFrame | None = None


def analyse_modalities(
    y_true: ArrayLike,
    pred_text: ArrayLike,
    pred_image: ArrayLike,
    pred_fused: ArrayLike,
    labels: Sequence[str],
    *,
    text_label: ArrayLike | None = None,
    image_label: ArrayLike | None = None,
    ids: ArrayLike | None = None,
    texts: ArrayLike | None = None,
    images: ArrayLike | None = None,
) -> ModalityAnalysis:
    """Compare text-only, image-only and fused predictions of the same posts.

    Predictions and labels are label strings or class indices into ``labels``;
    ``text_label``/``image_label`` are the dataset's per-modality annotations (optional).
    """
    truth = as_labels(y_true, labels)
    predictions = {
        TEXT_MODEL: as_labels(pred_text, labels),
        IMAGE_MODEL: as_labels(pred_image, labels),
        FUSED_MODEL: as_labels(pred_fused, labels),
    }
    for name, predicted in predictions.items():
        if len(predicted) != len(truth):
            raise ValueError(f"{name}: {len(predicted)} predictions for {len(truth)} posts")
    accuracy = modality_accuracy(truth, predictions, labels)
    changed = changed_predictions(
        truth, predictions[TEXT_MODEL], predictions[FUSED_MODEL], ids, texts, images
    )
    outcomes = changed["outcome"].value_counts()
    by_model = accuracy.set_index("model")["accuracy"]
    summary: dict[str, Any] = {
        "posts": len(truth),
        **{f"accuracy {model}": float(by_model[model]) for model in predictions},
        "fused minus text only": float(by_model[FUSED_MODEL] - by_model[TEXT_MODEL]),
        "fused minus image only": float(by_model[FUSED_MODEL] - by_model[IMAGE_MODEL]),
        "changed by the image": len(changed),
        IMAGE_FIXED: int(outcomes.get(IMAGE_FIXED, 0)),
        IMAGE_BROKE: int(outcomes.get(IMAGE_BROKE, 0)),
        STILL_WRONG: int(outcomes.get(STILL_WRONG, 0)),
    }
    analysis = ModalityAnalysis(accuracy=accuracy, changed=changed, summary=summary)
    if text_label is not None and image_label is not None:
        text_ann, image_ann = as_labels(text_label, labels), as_labels(image_label, labels)
        if len(text_ann) != len(truth) or len(image_ann) != len(truth):
            raise ValueError("text_label and image_label must have one entry per post")
        categories = agreement_category(text_ann, image_ann)
        analysis.by_agreement = accuracy_by_agreement(truth, predictions, categories)
        analysis.truth = truth_when_disagreeing(truth, text_ann, image_ann, categories)
        analysis.following = modality_following(truth, predictions, text_ann, image_ann, categories)
        summary["posts with disagreeing annotations"] = int(np.isin(categories, DISAGREEING).sum())
    return analysis


def add_modality_analysis(
    report: Report,
    analysis: ModalityAnalysis,
    max_examples: int = 12,
    gates: Mapping[str, ArrayLike] | None = None,
    explain: Callable[[pd.DataFrame], Mapping[str, Mapping[str, Any]]] | None = None,
) -> Report:
    """The analysis as a report section: headline sentence, tables, pictures, example posts
    (with ``explain``, the fused model's explanation of each shown post: post id ->
    explanation, see :mod:`sentimodal.inference.explanations`)."""
    s = analysis.summary
    report.add_section("How much do images add?")
    report.add_markdown(
        f"On the same {s['posts']} posts, text only reaches accuracy "
        f"**{s['accuracy text only']:.3f}**, image only **{s['accuracy image only']:.3f}**, "
        f"and the fused model **{s['accuracy fused']:.3f}** "
        f"({100 * s['fused minus text only']:+.1f} points over text only). "
        f"Adding the image changed {s['changed by the image']} predictions: "
        f"{s[IMAGE_FIXED]} fixed, {s[IMAGE_BROKE]} broken, {s[STILL_WRONG]} changed but "
        "still wrong."
    )
    report.add_table(analysis.accuracy, caption="Accuracy of each modality on the same posts")
    if analysis.by_agreement is not None and not analysis.by_agreement.empty:
        table = analysis.by_agreement
        values = table.set_index(table["agreement"] + " (n=" + table["posts"].astype(str) + ")")[
            list(analysis.accuracy["model"])
        ]
        report.add_figure(
            grouped_bar_chart(
                values,
                title="Accuracy by agreement of the text and image annotations",
                xlabel="accuracy",
            ),
            "accuracy-by-agreement",
            "Accuracy of each model on posts grouped by whether the dataset's text and image "
            "annotations agree.",
        )
        report.add_table(table, caption="Accuracy by agreement of the annotations")
    if analysis.truth is not None and not analysis.truth.empty:
        report.add_markdown(
            "Where the text and image annotations disagree: which one the final label sides "
            "with, and which one each model follows."
        )
        report.add_table(analysis.truth, caption="Which annotation the final label sides with")
        report.add_table(analysis.following, caption="Which annotation each model follows")
    if gates:
        report.add_figure(
            gate_distributions(gates, title="Gate values per modality (fused model)"),
            "gate-values",
            "How much of each modality the gated fusion lets through, over all posts.",
        )
    columns = ["id", "text", "label", TEXT_MODEL, FUSED_MODEL]
    for outcome in (IMAGE_FIXED, IMAGE_BROKE):
        posts = analysis.changed[analysis.changed["outcome"] == outcome]
        if posts.empty:
            continue
        total, posts = len(posts), posts.head(max_examples)
        extra: list[str] = []
        pictures: dict[str, bytes] = {}
        if explain is not None:
            posts, extra, pictures = with_explanations(posts, explain(posts))
        report.add_examples(
            posts,
            columns=[*columns, *extra],
            caption=f"Posts where the {outcome} ({len(posts)} of {total})",
            max_rows=max_examples,
            pictures=pictures,
        )
    return report
