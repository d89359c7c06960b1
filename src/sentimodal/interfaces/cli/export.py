"""`sentimodal export MODEL_DIR --format onnx --out DIR`: the model for onnxruntime."""

from __future__ import annotations

from pathlib import Path

import typer

from sentimodal.errors import UserInputError
from sentimodal.interfaces.cli.app import app, console, user_errors


@app.command("export")
@user_errors
def export_command(
    model_dir: Path = typer.Argument(..., help="A model directory written by `train`."),
    out: str = typer.Option(..., "--out", "-o", help="Folder to write the export into."),
    format: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    int8: bool = typer.Option(
        False, "--int8", help="Quantise the text transformer's matrix products to int8."
    ),
) -> None:
    """Export the model as one ONNX graph, for predict/serve --runtime onnx.

    The graph holds the image network, the feature scaling, the model and its head; the
    tokenizer files are copied beside it, so nothing of the training stack is needed."""
    from sentimodal.files import check_output_folder

    out = check_output_folder(out)
    if format != "onnx":
        raise UserInputError(f"unknown export format {format!r}: the one format is onnx")
    from sentimodal.export.onnx import export_onnx

    with console.status("exporting", spinner="dots") as status:
        written = export_onnx(
            model_dir, out, int8=int8, on_step=lambda s: status.update(f"exporting: {s}")
        )
    files = ", ".join(sorted(p.name for p in written.iterdir()))
    console.print(f"exported {model_dir} -> {written} ({files})", soft_wrap=True)
