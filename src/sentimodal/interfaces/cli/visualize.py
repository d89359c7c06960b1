"""`sentimodal visualize MODEL_DIR DATASET_DIR --out DIR`: a t-SNE map of what a model sees.

The points are the model's own representation of each post: the predicted label-space vector
for embedding heads, the penultimate features for softmax heads. Writes ``embedding_map.png``,
an interactive ``embedding_map.html`` (hover: text and thumbnail), ``embedding_space.md`` with
the cluster numbers measured in the original space, ``coordinates.csv`` and ``config.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from pydantic import Field

from sentimodal.config import Config, Seed
from sentimodal.errors import UserInputError
from sentimodal.interfaces.cli.app import app, say, user_errors

if TYPE_CHECKING:  # torch-heavy modules load only when the command runs
    import numpy as np

    from sentimodal.preparation.dataset import PreparedDataset
    from sentimodal.training.estimator import SentimentModel

ALL_SPLITS = "all"
PNG_FILE = "embedding_map.png"
HTML_FILE = "embedding_map.html"
MARKDOWN_FILE = "embedding_space.md"


class VisualizeConfig(Config):
    """What was mapped and how; written next to the pictures."""

    model_dir: Path
    dataset_dir: Path
    split: str = "test"
    color_by: str = "label"
    #: column whose groups are named on the map (None: no names)
    name_by: str | None = None
    perplexity: float | None = Field(None, gt=0)
    seed: Seed = 0
    max_names: int = Field(30, ge=1)
    max_thumbnails: int = Field(200, ge=0)
    #: t-SNE threads: few, as it slows badly when threads outnumber free cores
    threads: int = Field(2, ge=1)


def model_vectors(
    model: SentimentModel, dataset: PreparedDataset, split: str | None
) -> tuple[list[str], np.ndarray, str]:
    """Ids, the vectors the model places them at, and what those vectors are."""
    if model.label_space_ is not None:
        ids, vectors = model.vectors(dataset, split)
        return ids, vectors, f"predicted {model.label_space_.source} label-space vectors"
    ids, vectors = model.vectors(dataset, split, penultimate=True)
    return ids, vectors, "penultimate features (softmax head)"


def _column(name: str, columns: list[str], option: str) -> str:
    if name not in columns:
        raise UserInputError(f"{option} {name!r}: no such column (columns: {', '.join(columns)})")
    return name


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
    written = visualize(config, out)
    for path in written:
        say("wrote ", (str(path), "bold"))


def visualize(config: VisualizeConfig, out: Path) -> list[Path]:
    """Everything the command writes; returns the paths."""
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from sentimodal.analysis.clusters import cluster_coherence, cluster_markdown
    from sentimodal.analysis.embedding_map import (
        embedding_map_figure,
        embedding_map_html,
        tsne_coordinates,
    )
    from sentimodal.analysis.plots import figure_to_png
    from sentimodal.preparation.dataset import PreparedDataset
    from sentimodal.training.estimator import SentimentModel

    dataset = PreparedDataset.load(config.dataset_dir)
    columns = list(dataset.examples.columns)
    colour = _column(config.color_by, columns, "--color-by")
    name = _column(config.name_by, columns, "--name-by") if config.name_by else None
    model = SentimentModel.load(config.model_dir)
    split = None if config.split == ALL_SPLITS else config.split
    ids, vectors, what = model_vectors(model, dataset, split)
    examples = dataset.examples.set_index(dataset.examples["id"].astype(str)).loc[ids]
    colours = examples[colour].fillna("missing").astype(str).to_numpy()
    names = examples[name].fillna("missing").astype(str).to_numpy() if name else None
    if names is not None and (names == "missing").all():
        raise UserInputError(f"--name-by {name!r}: the column is empty on this split")

    with threadpool_limits(limits=config.threads):
        coords = tsne_coordinates(vectors, perplexity=config.perplexity, seed=config.seed)
    sections = [f"## Coloured by `{colour}`", ""]
    colour_table, colour_summary = cluster_coherence(vectors, colours)
    sections.append(cluster_markdown(colour_table, colour_summary))
    tightness = None
    if names is not None:
        named = names != "missing"
        name_table, name_summary = cluster_coherence(vectors[named], names[named])
        tightness = dict(zip(name_table["group"], name_table["own_cosine"], strict=True))
        sections += ["", f"## Grouped by `{name}`", "", cluster_markdown(name_table, name_summary)]

    wanted = len(dataset.examples) if split is None else len(dataset.split(split))
    title = f"{model.run_.model} model ({model.run_.head} head), {config.split} split"
    out.mkdir(parents=True, exist_ok=True)
    figure = embedding_map_figure(
        coords,
        colours,
        names=names,
        tightness=tightness,
        max_names=config.max_names,
        title=title,
        colour_title=colour,
    )
    png = out / PNG_FILE
    png.write_bytes(figure_to_png(figure, dpi=100))
    page = embedding_map_html(
        coords,
        colours,
        dataset.texts(examples),
        images=examples["image"].tolist(),
        names=names,
        tightness=tightness,
        max_names=config.max_names,
        max_thumbnails=config.max_thumbnails,
        seed=config.seed,
        title=title,
        colour_title=colour,
    )
    page_path = out / HTML_FILE
    page_path.write_text(page, encoding="utf-8")
    frame = pd.DataFrame({"id": ids, "x": coords[:, 0], "y": coords[:, 1], colour: colours})
    if names is not None:
        frame[name] = names
    frame.to_csv(out / "coordinates.csv", index=False)
    config.save(out / "config.yaml")
    header = [
        f"# Embedding space: {title}",
        "",
        f"Model `{config.model_dir}`, dataset `{config.dataset_dir}`. Points: {what} "
        f"({len(ids)} posts; {wanted - len(ids)} without "
        "every input left out). Cluster numbers are cosines in that space, not in the map.",
        "",
        f"![t-SNE map]({PNG_FILE})",
        "",
        f"Interactive map (hover a point for its post): [{HTML_FILE}]({HTML_FILE}).",
        "",
    ]
    markdown = out / MARKDOWN_FILE
    markdown.write_text("\n".join(header + sections) + "\n", encoding="utf-8")
    return [png, page_path, markdown]
