"""`sentimodal serve MODEL_DIR`: the model behind an HTTP API (FastAPI + uvicorn)."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import typer

from sentimodal.errors import UserInputError
from sentimodal.interfaces.cli.app import app, err_console, user_errors


@app.command("serve")
@user_errors
def serve_command(
    model_dir: Path = typer.Argument(
        ..., help="A model directory written by `train` (or an ONNX export, --runtime onnx)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on."),
    config: Path | None = typer.Option(
        None, "--config", help="Server limits as YAML/JSON (fields of ServerSettings)."
    ),
    allow_image_urls: bool = typer.Option(
        False, "--allow-image-urls", help="Fetch image_url posts (public addresses only)."
    ),
    runtime: str = typer.Option(
        "torch", "--runtime", help="torch (a model directory) or onnx (a `sentimodal export`)."
    ),
    max_batch_posts: int | None = typer.Option(
        None, "--max-batch-posts", min=1, help="Most posts in one /v1/predict/batch request."
    ),
    request_timeout: float | None = typer.Option(
        None, "--request-timeout", min=0.001, help="Seconds before a request is answered 504."
    ),
    device: str = typer.Option(
        "auto", "--device", help="Where the network runs (torch runtime): auto, cpu, cuda, mps."
    ),
) -> None:
    """Serve the model over HTTP (FastAPI + uvicorn), with a page to try it at /.

    POST /v1/predict, /v1/predict/batch; GET /v1/model, /health, /ready, /docs. One JSON
    access-log line per request on stderr."""
    from sentimodal.extras import require_extra

    require_extra("server", "the server")
    import uvicorn

    from sentimodal.config import load_config
    from sentimodal.interfaces.server import ServerSettings, create_app
    from sentimodal.interfaces.server.connections import uvicorn_config
    from sentimodal.interfaces.server.model import ServedModel

    if runtime not in ("torch", "onnx"):
        raise UserInputError(f"unknown runtime {runtime!r}: choose torch or onnx")
    if runtime == "onnx":  # the model loads in the background: say it here, not in /ready
        require_extra("onnx", "the onnx runtime")
    needed = "onnx.json" if runtime == "onnx" else "config.json"
    if not (model_dir / needed).is_file():
        raise UserInputError(f"{model_dir}: no {needed} (not a {runtime} model directory)")
    settings = load_config(ServerSettings, config, "server config") if config else ServerSettings()
    overrides = {
        "allow_image_urls": allow_image_urls or settings.allow_image_urls,
        "max_batch_posts": max_batch_posts,
        "request_timeout_s": request_timeout,
    }
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access = logging.getLogger("sentimodal.server.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    from sentimodal.devices import resolve_device

    resolve_device(device)  # an unknown or absent device is refused before the server starts
    application = create_app(lambda: ServedModel.load(model_dir, runtime, device), settings, host)
    err_console.print(f"serving {model_dir} on http://{host}:{port} (docs at /docs)")
    # uvicorn drains in-flight requests on SIGTERM/SIGINT, then re-raises the signal to the
    # handlers found before it started: these make that finished shutdown exit 0
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _stopped)
    server = uvicorn.Server(uvicorn_config(application, host, port, settings))
    server.run()
    if not server.started:
        raise UserInputError(f"could not listen on {host}:{port} (see the message above)")


def _stopped(signum: int, frame: object) -> None:
    raise SystemExit(0)
