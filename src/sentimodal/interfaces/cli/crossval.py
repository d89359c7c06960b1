"""`sentimodal crossval DATASET_DIR --out DIR`: k-fold cross-validation of models and baselines
(any label set), mean ± std over folds, written as CSV, JSON and a report."""

from __future__ import annotations

from pathlib import Path

import typer

from sentimodal.errors import UserInputError
from sentimodal.interfaces.cli.app import app, command_line, console, user_errors
from sentimodal.interfaces.cli.tables import comparison_table

HEADS = ("softmax", "embedding", "soft")


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
    model: str = typer.Option("image", "--model", help="text, image, concat, gated or late."),
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
    measured on the same folds."""
    from sentimodal.files import check_output_folder

    out = check_output_folder(out)
    from sentimodal.analysis.crossval import (
        CrossValConfig,
        cross_validate,
        mean_std_table,
        summarise,
    )
    from sentimodal.analysis.report import Report
    from sentimodal.analysis.results_folder import write_results_folder
    from sentimodal.preparation.dataset import PreparedDataset
    from sentimodal.training.estimator import SentimentModel

    unknown = [h for h in _items(heads, "--heads") if h not in HEADS]
    if unknown:
        raise UserInputError(f"unknown head {unknown[0]!r}; use {', '.join(HEADS)}")
    encoders = _items(image_encoders, "--image-encoders") if model != "text" else ["-"]
    models = {}
    for encoder in encoders:
        for head in _items(heads, "--heads"):
            train = {"epochs": epochs, "seed": seed, "soft_targets": head == "soft"}
            settings = {
                "model": model,
                "head": "embedding" if head == "embedding" else "softmax",
                "text_encoder": text_encoder,
                "label_source": label_source,
                "train": train,
                "feature_workers": 0,
            }
            if encoder != "-":
                settings["image_encoder"] = encoder
            name = {
                "softmax": "softmax head",
                "embedding": "embedding head",
                "soft": "softmax head, soft targets",
            }[head]
            where = f"{encoder}" if encoder != "-" else text_encoder
            models[f"{name} ({where})"] = SentimentModel(**settings).run_config()
    config = CrossValConfig(
        folds=folds,
        seed=seed,
        models=models,
        logreg_image_encoders=encoders if logreg and model == "image" else [],
        c_values=[float(c) for c in _items(c_values, "--c-values")],
    )
    dataset = PreparedDataset.load(dataset_dir)
    rows = cross_validate(dataset, config, progress=not quiet)
    summary = summarise(rows)
    command = command_line(context)
    table = mean_std_table(summary)
    report = Report(f"{folds}-fold cross-validation on {dataset_dir}")
    counts = ", ".join(
        f"{label} {n}" for label, n in dataset.examples["label"].value_counts().sort_index().items()
    )
    report.add_markdown(
        f"{len(dataset.examples)} posts ({counts}); folds stratified by label, seed {seed}; "
        f"in each fold a stratified tenth of the training folds is the validation set.\n\n"
        f"Command: `{command}`"
    )
    report.add_table(table, caption="Test folds: mean ± std (ddof 1)")
    report.add_table(rows.round(4), caption="Per fold")
    report.add_config(config)
    paths = write_results_folder(
        out,
        config=config,
        tables={"folds.csv": rows, "summary.csv": summary},
        data={"summary.json": {"command": command, "rows": summary.to_dict("records")}},
        report=report,
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
    console.print(f"report: [bold]{paths.markdown}[/]")
