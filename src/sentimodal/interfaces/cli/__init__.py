"""The `sentimodal` command line: one module per command, all registered on one app."""

from sentimodal.interfaces.cli.app import app

__all__ = ["app"]
