"""Run an ONNX export (see :mod:`sentimodal.export.onnx`) with onnxruntime.

Posts go through the same :class:`~sentimodal.inference.posts.PostBatchWork` as with torch:
images are decoded and transformed by the encoder's own ``read`` (its pixels, not its
weights: the encoder is built without them), token ids come from the tokenizer files copied
into the export, and the graph does the rest. No training code is imported, and no package
that ships pretrained weights is needed.

A fusion's graph is told which posts have each modality (``<modality>_present``, the masks
the torch networks read), so a post with only a text or only an image is labelled from what
it has, as on the torch path. The folder is checked by :mod:`sentimodal.inference.onnx_folder`
before anything is built from it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sentimodal.errors import UserInputError
from sentimodal.extras import import_extra
from sentimodal.features.image_encoders import get_image_encoder
from sentimodal.features.image_encoders.base import ImageEncoder
from sentimodal.features.image_encoders.weights import RANDOM
from sentimodal.features.text_encoders import saved_text_encoder, text_encoder_class
from sentimodal.features.text_encoders.hf import check_max_len, token_ids
from sentimodal.features.text_normalize import (
    DEFAULT_TEXT_NORMALIZATION,
    check_normalization,
    normalize_texts,
)
from sentimodal.inference import onnx_folder
from sentimodal.inference.onnx_folder import GRAPH_FILE, MANIFEST_FILE, MAX_GRAPH_BYTES
from sentimodal.inference.posts import PostBatchWork


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

    def check_shape(self, where: Path) -> None:
        """The encoder's transform gives the pixels the graph reads (else every post fails)."""
        from PIL import Image

        given = tuple(self.transform(Image.new("RGB", (64, 48))).shape)
        if given != self.shape:
            raise UserInputError(
                f"{where}: the {self.name} encoder gives pixels of shape {list(given)}, the "
                f"graph reads {list(self.shape)}"
            )

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        return batch.numpy()


class _Tokens:
    """A transformer's own ids from the tokenizer files copied into the export, as its text
    encoder gives them (``minilm_tokens``, ``mpnet_tokens``, ``hf:`` with output=ids: the
    text normalisation, the tokenizer's special tokens, cut and post-padded with 0 to
    ``max_len``, plus one where the tokenizer pads with another id). The encoder itself is not
    built: its weights' folder need not be on the serving machine."""

    dtype = "int64"

    def __init__(
        self, name: str, files: Mapping[str, bytes], config: Mapping[str, Any], where: Path
    ) -> None:
        import transformers

        self.name = name
        config = {**text_encoder_class(name).legacy_config, **config}
        self.max_len = check_max_len(config.get("max_len", 128), name)
        self.normalize = check_normalization(
            str(config.get("normalize", DEFAULT_TEXT_NORMALIZATION))
        )
        self.shape = (self.max_len,)
        # the checked bytes, not the folder: what is parsed is what was checked
        with tempfile.TemporaryDirectory() as folder:
            for name, data in files.items():
                Path(folder, name).write_bytes(data)
            try:
                self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                    folder, local_files_only=True
                )
            except Exception as exc:  # tokenizers' and transformers' errors share no base
                message = " ".join(str(exc).split())[:200]
                raise UserInputError(f"{where}: unreadable tokenizer ({message})") from None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return token_ids(self.tokenizer, normalize_texts(texts, self.normalize), self.max_len)


class _Unscaled:
    """Standardisation is inside the graph."""

    def transform(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(data)


class OnnxModel:
    """An ONNX export loaded for prediction: ``work`` (posts -> scores), ``classes``, ``info``."""

    def __init__(self, directory: Path, manifest: dict[str, Any]) -> None:
        """``manifest``: checked by :func:`onnx_folder.read_manifest` (``load`` does it)."""
        self.directory = directory
        self.manifest = manifest
        self.classes: list[str] = list(manifest["labels"])
        self.inputs: list[str] = list(manifest["inputs"])
        self.graph_inputs = onnx_folder.graph_inputs(self.inputs)
        self._session: Any = None
        self._pid = -1
        where = directory / MANIFEST_FILE
        image = text = None
        if manifest["image_encoder"] is not None:
            entry = manifest["image_encoder"]
            config = dict(entry["config"])
            if "weights" in config:
                config["weights"] = RANDOM  # the weights are in the graph
            built = _built(lambda: get_image_encoder(entry["name"], **config), entry, where)
            image = _Pixels(built, entry["shape"])
            image.check_shape(where)
        if manifest["text_encoder"] is not None:
            entry = manifest["text_encoder"]
            if entry["in_graph"]:
                files = onnx_folder.tokenizer_files(directory, manifest)
                text = _built(
                    lambda: _Tokens(
                        entry["name"], files, entry["config"], directory / onnx_folder.TOKENIZER_DIR
                    ),
                    entry,
                    where,
                )
            else:
                text = _built(
                    lambda: saved_text_encoder(entry["name"], entry["config"]), entry, where
                )
        self.work = PostBatchWork(
            image_encoder=image,
            text_encoder=text,  # type: ignore[arg-type]
            scaler=_Unscaled(),
            score=self.scores,
            classes=self.classes,
        )
        vectors = text is not None and np.dtype(text.dtype).kind == "f"
        text_form = (
            (str(np.dtype(text.dtype)), int(np.prod(text.shape)) if vectors else None)
            if text is not None
            else ("", None)
        )
        onnx_folder.check_session(self.session(), manifest, text_form, directory / GRAPH_FILE)

    @classmethod
    def load(cls, directory: str | Path) -> OnnxModel:
        """The export in ``directory``, every file checked (see :mod:`onnx_folder`)."""
        directory = Path(directory)
        return cls(directory, onnx_folder.read_manifest(directory))

    def session(self) -> Any:
        """The onnxruntime session of this process (made after a fork, never inherited), on
        as many threads as torch is given here (one per worker process, all cores alone)."""
        if self._session is None or self._pid != os.getpid():
            onnxruntime = import_extra("onnxruntime", "onnx", "the onnx runtime")
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = max(1, torch.get_num_threads())
            options.inter_op_num_threads = 1
            graph = onnx_folder.read_checked(
                self.directory, self.manifest, GRAPH_FILE, MAX_GRAPH_BYTES
            )
            try:
                # from the checked bytes: no path, so no external data file is ever opened
                self._session = onnxruntime.InferenceSession(
                    graph, options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # onnxruntime's errors share no base below Exception
                message = " ".join(str(exc).split())[:200]
                raise UserInputError(
                    f"{self.directory / GRAPH_FILE}: not a loadable ONNX graph ({message})"
                ) from None
            self._pid = os.getpid()
        return self._session

    def scores(self, data: Mapping[str, np.ndarray]) -> np.ndarray:
        feeds: dict[str, np.ndarray] = {}
        for name in self.inputs:
            values = data[name]
            if name == "text" and values.dtype.kind in "iu":
                values = _trim(values)
            feeds[name] = np.ascontiguousarray(values)
        rows = len(feeds[self.inputs[0]])
        for name in self.graph_inputs[len(self.inputs) :]:
            # absent: every post of the batch has that modality
            feeds[name] = np.ascontiguousarray(data.get(name, np.ones(rows, dtype=bool)))
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
            "calibration": manifest.get("calibration"),
            "version": {
                "sentimodal": manifest.get("sentimodal_version"),
                "trained_with": manifest.get("trained_with"),
                "format": manifest.get("format_version"),
            },
            "runtime": "onnx",
        }


def _built(build: Callable[[], Any], entry: Mapping[str, Any], where: Path) -> Any:
    """An encoder from its manifest entry; settings it cannot take are the folder's fault."""
    try:
        return build()
    except (TypeError, ValueError) as exc:
        message = " ".join(str(exc).split())[:200]
        raise UserInputError(
            f"{where}: bad {entry['name']!r} encoder settings ({message})"
        ) from None


def _trim(ids: np.ndarray) -> np.ndarray:
    """Token ids cut after the batch's last non-padding column (padding is masked anyway)."""
    used = np.flatnonzero((ids != 0).any(axis=0))
    return ids[:, : int(used[-1]) + 1 if used.size else 1]
