"""`sentimodal evaluate MODEL_DIR DATASET_DIR`: metrics of a saved model on any prepared data."""

from __future__ import annotations

from pathlib import Path

import typer

from sentimodal.interfaces.cli.app import app, console, say, user_errors
from sentimodal.interfaces.cli.tables import metrics_table


@app.command("evaluate")
@user_errors
def evaluate_command(
    model_dir: Path = typer.Argument(..., help="A model directory written by `train`."),
    dataset_dir: Path = typer.Argument(..., help="A prepared dataset directory."),
    split: str = typer.Option("test", "--split", help="test, val, train or all."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write metrics JSON here."),
) -> None:
    """Evaluate a saved model on one split of a prepared dataset (e.g. another MVSA copy)."""
    from sentimodal.files import check_writable
    from sentimodal.training.estimator import SentimentModel
    from sentimodal.training.model_dir import write_json

    if output is not None:
        check_writable(output)
    model = SentimentModel.load(model_dir)
    metrics = model.evaluate(dataset_dir, split)
    console.print(metrics_table(metrics, f"{model_dir} on {dataset_dir} ({split})"))
    low, high = metrics["accuracy_ci95"]
    accuracy, n = metrics["accuracy"], metrics["n"]
    say(f"accuracy {accuracy:.3f} on {n} posts, 95% interval {low:.3f}-{high:.3f}")
    if metrics.get("ece") is not None:
        say(f"log-loss {metrics['log_loss']:.3f}, expected calibration error {metrics['ece']:.3f}")
    elif model.label_space_ is not None:
        say("scores are similarities to label vectors, not probabilities: no calibration figures")
    if metrics["n_missing"]:
        say((f"{metrics['n_missing']} examples lacked an input and were skipped", "yellow"))
    seen = metrics.get("n_training_posts")
    if seen:
        say(
            (
                f"{seen} of the {metrics['n']} posts are the model's training posts: these "
                "scores flatter it",
                "yellow",
            )
        )
        unseen = metrics.get("unseen")
        if unseen is None:
            say(("every evaluated post was trained on: no score here measures the model", "yellow"))
        else:
            console.print(metrics_table(unseen, f"the {unseen['n']} posts it was not trained on"))
    elif seen is None:
        say("this model directory does not record its training posts: overlap not checked")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        write_json(output, metrics)
        console.print(f"metrics written to {output}")
