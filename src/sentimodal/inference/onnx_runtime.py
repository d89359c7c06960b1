"""Run an ONNX export (see :mod:`sentimodal.export.onnx`) with onnxruntime.

Posts go through the same :class:`~sentimodal.inference.posts.PostBatchWork` as with torch:
images are decoded and transformed by the encoder's own ``read`` (its pixels, not its
weights: the encoder is built without them), token ids come from the tokenizer files copied
into the export, and the graph does the rest. No training code is imported, and no package
that ships pretrained weights is needed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sentimodal.errors import UserInputError
from sentimodal.features.image_encoders import get_image_encoder
from sentimodal.features.image_encoders.base import ImageEncoder
from sentimodal.features.image_encoders.weights import RANDOM
from sentimodal.features.text_encoders import saved_text_encoder
from sentimodal.features.text_encoders.minilm_tokens import wordpiece_ids
from sentimodal.features.text_normalize import normalize_texts
from sentimodal.files import read_tagged_json
from sentimodal.inference.posts import PostBatchWork

GRAPH_FILE = "model.onnx"
MANIFEST_FILE = "onnx.json"
TOKENIZER_DIR = "tokenizer"
ONNX_FORMAT = "sentimodal-onnx"


class _Pixels(ImageEncoder):
    """An image encoder's decoding and transform, with the network left to the graph: its
    ``encode`` hands the transformed pixels on unchanged."""

    def __init__(self, encoder: ImageEncoder, shape: Sequence[int]) -> None:
        self.inner = encoder
        self.name = encoder.name
        self.shape = tuple(shape)
        self.dim = int(np.prod(self.shape))
        self.load_size = encoder.load_size

    @property
    def config(self) -> dict[str, Any]:
        return self.inner.config

    @property
    def identity(self) -> str:
        return f"onnx-pixels:{self.name}"

    def transform(self, image: Any) -> torch.Tensor:
        return self.inner.transform(image)

    def module(self) -> torch.nn.Module:
        return torch.nn.Identity()

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        return batch.numpy()


class _Tokens:
    """MiniLM WordPiece ids from the tokenizer files copied into the export (same settings
    as the ``minilm_tokens`` encoder: its text normalisation, [CLS]/[SEP], cut and
    post-padded with 0 to ``max_len``)."""

    dtype = "int64"

    def __init__(self, folder: Path, config: Mapping[str, Any]) -> None:
        import transformers

        self.name = "minilm_tokens"
        self.max_len = int(config["max_len"])
        self.normalize = str(config["normalize"])
        self.shape = (self.max_len,)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(folder), local_files_only=True
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return wordpiece_ids(self.tokenizer, normalize_texts(texts, self.normalize), self.max_len)


class _Unscaled:
    """Standardisation is inside the graph."""

    def transform(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(data)


class OnnxModel:
    """An ONNX export loaded for prediction: ``work`` (posts -> scores), ``classes``, ``info``."""

    def __init__(self, directory: Path, manifest: dict[str, Any]) -> None:
        self.directory = directory
        self.manifest = manifest
        self.classes: list[str] = list(manifest["labels"])
        self.inputs: list[str] = list(manifest["inputs"])
        self._session: Any = None
        self._pid = -1
        image = text = None
        if manifest.get("image_encoder"):
            entry = manifest["image_encoder"]
            config = dict(entry["config"])
            if "weights" in config:
                config["weights"] = RANDOM  # the weights are in the graph
            image = _Pixels(get_image_encoder(entry["name"], **config), entry["shape"])
        if manifest.get("text_encoder"):
            entry = manifest["text_encoder"]
            if entry["in_graph"]:
                tokens = saved_text_encoder(entry["name"], entry["config"])
                text = _Tokens(directory / TOKENIZER_DIR, tokens.config)
            else:
                text = saved_text_encoder(entry["name"], entry["config"])
        self.work = PostBatchWork(
            image_encoder=image,
            text_encoder=text,  # type: ignore[arg-type]
            scaler=_Unscaled(),
            score=self.scores,
            classes=self.classes,
            fallback=False,  # the graph reads every modality of every post
        )

    @classmethod
    def load(cls, directory: str | Path) -> OnnxModel:
        directory = Path(directory)
        manifest_file = directory / MANIFEST_FILE
        if not manifest_file.is_file() or not (directory / GRAPH_FILE).is_file():
            raise UserInputError(
                f"{directory} is not an ONNX export (no {MANIFEST_FILE} / {GRAPH_FILE}): "
                f"make one with `sentimodal export MODEL_DIR --format onnx --out DIR`"
            )
        manifest = read_tagged_json(manifest_file, ONNX_FORMAT, "ONNX export manifest")
        return cls(directory, manifest)

    def session(self) -> Any:
        """The onnxruntime session of this process (made after a fork, never inherited), on
        as many threads as torch is given here (one per worker process, all cores alone)."""
        if self._session is None or self._pid != os.getpid():
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = max(1, torch.get_num_threads())
            options.inter_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(
                str(self.directory / GRAPH_FILE), options, providers=["CPUExecutionProvider"]
            )
            self._pid = os.getpid()
        return self._session

    def scores(self, data: Mapping[str, np.ndarray]) -> np.ndarray:
        feeds: dict[str, np.ndarray] = {}
        for name in self.inputs:
            values = data[name]
            if name == "text" and values.dtype.kind in "iu":
                values = _trim(values)
            feeds[name] = np.ascontiguousarray(values)
        return self.session().run(["scores"], feeds)[0]

    def info(self) -> dict[str, Any]:
        manifest = self.manifest
        return {
            "labels": self.classes,
            "head": manifest.get("head"),
            "model": manifest.get("model"),
            "open_labels": False,
            "inputs": {"text": "text" in self.inputs, "image": "image" in self.inputs},
            "encoders": manifest.get("encoders", {}),
            "metrics": manifest.get("metrics", {}),
            "version": {
                "sentimodal": manifest.get("sentimodal_version"),
                "trained_with": manifest.get("trained_with"),
                "format": manifest.get("format_version"),
            },
            "runtime": "onnx",
        }


def _trim(ids: np.ndarray) -> np.ndarray:
    """Token ids cut after the batch's last non-padding column (padding is masked anyway)."""
    used = np.flatnonzero((ids != 0).any(axis=0))
    return ids[:, : int(used[-1]) + 1 if used.size else 1]
