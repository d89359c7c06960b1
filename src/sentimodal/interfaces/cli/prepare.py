"""`sentimodal prepare {mvsa|mvso|table} PATH --out DIR`: build a prepared dataset directory."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
import yaml
from pydantic import ValidationError

from sentimodal.errors import UserInputError
from sentimodal.files import check_output_folder
from sentimodal.interfaces.cli.app import app, console, say, user_errors
from sentimodal.interfaces.cli.tables import SafeTable
from sentimodal.preparation.config import PrepareConfig
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.pipeline import prepare
from sentimodal.sources.registry import SOURCES, source_names

#: the SOURCE argument's choices: the registry's sources
SourceKind = StrEnum("SourceKind", {name: name for name in SOURCES})
#: what PATH is, source by source
_INPUTS = "; ".join(f"{name}: {source.input}" for name, source in SOURCES.items())


@app.command("prepare")
@user_errors
def prepare_command(
    source: SourceKind = typer.Argument(..., help=f"Input layout: {source_names()}."),
    path: Path = typer.Argument(..., help=f"The input ({_INPUTS})."),
    out: str = typer.Option(..., "--out", "-o", help="Output dataset folder."),
    config_file: Path | None = typer.Option(
        None, "--config", help="A PrepareConfig YAML/JSON; options given here override it."
    ),
    label_mode: str | None = typer.Option(
        None, "--label-mode", help="mvsa: merged (default), text or image annotation."
    ),
    encoding: list[str] | None = typer.Option(
        None, "--encoding", help="mvsa: encoding tried after UTF-8 (repeatable; default gb18030)."
    ),
    anp_scores: Path | None = typer.Option(
        None,
        "--anp-scores",
        help="mvso: the ANP sentiment CSV (anp,score rows), e.g. MVSO's English table.",
    ),
    text_column: list[str] | None = typer.Option(
        None, "--text-column", help="table: text column (repeatable; joined)."
    ),
    image_column: str | None = typer.Option(
        None, "--image-column", help="table: image path (relative to the table) or URL column."
    ),
    label_column: str | None = typer.Option(
        None, "--label-column", help="table: label column (its values are the label set)."
    ),
    label_distribution_columns: str | None = typer.Option(
        None,
        "--label-distribution-columns",
        help="table: one probability column per label (a,b,...): soft labels; the label is "
        "their argmax.",
    ),
    anp_emotions: Path | None = typer.Option(
        None,
        "--anp-emotions",
        help="mvso, --labels anp-emotion: the ANP -> 24 emotions CSV "
        "(MVSO's English ANP emotion table).",
    ),
    emotion_classes: int | None = typer.Option(
        None,
        "--emotion-classes",
        help="anp-emotion: 24 (Plutchik's emotions, default) or 8 (basic, intensities summed).",
    ),
    label_map: str | None = typer.Option(
        None, "--label-map", help="Rename or merge labels: old=new,other=new (spaces allowed)."
    ),
    labels_keep: str | None = typer.Option(
        None, "--labels-keep", help="Keep only these labels (a,b,c); others become rejects."
    ),
    max_classes: int | None = typer.Option(
        None,
        "--max-classes",
        help="The most distinct labels a dataset may have (1000); more stop the read.",
    ),
    id_column: str | None = typer.Option(
        None, "--id-column", help="table: id column (default: the row number)."
    ),
    labels: str | None = typer.Option(
        None,
        "--label-source",
        "--labels",
        help="Where labels come from: source, anp, vader or anp-emotion (default: source; anp "
        "for mvso). Also --labels.",
    ),
    classes: int | None = typer.Option(
        None,
        "--classes",
        help="Tool-made labels (anp, vader, mvsa): 3 (default) or 2 (neutral posts rejected).",
    ),
    anp_positive: float | None = typer.Option(
        None, "--anp-positive", help="ANP score at or above: positive (0.035)."
    ),
    anp_negative: float | None = typer.Option(
        None, "--anp-negative", help="ANP score at or below: negative (-0.035)."
    ),
    vader_positive: float | None = typer.Option(
        None, "--vader-positive", help="VADER compound at or above: positive (0.05)."
    ),
    vader_negative: float | None = typer.Option(
        None, "--vader-negative", help="VADER compound at or below: negative (-0.05)."
    ),
    vader_margin: float | None = typer.Option(
        None, "--vader-margin", help="Reject polar posts whose |compound| is below this (0)."
    ),
    filters: list[str] | None = typer.Option(
        None,
        "--filter",
        help="english, spelling[=0.8], min-words[=10], image-reachable (repeatable).",
    ),
    preset: str | None = typer.Option(
        None, "--preset", help="study: all of the study's filters (explicit --filter wins)."
    ),
    url_timeout: float | None = typer.Option(
        None, "--url-timeout", help="Seconds per image URL check (5)."
    ),
    allow_private_addresses: bool | None = typer.Option(
        None,
        "--allow-private-addresses",
        help="Let URL checks reach loopback, private and link-local addresses.",
    ),
    balance: bool | None = typer.Option(
        None, "--balance/--no-balance", help="Downsample every class to the smallest (seeded)."
    ),
    split: str | None = typer.Option(
        None, "--split", help="train,val,test fractions (0.7,0.2,0.1) or none (one split 'all')."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed for splits, balancing, langdetect."),
    workers: int | None = typer.Option(None, "--threads", help="Threads for image checks (4)."),
    parse_workers: int | None = typer.Option(
        None, "--workers", help="Processes parsing MVSO XML files (default: the machine's cores)."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace what DIR holds (refused by default unless DIR is empty or a dataset "
        "of the same input).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Read a source, label, filter, balance and split it into a prepared dataset DIR.

    DIR holds examples.parquet, rejects.csv (every record left out, with its reason) and
    dataset.json (settings, label set, counts)."""
    given: dict[str, Any] = {
        "label_mode": label_mode,
        "text_encodings": encoding or None,
        "anp_scores": str(anp_scores) if anp_scores is not None else None,
        "text_columns": text_column or None,
        "image_column": image_column,
        "label_column": label_column,
        "id_column": id_column,
        "label_distribution_columns": (
            [c.strip() for c in label_distribution_columns.split(",") if c.strip()]
            if label_distribution_columns
            else None
        ),
        "anp_emotions": str(anp_emotions) if anp_emotions is not None else None,
        "emotion_classes": emotion_classes,
        "label_map": label_map,
        "labels_keep": labels_keep,
        "max_classes": max_classes,
        "labels": labels,
        "classes": classes,
        "anp_positive": anp_positive,
        "anp_negative": anp_negative,
        "vader_positive": vader_positive,
        "vader_negative": vader_negative,
        "vader_margin": vader_margin,
        "filters": filters or None,
        "preset": preset,
        "url_timeout": url_timeout,
        "allow_private_addresses": allow_private_addresses,
        "balance": balance,
        "split": split,
        "seed": seed,
        "workers": workers,
        "parse_workers": parse_workers,
    }
    options = {name: value for name, value in given.items() if value is not None}
    check_output_folder(out)  # before reading anything: "" would mean the working directory
    base = _load_config(config_file) if config_file is not None else None
    dataset = prepare(
        source.value, path, out, base, progress=not quiet, overwrite=overwrite, **options
    )
    print_summary(dataset)


def _load_config(path: Path) -> PrepareConfig:
    if not path.is_file():
        raise UserInputError(f"config file not found: {path}")
    try:
        return PrepareConfig.load(path)
    except (ValidationError, ValueError, yaml.YAMLError) as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise UserInputError(f"invalid config file {path}: {first_line}") from None


def print_summary(dataset: PreparedDataset) -> None:
    """Counts per split and label, then rejects by reason."""
    counts = dataset.info["counts"]
    table = SafeTable(title=f"Prepared dataset: {dataset.root}")
    table.add_column("split")
    for label in dataset.labels:
        table.add_column(label, justify="right")
    table.add_column("total", justify="right", style="bold")
    for split, per_label in counts.items():
        values = [per_label.get(label, 0) for label in dataset.labels]
        table.add_row(split, *(f"{v:,}" for v in values), f"{sum(values):,}")
    totals = [sum(per.get(label, 0) for per in counts.values()) for label in dataset.labels]
    table.add_row("total", *(f"{v:,}" for v in totals), f"{sum(totals):,}", style="bold")
    console.print(table)

    reasons = dataset.info.get("provenance", {}).get("reject_reasons", {})
    if not dataset.info["n_rejects"]:
        say("Rejects: none")
        return
    rejects = SafeTable(title=f"Rejects: {dataset.info['n_rejects']:,} (details in rejects.csv)")
    rejects.add_column("reason")
    rejects.add_column("posts", justify="right")
    for reason, n in reasons.items():
        rejects.add_row(reason, f"{n:,}")
    console.print(rejects)
