"""The `sentimodal` command line: one module per command, all registered on one app."""

from sentimodal.interfaces.cli import (  # noqa: F401  (each import registers its command)
    demo,
    download,
    evaluate,
    experiment,
    export,
    features,
    predict,
    prepare,
    serve,
    train,
    visualize,
    zeroshot,
)
from sentimodal.interfaces.cli.app import app

__all__ = ["app"]
