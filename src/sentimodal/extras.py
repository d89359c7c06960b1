"""Optional parts of the install (pip extras) and the one error for a missing one.

The core install prepares, trains, evaluates and predicts; serving, ONNX, Ray and timm's image
models come as extras so that it stays small. Every optional import goes through
:func:`require_extra` or :func:`import_extra`, so a missing extra is always the same one line
naming it (a :class:`MissingExtra`, exit code 2 in the CLI), never a traceback from deep inside
a command.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from sentimodal.errors import UserInputError

#: extra -> the modules it provides (pyproject's [project.optional-dependencies] installs them)
EXTRAS: dict[str, tuple[str, ...]] = {
    "server": ("fastapi", "uvicorn", "python_multipart", "fastapi_offline"),
    "onnx": ("onnx", "onnxruntime"),
    "ray": ("ray", "ray.data", "ray.train.torch"),
    "encoders": ("timm",),
}


class MissingExtra(UserInputError):
    """An optional part of sentimodal is not installed; the message says how to add it."""

    def __init__(self, purpose: str, extra: str) -> None:
        super().__init__(f"{purpose} needs the [{extra}] extra: pip install 'sentimodal[{extra}]'")
        self.extra = extra


def import_extra(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` of ``extra``, or raise :class:`MissingExtra` saying ``purpose`` needs it.

    Only the module itself being absent is a missing extra; an installed module that fails to
    import (a broken dependency inside it) raises its own error."""
    if module not in EXTRAS[extra]:
        raise ValueError(f"{module!r} is not a module of the [{extra}] extra")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.split(".")[0] != exc.name.split(".")[0]:
            raise
        raise MissingExtra(purpose, extra) from None


def require_extra(extra: str, purpose: str) -> None:
    """Check that every module of ``extra`` imports (before a command starts its work)."""
    for module in EXTRAS[extra]:
        import_extra(module, extra, purpose)
