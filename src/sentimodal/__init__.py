"""sentimodal: multimodal (image + text) sentiment analysis.

The top-level names are imported lazily so that `import sentimodal` stays cheap (no torch
import until a model or encoder is used).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "prepare": "sentimodal.preparation.pipeline",
    "PrepareConfig": "sentimodal.preparation.config",
    "PreparedDataset": "sentimodal.preparation.dataset",
    "extract_features": "sentimodal.features.store",
    "load_features": "sentimodal.features.reading",
    "list_image_encoders": "sentimodal.features.image_encoders",
    "get_image_encoder": "sentimodal.features.image_encoders",
    "list_text_encoders": "sentimodal.features.text_encoders",
    "get_text_encoder": "sentimodal.features.text_encoders",
    "SentimentModel": "sentimodal.training.estimator",
    "RunConfig": "sentimodal.training.run_config",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sentimodal' has no attribute {name!r}")
