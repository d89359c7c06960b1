"""`sentimodal predict MODEL_DIR`: label new posts, one from flags or many from a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from sentimodal.errors import UserInputError
from sentimodal.interfaces.cli.app import app, console, user_errors

if TYPE_CHECKING:  # pandas and the estimator (torch) load only when the command runs
    import pandas as pd

    from sentimodal.training.estimator import Prediction


def read_posts(path: Path, text_column: str, image_column: str, id_column: str) -> pd.DataFrame:
    """Posts from CSV / JSONL / Parquet, renamed to ``id``/``text``/``image``; image paths are
    taken relative to the file's folder."""
    import pandas as pd

    if not path.is_file():
        raise UserInputError(f"input file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif suffix in (".jsonl", ".ndjson"):
            frame = pd.read_json(path, lines=True, dtype=False)
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            raise UserInputError(f"{path}: use a .csv, .jsonl or .parquet file")
    except (ValueError, OSError) as exc:
        raise UserInputError(f"{path}: cannot read the table: {exc}") from None
    for option, name, default in (
        ("--text-column", text_column, "text"),
        ("--image-column", image_column, "image"),
    ):
        if name != default and name not in frame.columns:
            raise UserInputError(f"{path}: no {option} {name!r} (columns: {list(frame.columns)})")
    columns = {text_column: "text", image_column: "image", id_column: "id"}
    frame = frame.rename(columns={k: v for k, v in columns.items() if k in frame.columns})
    if "text" not in frame.columns and "image" not in frame.columns:
        raise UserInputError(
            f"{path}: neither a text column {text_column!r} nor an image column "
            f"{image_column!r} (columns: {', '.join(map(str, frame.columns))})"
        )
    if "image" in frame.columns:
        frame["image"] = [_resolve(v, path.parent) for v in frame["image"]]
    return frame


def _resolve(value: object, base: Path) -> str:
    text = "" if value is None or (isinstance(value, float) and value != value) else str(value)
    if not text or "://" in text or Path(text).is_absolute():
        return text
    return str(base / text)


@app.command("predict")
@user_errors
def predict_command(
    model_dir: Path = typer.Argument(..., help="A model directory written by `train`."),
    text: str | None = typer.Option(None, "--text", help="The text of one post."),
    image: str | None = typer.Option(None, "--image", help="The image (path or URL) of one post."),
    input_file: Path | None = typer.Option(
        None, "--input", "-i", help="Many posts: .csv, .jsonl or .parquet."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write predictions as JSONL here (one line per post)."
    ),
    labels: str | None = typer.Option(
        None,
        "--labels",
        help="Comma-separated labels to rank instead of the trained ones (embedding heads).",
    ),
    text_column: str = typer.Option("text", "--text-column", help="Input text column."),
    image_column: str = typer.Option("image", "--image-column", help="Input image column."),
    id_column: str = typer.Option("id", "--id-column", help="Input id column."),
    allow_private_addresses: bool = typer.Option(
        False,
        "--allow-private-addresses",
        help="Let image URLs reach loopback, private and link-local addresses (off: refused).",
    ),
) -> None:
    """Predict the sentiment of posts; bad rows get an error and the rest go on."""
    if input_file is None and text is None and image is None:
        raise UserInputError("give --text and/or --image for one post, or --input FILE")
    if input_file is not None and (text is not None or image is not None):
        raise UserInputError("give either --input FILE or --text/--image, not both")
    import pandas as pd

    from sentimodal.files import check_writable
    from sentimodal.training.estimator import SentimentModel

    if output is not None:
        check_writable(output)
    model = SentimentModel.load(model_dir)
    if labels is not None:
        model.set_labels([label for label in labels.split(",") if label.strip()])
    if input_file is not None:
        posts = read_posts(input_file, text_column, image_column, id_column)
    else:
        posts = pd.DataFrame([{"id": "0", "text": text or "", "image": image or ""}])
    predictions = model.predict_posts(posts, allow_private_addresses=allow_private_addresses)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("w", encoding="utf-8") as handle:
            for prediction in predictions:
                handle.write(json.dumps(prediction.to_dict(), ensure_ascii=False) + "\n")
        failed = sum(p.error is not None for p in predictions)
        console.print(f"{len(predictions)} posts -> {output} ({failed} with errors)")
    else:
        console.print(_table(predictions, model.classes_))
    if predictions and all(p.error is not None for p in predictions):
        raise typer.Exit(code=1)  # nothing was predicted: a script must not read success


def _table(predictions: list[Prediction], classes: list[str]) -> Table:
    table = Table(title_justify="left")
    table.add_column("id")
    table.add_column("label", style="bold")
    for label in classes:
        table.add_column(label, justify="right")
    for p in predictions:
        if p.error is not None:
            table.add_row(p.id, Text(f"error: {p.error}", "red"), *[""] * len(classes))
        else:
            table.add_row(p.id, p.label, *[f"{p.scores[c]:.3f}" for c in classes])
    return table
