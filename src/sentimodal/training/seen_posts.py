"""Which posts a model was trained on, kept as fingerprints of their content, so that an
evaluation can say how many of the posts it scores the model has already seen.

A post's fingerprint is a 64-bit hash of its text and of its image's name and size (a URL as
it is): a copy of the dataset elsewhere, or a table holding the same posts under new ids, is
recognised, without reading any image. Stored in the model directory as one safetensors
tensor; a model saved without it says nothing about overlap rather than guessing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors import SafetensorError
from safetensors.numpy import load, save

from sentimodal.errors import UserInputError
from sentimodal.files import write_atomic
from sentimodal.net import is_url

SEEN_FILE = "training_posts.safetensors"
_KEY = "fingerprints"


def post_fingerprints(examples: pd.DataFrame) -> np.ndarray:
    """One uint64 per row of a prepared dataset's examples (``text`` and ``image`` columns,
    either may be missing or empty)."""
    texts = _column(examples, "text")
    images = _column(examples, "image")
    out = np.empty(len(examples), dtype=np.uint64)
    for row, (text, image) in enumerate(zip(texts, images, strict=True)):
        key = f"{text}\x00{_image_key(image)}".encode("utf-8", "surrogatepass")
        out[row] = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
    return out


def seen_mask(examples: pd.DataFrame, seen: np.ndarray) -> np.ndarray:
    """True for each row whose content is one of the ``seen`` fingerprints."""
    return np.isin(post_fingerprints(examples), seen)


def save_seen(seen: np.ndarray, directory: Path) -> None:
    write_atomic(directory / SEEN_FILE, save({_KEY: np.unique(seen.astype(np.uint64))}))


def load_seen(directory: Path) -> np.ndarray | None:
    """The fingerprints a model directory records, None when it records none (older models)."""
    path = directory / SEEN_FILE
    if not path.is_file():
        return None
    try:
        tensors = load(path.read_bytes())
    except (SafetensorError, ValueError, OSError) as exc:
        raise UserInputError(f"{path}: not a fingerprint file ({exc})") from None
    seen = tensors.get(_KEY)
    if seen is None or seen.dtype != np.uint64 or seen.ndim != 1:
        raise UserInputError(f"{path}: expected one 1-D uint64 tensor {_KEY!r}")
    return seen


def _column(examples: pd.DataFrame, name: str) -> list[str]:
    if name not in examples:
        return [""] * len(examples)
    return ["" if pd.isna(v) else str(v) for v in examples[name].tolist()]


def _image_key(image: str) -> str:
    if not image or is_url(image):
        return image
    path = Path(image)
    try:
        size = path.stat().st_size
    except OSError:
        size = -1
    return f"{path.name}:{size}"
