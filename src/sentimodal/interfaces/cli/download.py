"""`sentimodal download INPUT --out DIR`: fetch a dataset's image URLs into local files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from sentimodal.interfaces.cli.app import app, console, user_errors
from sentimodal.interfaces.cli.tables import SafeTable


@app.command("download")
@user_errors
def download_command(
    source: Path = typer.Argument(
        ..., help="A table (.csv/.tsv/.jsonl/.parquet) or a prepared dataset folder."
    ),
    out: str = typer.Option(..., "--out", "-o", help="Output folder (a prepared dataset)."),
    image_column: str = typer.Option("image", "--image-column", help="Table column of URLs."),
    id_column: str | None = typer.Option(None, "--id-column", help="Table id column."),
    text_column: list[str] | None = typer.Option(
        None, "--text-column", help="Table text column(s) to keep (repeatable)."
    ),
    label_column: str | None = typer.Option(None, "--label-column", help="Table label column."),
    split: str | None = typer.Option(
        None, "--split", help="train,val,test fractions for a table's rows (default: all)."
    ),
    workers: int = typer.Option(32, "--threads", help="Concurrent fetches (threads)."),
    per_host: int = typer.Option(8, "--per-host", help="Concurrent fetches per host."),
    host_rate: float | None = typer.Option(
        None, "--host-rate", help="Requests per second started per host (no limit)."
    ),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds per connect / read."),
    deadline: float = typer.Option(30.0, "--deadline", help="Seconds per image, all included."),
    retries: int = typer.Option(2, "--retries", help="Retries on timeouts, 429 and 5xx."),
    max_bytes: int | None = typer.Option(None, "--max-bytes", help="Largest image (32 MiB)."),
    max_total_bytes: int | None = typer.Option(
        None, "--max-total-bytes", help="Stop fetching after this many bytes (no limit)."
    ),
    resize: int | None = typer.Option(
        None, "--resize", help="Store JPEGs whose shorter side is at most this (keep originals)."
    ),
    shard_size: int = typer.Option(1000, "--shard-size", help="URLs per resumable shard."),
    max_image_pixels: int = typer.Option(
        64_000_000, "--max-image-pixels", help="Largest image, width x height (64,000,000)."
    ),
    allow_private_addresses: bool = typer.Option(
        False,
        "--allow-private-addresses",
        help="Let URLs reach loopback, private and link-local addresses.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Fetch every image URL into local files (resumable); DIR becomes a prepared dataset.

    DIR's images point at the downloaded files; DIR/stats.json and DIR/rejects.csv say what
    worked and what did not, and why."""
    from sentimodal.files import check_output_folder

    out = check_output_folder(out)
    from sentimodal.download import download

    options: dict[str, Any] = {
        "image_column": image_column,
        "id_column": id_column,
        "text_columns": text_column or [],
        "label_column": label_column,
        "split": split,
        "workers": workers,
        "per_host": per_host,
        "host_rate": host_rate,
        "timeout": timeout,
        "deadline": deadline,
        "retries": retries,
        "max_total_bytes": max_total_bytes,
        "resize": resize,
        "shard_size": shard_size,
        "max_image_pixels": max_image_pixels,
        "allow_private_addresses": allow_private_addresses,
    }
    if max_bytes is not None:
        options["max_bytes"] = max_bytes
    result = download(source, out, progress=not quiet, **options)
    stats = result.stats
    table = SafeTable(title=f"download: {escape(str(result.out))}", title_justify="left")
    table.add_column("")
    table.add_column("", justify="right")
    run = stats["this_run"]
    table.add_row("URL rows", f"{stats['url_rows']:,}")
    table.add_row("downloaded", f"{stats['successes']:,}")
    table.add_row("failed", f"{stats['failures']:,}")
    for reason, n in stats["failures_by_reason"].items():
        table.add_row(f"  {escape(reason)}", f"{n:,}")
    table.add_row("fetched this run", f"{run['fetched_ok']:,} ({run['images_per_second']} /s)")
    table.add_row("MB received", f"{run['bytes_received'] / 1e6:,.1f}")
    console.print(table)
    if run["stopped_at_total_byte_cap"]:
        console.print("stopped at --max-total-bytes: rerun with a larger cap to continue")
