"""`sentimodal features DATASET_DIR --image NAME --text NAME`: fill the dataset's feature cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
import yaml
from pydantic import ValidationError
from rich.text import Text

from sentimodal.config import validation_message
from sentimodal.errors import UserInputError
from sentimodal.interfaces.cli.app import app, console, user_errors
from sentimodal.interfaces.cli.tables import SafeTable

if TYPE_CHECKING:  # the store imports torch: only load it when the command runs
    from sentimodal.features.store import ExtractionResult, FeatureConfig

#: what `--image none` / `--text none` mean: skip that modality
NONE = "none"
SPLIT_ORDER = ("train", "val", "test", "all")


@app.command("features")
@user_errors
def features_command(
    dataset_dir: Path = typer.Argument(..., help="A prepared dataset folder (sentimodal prepare)."),
    image: str | None = typer.Option(
        None,
        "--image",
        help="Image encoder (efficientnet_lite0 by default), timm:<model name>, or 'none'.",
    ),
    text: str | None = typer.Option(
        None,
        "--text",
        help="Text encoder (minilm by default), hf:<model id or folder>, or 'none'.",
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Rows per batch (64)."),
    workers: int | None = typer.Option(
        None,
        "--workers",
        help="Processes that read, decode and encode image batches, about one per core (2).",
    ),
    float16: bool | None = typer.Option(
        None, "--float16/--float32", help="Store float features as float16 (half the disk)."
    ),
    image_weights: str | None = typer.Option(
        None,
        "--image-weights",
        help="Image encoder weights: imagenet, a local .pth/.safetensors file, or none (random).",
    ),
    device: str | None = typer.Option(
        None, "--device", help="Where the networks run: auto (a GPU if any), cpu, cuda or mps."
    ),
    engine: str | None = typer.Option(None, "--engine", help="local (default) or ray."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="A running Ray cluster (HOST:PORT) for --engine ray."
    ),
    allow_private_addresses: bool | None = typer.Option(
        None,
        "--allow-private-addresses",
        help="Let image URLs reach loopback, private and link-local addresses.",
    ),
    shard_size: int | None = typer.Option(
        None, "--shard-size", help="Rows per shard: the most an interrupted run recomputes (512)."
    ),
    config_file: Path | None = typer.Option(
        None, "--config", help="A FeatureConfig YAML/JSON; options given here override it."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Extract image and text features for every split; a rerun resumes or hits the cache."""
    from sentimodal.features.store import extract_features

    config = _config(
        config_file,
        {
            "image": image,
            "text": text,
            "batch_size": batch_size,
            "workers": workers,
            "dtype": None if float16 is None else ("float16" if float16 else "float32"),
            "engine": engine,
            "shard_size": shard_size,
            "ray_address": ray_address,
            "allow_private_addresses": allow_private_addresses,
            "device": device,
        },
    )
    if image_weights is not None:
        config.image_config = {**config.image_config, "weights": image_weights}
    results = extract_features(dataset_dir, **config.to_dict(), progress=not quiet)
    if not results:
        console.print("nothing to do: both --image and --text are 'none'")
        return
    console.print(summary_table(results))
    for result in results.values():
        console.print(f"{result.kind} features: {result.directory}", soft_wrap=True)


def _config(config_file: Path | None, options: dict[str, Any]) -> FeatureConfig:
    """The file's settings (or the defaults), overridden by the options actually given."""
    from sentimodal.features.store import FeatureConfig

    given = {k: v for k, v in options.items() if v is not None}
    for kind in ("image", "text"):
        if isinstance(given.get(kind), str) and given[kind].lower() == NONE:
            given[kind] = None
    try:
        base = FeatureConfig.load(config_file) if config_file else FeatureConfig()
        return FeatureConfig.model_validate({**base.to_dict(), **given})
    except FileNotFoundError:
        raise UserInputError(f"config file not found: {config_file}") from None
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        where = str(exc).splitlines()[0]
        raise UserInputError(f"unreadable config file {config_file}: {where}") from None
    except ValidationError as exc:
        raise UserInputError(validation_message(exc, "invalid feature setting ")) from None


def summary_table(results: dict[str, ExtractionResult]) -> SafeTable:
    """One column per modality, so that narrow terminals stay readable."""
    table = SafeTable(title="features")
    table.add_column("")
    for kind in results:
        table.add_column(kind, justify="right")
    splits = sorted(
        {split for result in results.values() for split in result.rows},
        key=lambda split: (SPLIT_ORDER.index(split) if split in SPLIT_ORDER else 99, split),
    )
    cells: dict[str, list[str | Text]] = {"encoder": [], "cache": []}
    cells.update({f"rows {split}": [] for split in splits})
    cells.update({"rejects": [], "time": [], "items/s": []})
    for result in results.values():
        cells["encoder"].append(result.name)
        cells["cache"].append(Text("hit", "green") if result.cache_hit else "computed")
        for split in splits:
            cells[f"rows {split}"].append(str(result.rows.get(split, 0)))
        cells["rejects"].append(str(result.n_rejects))
        cells["time"].append(f"{result.seconds:.1f} s")
        cells["items/s"].append("-" if result.cache_hit else f"{result.items_per_second:,.1f}")
    for name, values in cells.items():
        table.add_row(name, *values)
    return table
