"""`sentimodal visualize MODEL_DIR DATASET_DIR --out DIR`: a t-SNE map of what a model sees
(:mod:`sentimodal.analysis.embedding_space` makes it; this parses the options)."""

from __future__ import annotations

from pathlib import Path

import typer

from sentimodal.interfaces.cli.app import app, say, user_errors


@app.command("visualize")
@user_errors
def visualize_command(
    model_dir: Path = typer.Argument(..., help="A model directory written by `train`."),
    dataset_dir: Path = typer.Argument(..., help="A prepared dataset directory."),
    out: str = typer.Option(..., "--out", "-o", help="Folder for the pictures and numbers."),
    split: str = typer.Option("test", "--split", help="Split to map, or 'all'."),
    color_by: str = typer.Option(
        "label", "--color-by", help="Colour column: label, text_label, image_label, ..."
    ),
    name_by: str | None = typer.Option(
        None, "--name-by", help="Column whose groups are named on the map (anp, label, ...)."
    ),
    perplexity: float | None = typer.Option(None, "--perplexity", help="t-SNE perplexity."),
    seed: int = typer.Option(0, "--seed", help="t-SNE seed."),
    max_names: int = typer.Option(30, "--max-names", help="Most group names on the map."),
    threads: int = typer.Option(2, "--threads", help="t-SNE threads."),
) -> None:
    """Map the model's embedding of a split with t-SNE, and measure its clusters."""
    from sentimodal.analysis.embedding_space import VisualizeConfig, map_embedding_space
    from sentimodal.files import check_output_folder

    out = check_output_folder(out)
    config = VisualizeConfig(
        model_dir=model_dir,
        dataset_dir=dataset_dir,
        split=split,
        color_by=color_by,
        name_by=name_by,
        perplexity=perplexity,
        seed=seed,
        max_names=max_names,
        threads=threads,
    )
    written = map_embedding_space(config, out)
    for path in written:
        say("wrote ", (str(path), "bold"))
