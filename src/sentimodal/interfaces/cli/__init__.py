"""The `sentimodal` command line: one module per command, all registered on one app, listed
in the order of the data's path (prepare -> ... -> serve), then the studies."""

from sentimodal.interfaces.cli import (  # noqa: F401, I001  (each import registers its command)
    prepare,
    download,
    features,
    train,
    run_models,
    evaluate,
    predict,
    serve,
    export,
    experiment,
    crossval,
    visualize,
    zeroshot,
    demo,
)
from sentimodal.interfaces.cli.app import app

__all__ = ["app"]
