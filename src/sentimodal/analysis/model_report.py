"""The report of trained models: what a person needs to judge one model, or several side by
side, by looking rather than reading JSON.

One model: its run config, metrics per split, confusion heat maps, training curves, the gates
of gated fusions, and (for embedding heads) a t-SNE map of where its outputs land. Several
models: a comparison table and chart, and the modality analysis "how much do images add"
from a text-only, an image-only and a fused model predicting the same test posts.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from sentimodal.analysis.calibration_report import add_calibration_section
from sentimodal.analysis.embedding_map import embedding_map_figure, tsne_coordinates
from sentimodal.analysis.explained_posts import explain_frame
from sentimodal.analysis.modality import ModalityAnalysis, add_modality_analysis, analyse_modalities
from sentimodal.analysis.plots import (
    confusion_heatmap,
    gate_distributions,
    model_comparison,
    training_curves,
)
from sentimodal.analysis.report import Report
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.training.estimator import SentimentModel

Metrics = Mapping[str, Any]
#: t-SNE's OpenMP threads spin while they wait: on a busy 2-core machine, 2 threads took 33 s
#: for a 110-point map and 1 thread 1.7 s (1,000 points: 88 s vs 15 s), so the map uses one
TSNE_THREADS = 1


def metrics_frame(metrics: Mapping[str, Metrics]) -> pd.DataFrame:
    """One row per split: overall figures and per-class accuracy (recall)."""
    rows = []
    for split, m in metrics.items():
        row: dict[str, Any] = {
            "split": split,
            "posts": m["n"],
            "accuracy": m["accuracy"],
            "macro-F1": m["macro_f1"],
            "weighted-F1": m["weighted_f1"],
        }
        row.update({f"recall {label}": m["per_class"].get(label) for label in m["labels"]})
        row["skipped (no input)"] = m.get("n_missing", 0)
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_frame(results: Mapping[str, Metrics]) -> pd.DataFrame:
    """One row per model (name -> metrics of one split)."""
    return pd.DataFrame(
        [
            {
                "model": name,
                "posts": m["n"],
                "accuracy": m["accuracy"],
                "macro_f1": m["macro_f1"],
                "weighted_f1": m["weighted_f1"],
            }
            for name, m in results.items()
        ]
    )


def gate_values(model: SentimentModel) -> dict[str, np.ndarray] | None:
    """The learned gate vector of each modality, for gated fusions (None otherwise)."""
    gates = getattr(model.network_, "gates", None)
    if not callable(gates):
        return None
    return {name: gate.detach().float().cpu().numpy() for name, gate in gates().items()}


def label_space_outputs(
    model: SentimentModel, dataset: PreparedDataset, split: str
) -> tuple[list[str], np.ndarray]:
    """Ids and raw outputs (vectors in the label space) of an embedding-head model."""
    return model.vectors(dataset, split)


def training_summary(model: SentimentModel, dataset: PreparedDataset) -> str:
    """What was trained on what, in one sentence a person reads first."""
    run = model.run_
    inputs = []
    if run.uses_text:
        how = "fine-tuned" if run.fine_tunes else "frozen"
        inputs.append(f"text `{run.text_encoder}` ({how})")
    if run.uses_image:
        inputs.append(f"image `{run.image_encoder}` (frozen)")
    sizes = ", ".join(f"{split} {len(dataset.split(split))}" for split in dataset.splits)
    solved = solved_record(model)
    if solved is not None:  # the linear classifier: solved, no epochs
        epochs = f"solved as logistic regression with C={solved['c']:g}"
    elif model.best_epoch_ is None:
        epochs = f"{len(model.history_)} epochs on {' + '.join(model.train_splits_)}, no validation"
    else:
        epochs = f"best validation epoch {model.best_epoch_} of {len(model.history_)} trained"
    article = "an" if run.head == "embedding" else "a"
    return (
        f"Model `{run.model}` with {article} {run.head} head, reading {' and '.join(inputs)}; "
        f"trained on `{dataset.root}` ({len(dataset.examples)} posts: {sizes}; labels "
        f"{', '.join(model.labels_)}); {epochs}."
    )


def solved_record(model: SentimentModel) -> dict[str, float] | None:
    """The one history row of a network solved in closed form (the linear classifier's chosen
    C), None for one trained by epochs: a report shows no curves or epoch settings for it."""
    history = model.history_
    return history[0] if len(history) == 1 and "c" in history[0] else None


def headline_frame(metrics: Mapping[str, Metrics]) -> pd.DataFrame:
    """Per split: the model's accuracy and F1 beside always predicting the majority label."""
    rows = []
    for split, m in metrics.items():
        majority = m.get("majority_baseline") or {}
        rows.append(
            {
                "split": split,
                "posts": m["n"],
                "accuracy": m["accuracy"],
                "95% interval": _interval(m),
                "macro-F1": m["macro_f1"],
                "weighted-F1": m["weighted_f1"],
                "majority accuracy": majority.get("accuracy"),
                "majority label": majority.get("label"),
            }
        )
    return pd.DataFrame(rows)


def _interval(metrics: Metrics) -> str | None:
    interval = metrics.get("accuracy_ci95")
    return None if interval is None else f"{interval[0]:.3f}-{interval[1]:.3f}"


def baseline_warnings(metrics: Mapping[str, Metrics]) -> list[str]:
    """Splits on which always answering the majority label is as accurate as the model: a
    headline must say so rather than let the model's number stand alone."""
    warnings = []
    for split, m in metrics.items():
        majority = m.get("majority_baseline") or {}
        if majority.get("accuracy") is not None and majority["accuracy"] >= m["accuracy"]:
            verb = "ties" if majority["accuracy"] == m["accuracy"] else "beats"
            warnings.append(
                f"on the {split} split, always answering {majority['label']!r} {verb} the "
                f"model ({majority['accuracy']:.3f} vs {m['accuracy']:.3f} accuracy)"
            )
    return warnings


def add_model_summary(
    report: Report, model: SentimentModel, dataset: PreparedDataset, metrics: Mapping[str, Metrics]
) -> Report:
    """The top of a model's report: what was trained on what, the headline numbers against the
    majority baseline, and the confusion matrix of the split that matters most."""
    report.add_markdown(training_summary(model, dataset))
    for warning in model.warnings_:
        report.add_markdown(f"**Warning:** {warning}.")
    for warning in baseline_warnings(metrics):
        report.add_markdown(f"**Warning:** {warning}.")
    if metrics:
        report.add_table(headline_frame(metrics), caption="Headline metrics")
        split = "test" if "test" in metrics else next(iter(metrics))
        m = metrics[split]
        report.add_figure(
            confusion_heatmap(m["confusion"], m["labels"], title=f"{split} split"),
            f"confusion-summary-{split}",
            f"Confusion matrix on the {split} split: counts and share of each true class.",
        )
    return report


def add_model_details(
    report: Report,
    model: SentimentModel,
    dataset: PreparedDataset,
    metrics: Mapping[str, Metrics],
    title: str,
    *,
    embedding_split: str = "test",
    seed: int = 0,
    summary: bool = True,
    confusions: bool = True,
) -> Report:
    """One model's section, read top-down: (with ``summary``) what was trained and how well,
    then per-class metrics and every split's confusion, curves, gates, embedding map, and the
    settings that act on the run last."""
    run = model.run_
    report.add_section(title)
    if summary:
        report.add_markdown(training_summary(model, dataset))
    if metrics:
        report.add_table(metrics_frame(metrics), caption=f"Metrics per split: {title}")
        for split, m in (metrics if confusions else {}).items():
            report.add_figure(
                confusion_heatmap(m["confusion"], m["labels"], title=f"{title}, {split} split"),
                f"confusion-{title}-{split}",
                f"Confusion matrix on the {split} split: counts and share of each true class.",
            )
    solved = solved_record(model) is not None
    if model.history_ and not solved:
        report.add_figure(
            training_curves(model.history_, title=title),
            f"curves-{title}",
            "Loss and accuracy per epoch; the dotted line marks the best validation epoch, "
            "whose weights the model keeps.",
        )
    _add_gates(report, model, title)
    _add_attention_gate(report, model, title)
    if model.label_space_ is not None and embedding_split in dataset.splits:
        _add_embedding_map(report, model, dataset, embedding_split, title, seed)
    report.add_config(
        run.applicable(solved=solved), caption=f"Settings that act on this run: {title}"
    )
    return report


def _add_gates(report: Report, model: SentimentModel, title: str) -> None:
    stats, values = model.gate_stats(), gate_values(model)
    if not stats:
        return
    report.add_markdown(
        "The gated fusion multiplies each text and image feature by a learned gate: the "
        "gates say how much of each modality the model lets through. GL2 gates start at 0.5 "
        "and GL1 gates at 1, so gates still close to their start mean training hardly "
        "re-weighted that modality."
    )
    table = pd.DataFrame([{"modality": name, **s} for name, s in stats.items()])
    report.add_table(table, caption=f"Gate statistics: {title}")
    start = 1.0 if getattr(model.network_.config, "gate", "gl2") == "gl1" else 0.5
    for warning in gate_warnings(stats, start):
        report.add_markdown(f"**Warning:** {warning}.")
    if values:
        report.add_figure(
            gate_distributions(values, title=f"Gate values per modality: {title}"),
            f"gates-{title}",
            "Distribution of the learned gate values of each modality (one per feature).",
        )


#: how close to its start a gate may end and still count as unmoved by training
GATE_UNMOVED = 0.02
#: the share of a modality's gates near zero that counts as that modality shut out
GATE_SHUT = 0.9


def gate_warnings(stats: Mapping[str, Mapping[str, float]], start: float) -> list[str]:
    """Gates that stayed shut, or stayed where they started: that modality's weight was not
    learned, so the fusion's numbers say little about it."""
    warnings = []
    for name, s in stats.items():
        if s["near_zero"] >= GATE_SHUT:
            warnings.append(
                f"{s['near_zero']:.0%} of the {name} gates are near zero: the model shuts "
                f"the {name} out"
            )
        elif abs(s["mean"] - start) < GATE_UNMOVED and s["std"] < GATE_UNMOVED:
            warnings.append(
                f"the {name} gates stayed at their start ({start:g}, mean {s['mean']:.3f}): "
                f"training hardly re-weighted the {name}"
            )
    return warnings


def _add_attention_gate(report: Report, model: SentimentModel, title: str) -> None:
    """How far a token-level fusion (``cross``) let the image regions into the words."""
    stats = getattr(getattr(model.network_, "text", None), "gate_stats", None)
    if not callable(stats):
        return
    gate = stats()
    report.add_markdown(
        "The text branch's words attend over the image's regions; a learned gate per channel "
        "(|tanh|, 0 = text alone, 1 = fully open) decides how much of what they see joins "
        f"them. It starts shut; after training its mean is **{gate['mean']:.3f}** and its "
        f"largest **{gate['max']:.3f}**."
    )
    report.add_table(pd.DataFrame([gate]), caption=f"Image gate of the cross-attention: {title}")
    if gate["max"] < GATE_UNMOVED:
        report.add_markdown(
            "**Warning:** the image gate stayed shut: this model reads the text alone."
        )


def _add_embedding_map(
    report: Report,
    model: SentimentModel,
    dataset: PreparedDataset,
    split: str,
    title: str,
    seed: int,
) -> None:
    ids, outputs = label_space_outputs(model, dataset, split)
    if len(ids) < 4:
        report.add_markdown(f"Too few {split} posts ({len(ids)}) for a t-SNE map.")
        return
    truth = dataset.examples.set_index(dataset.examples["id"].astype(str))["label"]
    with threadpool_limits(limits=TSNE_THREADS):
        coords = tsne_coordinates(outputs, metric="cosine", seed=seed)
    report.add_figure(
        embedding_map_figure(
            coords,
            truth.loc[ids].tolist(),
            title=f"{title}: outputs on the {split} split in the label space",
            colour_title="true label",
        ),
        f"embedding-{title}",
        f"t-SNE of the vectors the model predicts for the {split} posts, coloured by the true "
        f"label; the predicted label is the nearest {model.label_space_.source} label vector.",
    )


def model_report(
    model: SentimentModel,
    dataset: PreparedDataset,
    metrics: Mapping[str, Metrics] | None = None,
    title: str = "Model report",
) -> Report:
    """The report of one trained model; ``metrics`` (split -> evaluate()) are computed when
    not given."""
    metrics = model.evaluate_splits(dataset) if metrics is None else metrics
    run = model.run_
    report = add_model_summary(Report(title), model, dataset, metrics)
    add_calibration_section(report, model, metrics)
    split = "test" if "test" in metrics else next(iter(metrics), None)
    if set(model.network_.branches()) == {"text", "image"} and split is not None:
        # A fusion whose branches also predict alone (late, cross): what each modality adds.
        add_modality_section(
            report, model.branch("text"), model.branch("image"), model, dataset, split
        )
    section = f"Details: {run.model} model, {run.head} head"
    return add_model_details(report, model, dataset, metrics, title=section, summary=False)


def add_comparison(
    report: Report, results: Mapping[str, Metrics], split: str = "test"
) -> pd.DataFrame:
    """Several models' metrics on the same split as a table and a chart; returns the table."""
    table = comparison_frame(results)
    report.add_section(f"Model comparison ({split} split)")
    best = table.loc[table["accuracy"].idxmax()]
    report.add_markdown(
        f"Best accuracy: **{best['model']}** with {best['accuracy']:.3f} "
        f"(macro-F1 {best['macro_f1']:.3f}) on {best['posts']} {split} posts."
    )
    report.add_table(table, caption=f"Metrics of each model on the {split} split")
    report.add_figure(
        model_comparison(table, title=f"Accuracy and macro-F1 on the {split} split"),
        f"comparison-{split}",
        "Accuracy and macro-F1 of each model on the same posts.",
    )
    return table


def modality_analysis(
    text_model: SentimentModel,
    image_model: SentimentModel,
    fused_model: SentimentModel,
    dataset: PreparedDataset,
    split: str = "test",
) -> ModalityAnalysis:
    """Text-only, image-only and fused predictions of the posts all three can predict,
    with the dataset's own text/image annotations for the agreement split."""
    frames = [m.predict_frame(dataset, split) for m in (text_model, image_model, fused_model)]
    posts = dataset.split(split)
    posts = posts.assign(id=posts["id"].astype(str))
    common = set.intersection(*(set(f["id"]) for f in frames))
    posts = posts[posts["id"].isin(common)].reset_index(drop=True)
    predicted = [f.set_index("id").loc[posts["id"], "label"].to_numpy() for f in frames]
    return analyse_modalities(
        posts["label"].to_numpy(),
        *predicted,
        fused_model.classes_,
        text_label=posts["text_label"].to_numpy(),
        image_label=posts["image_label"].to_numpy(),
        ids=posts["id"].to_numpy(),
        texts=dataset.texts(posts),
        images=posts["image"].to_numpy(),
    )


def add_modality_section(
    report: Report,
    text_model: SentimentModel,
    image_model: SentimentModel,
    fused_model: SentimentModel,
    dataset: PreparedDataset,
    split: str = "test",
    max_examples: int = 12,
    show_gates: bool = True,
    explain: bool = True,
) -> ModalityAnalysis:
    """ "How much do images add?" for three models; ``show_gates`` adds the fused model's gate
    values (leave it off when the fused model's own section shows them); ``explain`` the
    fused model's explanation of each post the image fixed or broke."""
    analysis = modality_analysis(text_model, image_model, fused_model, dataset, split)
    gates = gate_values(fused_model) if show_gates else None
    add_modality_analysis(
        report,
        analysis,
        max_examples=max_examples,
        gates=gates,
        explain=partial(explain_frame, fused_model) if explain else None,
    )
    return analysis
