"""A t-SNE map of what a model sees, and numbers on its clusters.

The points are the model's own representation of each post: the predicted label-space vector
for embedding heads, the penultimate features for softmax heads. Writes ``embedding_map.png``,
an interactive ``embedding_map.html`` (hover: text and thumbnail), ``embedding_space.md`` with
the cluster numbers measured in the original space, ``coordinates.csv`` and ``config.yaml``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field
from threadpoolctl import threadpool_limits

from sentimodal.analysis.clusters import cluster_coherence, cluster_markdown
from sentimodal.analysis.embedding_map import (
    embedding_map_figure,
    embedding_map_html,
    tsne_coordinates,
)
from sentimodal.analysis.plots import figure_to_png
from sentimodal.analysis.results_folder import write_results_folder
from sentimodal.config import Config, Seed
from sentimodal.errors import UserInputError
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.training.estimator import SentimentModel

#: the ``split`` that maps every post
ALL_SPLITS = "all"
PNG_FILE = "embedding_map.png"
HTML_FILE = "embedding_map.html"
MARKDOWN_FILE = "embedding_space.md"
COORDINATES_FILE = "coordinates.csv"


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


def map_embedding_space(config: VisualizeConfig, out: Path) -> list[Path]:
    """The map, page, cluster numbers, coordinates and config in ``out``; returns the paths of
    the picture, the page and the Markdown."""
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
    figure = embedding_map_figure(
        coords,
        colours,
        names=names,
        tightness=tightness,
        max_names=config.max_names,
        title=title,
        colour_title=colour,
    )
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
    frame = pd.DataFrame({"id": ids, "x": coords[:, 0], "y": coords[:, 1], colour: colours})
    if names is not None:
        frame[name] = names
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
    write_results_folder(
        out,
        config=config,
        tables={COORDINATES_FILE: frame},
        files={
            PNG_FILE: figure_to_png(figure, dpi=100),
            HTML_FILE: page,
            MARKDOWN_FILE: "\n".join(header + sections) + "\n",
        },
    )
    return [out / PNG_FILE, out / HTML_FILE, out / MARKDOWN_FILE]
