"""`sentimodal crossval` as a view of an experiment: k-fold cross-validation of heads and image
encoders, with the majority and logistic-regression baselines, for any label set.

The command's options name a grid (image encoders x heads) and baselines; :func:`crossval_spec`
turns them into an :class:`ExperimentSpec` under the ``kfold`` protocol, so the folds, the
training, the baselines and the metrics are the experiment's own code, and
``sentimodal experiment`` with the same spec gives the same numbers. :func:`fold_rows` reads
the finished experiment back as the command's per-fold table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sentimodal.analysis.experiment import MODEL_SCORE, ExperimentSpec
from sentimodal.analysis.experiment.spec import expand_grid

#: figures reported per fold (and as mean / std over folds)
FIGURES: tuple[str, ...] = ("accuracy", "macro_f1", "weighted_f1")


@dataclass(frozen=True)
class Head:
    """One head the command compares: the grid values it sets and its name in tables."""

    title: str
    values: dict[str, Any]


#: the heads by option name; ``soft`` is the softmax head trained on label distributions
HEADS: dict[str, Head] = {
    "softmax": Head("softmax head", {"head": "softmax", "train.soft_targets": False}),
    "embedding": Head("embedding head", {"head": "embedding", "train.soft_targets": False}),
    "soft": Head("softmax head, soft targets", {"head": "softmax", "train.soft_targets": True}),
}


def crossval_spec(
    *,
    model: str,
    heads: Sequence[str],
    image_encoders: Sequence[str],
    text_encoder: str,
    label_source: str,
    folds: int,
    epochs: int,
    seed: int,
    logreg: bool,
    c_values: Sequence[float],
) -> ExperimentSpec:
    """The experiment the command's options describe (one seed; the folds give the spread)."""
    encoders = list(image_encoders) if model != "text" else []
    grid = []
    for name in heads:
        cell: dict[str, list[Any]] = {k: [v] for k, v in HEADS[name].values.items()}
        if encoders:
            cell = {"image_encoder": encoders, **cell}
        grid.append(cell)
    baselines: list[Any] = ["majority"]
    if logreg and model == "image":
        baselines += [
            {"name": "logreg", "image_encoder": e, "text_encoder": None} for e in encoders
        ]
    return ExperimentSpec(
        name="crossval",
        description=f"{folds}-fold cross-validation of the {model} model: "
        f"{', '.join(HEADS[h].title for h in heads)}",
        base={
            "model": model,
            "text_encoder": text_encoder,
            "label_source": label_source,
            "feature_workers": 0,
            "train": {"epochs": epochs},
        },
        grid=grid,
        seeds=[seed],
        protocol={"kind": "kfold", "folds": folds, "seed": seed},
        baselines=baselines,
        baseline_options={"c_values": list(c_values)},
    )


def row_titles(spec: ExperimentSpec) -> dict[str, str]:
    """Each cell's and baseline's name in the command's tables (``softmax head (lite0)``)."""
    titles = {}
    text_encoder = spec.base.get("text_encoder", "")
    for cell in expand_grid(spec):
        head = next(
            h.title
            for h in HEADS.values()
            if all(cell.values.get(k) == v for k, v in h.values.items())
        )
        titles[cell.id] = f"{head} ({cell.values.get('image_encoder', text_encoder)})"
    for cell_id, config in spec.baseline_configs().items():
        titles[cell_id] = (
            "majority class"
            if config.name == "majority"
            else f"logistic regression ({config.image_encoder})"
        )
    return titles


def fold_rows(spec: ExperimentSpec, results: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, fold): the experiment's test figures, and the mean KL from the
    target distribution where the dataset has one; baselines first, as the command lists."""
    own = results[results["score"] == MODEL_SCORE]
    titles = row_titles(spec)
    order = [c for c in titles if c.startswith("baseline-")] + [
        c for c in titles if not c.startswith("baseline-")
    ]
    rows = []
    for cell in order:
        for record in own[own["cell"] == cell].sort_values("fold").to_dict("records"):
            row = {"model": titles[cell], "fold": int(record["fold"])}
            row.update({figure: record[f"test_{figure}"] for figure in FIGURES})
            if not pd.isna(record.get("test_kl")):
                row["kl"] = record["test_kl"]
            rows.append(row)
    return pd.DataFrame(rows)


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (over folds, ddof 1) of each figure per model, in first-seen order."""
    figures = [f for f in (*FIGURES, "kl") if f in rows.columns]
    grouped = rows.groupby("model", sort=False)[figures]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    out = pd.DataFrame({"model": mean.index, "folds": grouped.size().to_numpy()})
    for figure in figures:
        out[figure] = mean[figure].to_numpy()
        out[f"{figure}_std"] = std[figure].to_numpy()
    return out.reset_index(drop=True)
