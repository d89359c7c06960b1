"""`sentimodal predict MODEL_DIR`: label new posts, one from flags or many from a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.text import Text

from sentimodal.errors import UserInputError
from sentimodal.interfaces.cli.app import app, console, err_console, user_errors
from sentimodal.interfaces.cli.tables import SafeTable
from sentimodal.sources.table_rows import DEFAULT_MAX_ROW_BYTES

if TYPE_CHECKING:  # torch-heavy modules load only when the command runs
    from sentimodal.inference.posts import PostBatchWork, Prediction


@app.command("predict")
@user_errors
def predict_command(
    model_dir: Path = typer.Argument(..., help="A model directory written by `train`."),
    text: str | None = typer.Option(None, "--text", help="The text of one post."),
    image: str | None = typer.Option(None, "--image", help="The image (path or URL) of one post."),
    input_file: Path | None = typer.Option(
        None, "--input", "-i", help="Many posts: .csv, .tsv, .jsonl or .parquet."
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Write predictions here: .parquet, else JSONL (one line per post).",
    ),
    labels: str | None = typer.Option(
        None,
        "--labels",
        help="Comma-separated labels to rank instead of the trained ones (embedding heads, "
        "clip: encoders).",
    ),
    text_column: str = typer.Option("text", "--text-column", help="Input text column."),
    image_column: str = typer.Option("image", "--image-column", help="Input image column."),
    id_column: str = typer.Option(
        "id", "--id-column", help="Input id column; without one, a post's id is its row number."
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Posts per forward pass."),
    chunk_rows: int = typer.Option(
        2048, "--chunk-rows", min=1, help="Rows read, predicted and committed at a time."
    ),
    workers: int = typer.Option(2, "--workers", min=0, help="Worker processes (local engine)."),
    engine: str = typer.Option("local", "--engine", help="local (DataLoader workers) or ray."),
    allow_errors: bool = typer.Option(
        False, "--allow-errors", help="Exit 0 even when some rows could not be predicted."
    ),
    max_row_bytes: int = typer.Option(
        DEFAULT_MAX_ROW_BYTES,
        "--max-row-bytes",
        min=64,
        help="A larger input row (CSV record, JSON line) is an error row.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    label_template: str | None = typer.Option(
        None,
        "--label-template",
        help="The prompt each label fills for clip: models (default 'a photo of something "
        "{label}').",
    ),
    device: str = typer.Option(
        "auto", "--device", help="Where the network runs (torch runtime): auto, cpu, cuda, mps."
    ),
    runtime: str = typer.Option(
        "torch", "--runtime", help="torch (a model directory) or onnx (a `sentimodal export`)."
    ),
    explain: bool = typer.Option(
        False,
        "--explain",
        help="Add why: modality shares, word scores, an image heatmap (a pass per word, cell).",
    ),
    explain_png: Path | None = typer.Option(
        None,
        "--explain-png",
        help="One post: write its image with the explanation's heatmap over it (PNG) here.",
    ),
    allow_private_addresses: bool = typer.Option(
        False,
        "--allow-private-addresses",
        help="Let image URLs reach loopback, private and link-local addresses.",
    ),
) -> None:
    """Predict the sentiment of posts; bad rows get an error and the rest go on.

    With --input and --output the table is streamed (any size, constant memory), written as it
    goes, and a rerun with the same --output resumes where an interrupted run stopped. The exit
    code is 1 when some rows failed, unless --allow-errors. Each output row carries its post's
    id: the --id-column cell, or, where the table has no such column (or the cell is empty),
    the row's number in the table counting from 0.
    """
    if input_file is None and text is None and image is None:
        raise UserInputError("give --text and/or --image for one post, or --input FILE")
    if input_file is not None and (text is not None or image is not None):
        raise UserInputError("give either --input FILE or --text/--image, not both")
    if input_file is not None and output is None:
        raise UserInputError("--input needs --output (.jsonl or .parquet)")
    from sentimodal.features.engine import get_engine
    from sentimodal.files import check_writable
    from sentimodal.inference.explanations import ExplainSettings, explain_predictions
    from sentimodal.inference.posts import post_rows, predict_rows
    from sentimodal.inference.stream import Columns, predict_table
    from sentimodal.net import FetchPolicy
    from sentimodal.sources.table_rows import TableLimits

    if explain_png is not None and (input_file is not None or not explain or image is None):
        raise UserInputError("--explain-png needs --explain and one post with --image")
    for path in (output, explain_png):
        if path is not None:
            check_writable(path)
    run_engine = get_engine(engine, workers)
    work = _work(
        model_dir,
        runtime,
        labels,
        FetchPolicy(allow_private=allow_private_addresses),
        device,
        label_template,
    )
    if input_file is None:
        rows = post_rows([{"id": "0", "text": text or "", "image": image or ""}])
        predictions = predict_rows(work, rows)
        if explain:
            predictions = explain_predictions(work, rows, predictions)
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
            lines = [json.dumps(p.to_row(), ensure_ascii=False) for p in predictions]
            output.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        console.print(_table(predictions, work.classes, f"scores: {work.scores_are}"))
        for prediction in predictions:
            if prediction.explanation is not None:
                console.print(explanation_text(prediction.explanation), soft_wrap=True)
                if explain_png is not None and prediction.explanation["regions"] is not None:
                    _write_overlay(work, image or "", prediction.explanation, explain_png)
        failed = sum(p.error is not None for p in predictions)
        if failed and not allow_errors:
            raise typer.Exit(code=1)
        return
    columns = Columns(text=text_column, image=image_column, id=id_column)
    summary = predict_table(
        work,
        input_file,
        output,
        model_name=(
            f"{model_dir.resolve()}|{runtime}|labels={','.join(work.classes)}"
            f"|private-addresses={allow_private_addresses}"
        ),
        columns=columns,
        batch_size=batch_size,
        chunk_rows=chunk_rows,
        engine=run_engine,
        progress=not quiet,
        limits=TableLimits(max_row_bytes=max_row_bytes),
        explain=ExplainSettings() if explain else None,
    )
    if summary.already_complete:
        console.print(
            f"{output}: already complete ({summary.rows} posts), nothing to do", soft_wrap=True
        )
    else:
        rate = (summary.rows - summary.resumed) / max(summary.seconds, 1e-9)
        resumed = f", {summary.resumed} from an earlier run" if summary.resumed else ""
        console.print(
            f"{summary.rows} posts -> {output} ({summary.errors} with errors{resumed}; "
            f"{rate:,.1f} posts/s)",
            soft_wrap=True,
        )
    if summary.errors and not allow_errors:
        err_console.print(
            f"{summary.errors} of {summary.rows} posts could not be predicted (see their "
            f"'error'); pass --allow-errors to accept that",
            soft_wrap=True,
        )
        raise typer.Exit(code=1)


def _work(
    model_dir: Path,
    runtime: str,
    labels: str | None,
    fetch: Any,
    device: str = "auto",
    template: str | None = None,
) -> PostBatchWork:
    """The per-batch work of the model, on the chosen runtime (onnx: no training code)."""

    if runtime == "onnx":
        from sentimodal.inference.onnx_runtime import OnnxModel

        if labels is not None:
            raise UserInputError("--labels needs the torch runtime (an embedding head)")
        return OnnxModel.load(model_dir).work
    if runtime != "torch":
        raise UserInputError(f"unknown runtime {runtime!r}: choose torch or onnx")
    from sentimodal.training.estimator import SentimentModel

    model = SentimentModel.load(model_dir, device=device)
    if labels is not None:
        model.set_labels([label for label in labels.split(",") if label.strip()], template)
    return model.post_work(fetch)


def _table(predictions: list[Prediction], classes: list[str], caption: str) -> SafeTable:
    table = SafeTable(caption=caption, caption_justify="left")
    table.add_column("id")
    table.add_column("label", style="bold")
    for label in classes:
        table.add_column(label, justify="right")
    table.add_column("read")
    for p in predictions:
        if p.error is not None:
            table.add_row(p.id, Text(f"error: {p.error}", "red"), *[""] * len(classes), "")
        else:
            read = p.modalities or ""
            if p.warning:
                read += f" ({p.warning})"
            table.add_row(p.id, p.label, *[f"{p.scores[c]:.3f}" for c in classes], read)
    return table


def explanation_text(explanation: dict[str, Any]) -> Text:
    """An explanation for a person: the modality shares, then the words, each coloured by
    its score (green for the label, red against it), then the image grid."""
    out = Text(f"why {explanation['label']!r}: ")
    shares = explanation["modalities"]["shares"]
    out.append(", ".join(f"{m} {share:.0%}" for m, share in shares.items()))
    out.append(f"  (had: {'+'.join(explanation['modalities']['had'])})\n")
    network = explanation["modalities"].get("network")
    if network:
        weights = ", ".join(f"{m} {w:.0%}" for m, w in network["weights"].items())
        out.append(f"the network's own weights: {weights}")
        gates = ", ".join(f"{name} {value:.3f}" for name, value in network["gates"].items())
        out.append(f"; gates: {gates}" if gates else "")
        label = explanation["label"]
        branches = ", ".join(f"{m} {s[label]:.3f}" for m, s in network["branches"].items())
        out.append(f"; each branch's score of {label!r}: {branches}" if branches else "")
        out.append("\n")
    words = explanation["words"]
    if words:
        top = max((abs(w["score"]) for w in words if w["score"] is not None), default=0) or 1
        for w in words:
            score = w["score"] or 0.0
            strength = abs(score) / top
            style = ("green" if score > 0 else "red") if strength > 0.25 else "dim"
            out.append(w["word"], style="bold " + style if strength > 0.6 else style)
            out.append(" ")
        out.append("\n")
        # the same in numbers, for terminals and logs without colour
        scored = sorted(
            (w for w in words if w["score"] is not None), key=lambda w: -abs(w["score"])
        )[:5]
        if scored:
            out.append("top words: " + ", ".join(f"{w['word']} {w['score']:+.3f}" for w in scored))
            out.append("\n")
    regions = explanation["regions"]
    if regions:
        out.append("image regions (rows of the grid; + for the label):\n")
        for row in regions["scores"]:
            out.append("  " + " ".join(f"{v:+.3f}" if v is not None else "   n/a" for v in row))
            out.append("\n")
    out.append("method: " + "; ".join(f"{k}: {v}" for k, v in explanation["method"].items()))
    return out


def _write_overlay(work: PostBatchWork, image: str, explanation: dict[str, Any], out: Path) -> None:
    from sentimodal.features.images import load_image
    from sentimodal.files import write_atomic
    from sentimodal.inference.heatmap import region_overlay_png

    fetch = work.image_work.fetch if work.image_work is not None else None
    write_atomic(out, region_overlay_png(load_image(image, policy=fetch), explanation["regions"]))
    console.print(f"heatmap written to {out}")
