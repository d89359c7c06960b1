"""The `sentimodal` command line: one module per command, all registered on one app."""

from sentimodal.interfaces.cli import (  # noqa: F401  (each import registers its command)
    crossval,
    demo,
    evaluate,
    experiment,
    features,
    predict,
    prepare,
    train,
    visualize,
    zeroshot,
)
from sentimodal.interfaces.cli.app import app

__all__ = ["app"]
