"""The report's calibration section: do the scores mean what they say, before and after the
temperature fitted on val? Expected calibration error, log-loss, and a reliability diagram."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from sentimodal.analysis.plots import OKABE_ITO
from sentimodal.analysis.report import Report
from sentimodal.training.estimator import SentimentModel


def reliability_diagram(
    curves: Mapping[str, Sequence[Mapping[str, Any]]], title: str = "Reliability"
) -> Figure:
    """Accuracy against confidence per bin, one line per named set of bins (e.g. "before" and
    "after"); the diagonal is perfect calibration, marker areas follow the bins' sizes."""
    figure = Figure(figsize=(4.8, 4.4))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], ls=":", c="#888888", label="calibrated")
    for (name, bins), colour in zip(curves.items(), OKABE_ITO, strict=False):
        used = [b for b in bins if b["n"]]
        total = sum(b["n"] for b in used) or 1
        x = [b["confidence"] for b in used]
        y = [b["accuracy"] for b in used]
        axes.plot(x, y, c=colour, label=name)
        axes.scatter(x, y, s=[400 * b["n"] / total + 8 for b in used], c=colour, alpha=0.6)
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (score of the predicted label)")
    axes.set(ylabel="accuracy", title=title)
    axes.legend(loc="upper left", frameon=False)
    figure.tight_layout()
    return figure


def calibration_frame(
    model: SentimentModel, metrics: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """Val before and after the temperature (from the fit), then each evaluated split as
    served (with the temperature when it is applied)."""
    record = model.calibration_
    rows = []
    if record is not None:
        for side in ("before", "after"):
            figures = record.val[side]
            rows.append(
                {
                    "posts": f"{record.fitted_on} ({side} temperature scaling)",
                    "n": record.n,
                    "ECE": figures["ece"],
                    "log-loss": figures["log_loss"],
                }
            )
    for split, m in metrics.items():
        if m.get("ece") is not None:
            rows.append(
                {
                    "posts": f"{split} (as served)",
                    "n": m["n"],
                    "ECE": m["ece"],
                    "log-loss": m["log_loss"],
                }
            )
    return pd.DataFrame(rows)


def add_calibration_section(
    report: Report, model: SentimentModel, metrics: Mapping[str, Mapping[str, Any]]
) -> Report:
    """The section, or one sentence on why there is none (similarities, no val split)."""
    report.add_section("Calibration")
    if model.label_space_ is not None:
        report.add_markdown(
            "This model's scores are cosine similarities to label vectors, not probabilities: "
            "calibration does not apply."
        )
        return report
    record = model.calibration_
    if record is None:
        report.add_markdown("No val split to fit a temperature on: the scores are as trained.")
    else:
        verdict = (
            f"applied (it lowered val log-loss from {record.val['before']['log_loss']:.3f} to "
            f"{record.val['after']['log_loss']:.3f})"
            if record.applied
            else "not applied (it did not lower val log-loss, or calibration is off)"
        )
        report.add_markdown(
            f"Temperature scaling fitted on {record.n} {record.fitted_on} posts: "
            f"T = **{record.temperature:.3f}**, {verdict}. Expected calibration error (ECE) "
            "is the gap between confidence and accuracy, averaged over 15 confidence bins."
        )
    table = calibration_frame(model, metrics)
    if not table.empty:
        report.add_table(table, caption="Expected calibration error and log-loss")
    if record is not None:
        report.add_figure(
            reliability_diagram(
                {"before": record.val["before"]["bins"], "after": record.val["after"]["bins"]},
                title=f"Reliability on {record.fitted_on}",
            ),
            "reliability",
            f"Accuracy against confidence on the {record.fitted_on} split, before and after "
            "temperature scaling; the dotted diagonal is perfect calibration.",
        )
    return report
