"""`sentimodal crossval DATASET_DIR --out DIR`: k-fold cross-validation of models and baselines
(any label set), mean ± std over folds, written as CSV, JSON and a report: a view of
`sentimodal experiment` under the kfold protocol (analysis.crossval)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sentimodal.errors import UserInputError
from sentimodal.interfaces.cli.app import app, command_line, console, user_errors
from sentimodal.interfaces.cli.tables import comparison_table
from sentimodal.models.recipes import recipe_choices


def _items(value: str, option: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise UserInputError(f"{option} needs at least one value")
    return items


@app.command("crossval")
@user_errors
def crossval_command(
    context: typer.Context,
    dataset_dir: Path = typer.Argument(..., help="A prepared dataset directory (any splits)."),
    out: str = typer.Option(..., "--out", "-o", help="Folder for results and report."),
    model: str = typer.Option("image", "--model", help=recipe_choices()),
    heads: str = typer.Option(
        "softmax,embedding",
        "--heads",
        help="softmax, embedding, and soft (softmax trained on the dataset's label "
        "distributions as soft targets).",
    ),
    image_encoders: str = typer.Option(
        "efficientnet_lite0", "--image-encoders", help="Image encoders to compare (frozen)."
    ),
    text_encoder: str = typer.Option("minilm", "--text-encoder", help="Text features."),
    label_source: str = typer.Option(
        "glove_6b_50d", "--label-vectors", help="Embedding head label vectors: glove_6b_50d/minilm."
    ),
    folds: int = typer.Option(5, "--folds", help="Number of folds (stratified, seeded)."),
    epochs: int = typer.Option(30, "--epochs", help="Maximum epochs (early stopping on val)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds and of training."),
    logreg: bool = typer.Option(
        True, "--logreg/--no-logreg", help="Logistic regression on each image encoder's features."
    ),
    c_values: str = typer.Option(
        "0.001,0.01,0.1,1", "--c-values", help="Logistic regression: C values tried on val."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Cross-validate a model: each fold is the test set once, the rest trains.

    A tenth of the training folds validates; majority and logistic-regression baselines are
    measured on the same folds. The same runs as `sentimodal experiment` with the spec this
    writes (OUT/spec.yaml): finished folds are kept, so an interrupted run resumes."""
    from sentimodal.files import check_output_folder

    out = check_output_folder(out)
    from sentimodal.analysis.crossval import (
        HEADS,
        crossval_spec,
        fold_rows,
        summarise,
    )
    from sentimodal.analysis.experiment import run_experiment

    chosen = _items(heads, "--heads")
    unknown = [h for h in chosen if h not in HEADS]
    if unknown:
        raise UserInputError(f"unknown head {unknown[0]!r}; use {', '.join(HEADS)}")
    spec = crossval_spec(
        model=model,
        heads=chosen,
        image_encoders=_items(image_encoders, "--image-encoders"),
        text_encoder=text_encoder,
        label_source=label_source,
        folds=folds,
        epochs=epochs,
        seed=seed,
        logreg=logreg,
        c_values=[float(c) for c in _items(c_values, "--c-values")],
    )
    command = command_line(context)
    result = run_experiment(spec, dataset_dir, out, command=command, progress=not quiet)
    rows = fold_rows(spec, result.results)
    summary = summarise(rows)
    rows.to_csv(out / "folds.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    (out / "summary.json").write_text(
        json.dumps({"command": command, "rows": summary.to_dict("records")}, indent=2) + "\n"
    )
    shown = [
        {
            "model": r["model"],
            **{k: r[k] for k in ("accuracy", "macro_f1", "weighted_f1")},
            **{f"{k}_std": r[f"{k}_std"] for k in ("accuracy", "macro_f1", "weighted_f1")},
        }
        for r in summary.to_dict("records")
    ]
    console.print(comparison_table(shown, f"{folds}-fold cross-validation, mean ± std"))
    console.print(f"per fold: {out / 'folds.csv'}; report: {out / 'report.md'}")
