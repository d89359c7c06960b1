"""Export a model directory to ONNX: one graph from pixels and token ids to class scores.

The graph holds everything after decoding and tokenising: the image encoder's network, the
feature standardisation learned on the train split, and the model with its head (so the
output is the scores ``predict`` reports: probabilities, or cosines for embedding heads),
and the temperature fitted on val when the model applies one.
Beside it go ``onnx.json`` (labels, inputs, how to preprocess), the model directory's config
and metrics (for ``/v1/model``), and, for ``minilm_tokens`` models, MiniLM's tokenizer files,
so that :mod:`sentimodal.inference.onnx_runtime` needs neither the training code nor the
packages that ship pretrained weights. The manifest holds each file's SHA-256, checked before
the runtime parses anything.

Posts that lack a modality: a fusion's graph has one boolean input per modality,
``<modality>_present`` (which rows have it), rather than one graph per modality set. The masks
are exactly what the torch networks read (``present`` in :mod:`sentimodal.models.base`), so the
graph is the same network doing the same fallback (late fusion weighs the branch a post lacks
by zero, early fusions read the train mean for it, cross-attention shuts its gate), one file,
one session, and a batch mixing full and half posts runs in one call. The missing modality's
input is zeros (padding ids, zero pixels) whose features the graph replaces by zeros after
standardisation, as :func:`~sentimodal.features.model_inputs.model_inputs` does for torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sentimodal import __version__
from sentimodal.errors import UserInputError
from sentimodal.extras import require_extra
from sentimodal.features.batch_work import is_token_encoder
from sentimodal.features.model_inputs import PRESENT
from sentimodal.features.text_encoders.hf import reads_tokenizer
from sentimodal.files import write_atomic, write_json_atomic
from sentimodal.inference.onnx_folder import (
    GRAPH_FILE,
    MANIFEST_FILE,
    ONNX_FORMAT,
    ONNX_FORMAT_VERSION,
    TOKENIZER_DIR,
    TOKENIZER_FILES,
    graph_inputs,
    sha256,
)
from sentimodal.training import model_dir
from sentimodal.training.estimator import SentimentModel


class _ScoreGraph(nn.Module):
    """(pixels?, text?, presence masks of a fusion) -> scores: image network,
    standardisation, model, head."""

    def __init__(self, model: SentimentModel, inputs: list[str]) -> None:
        super().__init__()
        self.inputs = inputs
        self.names = graph_inputs(inputs)
        self.net = model.network_
        self.calibration = model.calibration_
        self.image = model.image_encoder_.module() if "image" in inputs else None
        stats = getattr(model.scaler_, "stats_", {})
        for key in ("text", "image"):
            mean, std = stats.get(key, (None, None))
            self.register_buffer(f"{key}_mean", None if mean is None else torch.from_numpy(mean))
            self.register_buffer(f"{key}_std", None if std is None else torch.from_numpy(std))

    def _scaled(self, key: str, values: torch.Tensor) -> torch.Tensor:
        mean, std = getattr(self, f"{key}_mean"), getattr(self, f"{key}_std")
        # vectors (N, dim) or a grid of them (N, positions, dim): per channel either way
        if mean is None or values.dim() not in (2, 3) or values.dtype != torch.float32:
            return values
        return (values - mean) / std

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        given = dict(zip(self.names, tensors, strict=True))
        batch: dict[str, torch.Tensor] = {}
        for name in self.inputs:
            value = given[name]
            if name == "image":
                assert self.image is not None
                value = self.image(value).float()
            value = self._scaled(name, value)
            mask = given.get(name + PRESENT)
            if mask is not None:
                batch[name + PRESENT] = mask
                if value.is_floating_point():  # a missing modality reads the train mean
                    keep = mask.reshape(-1, *([1] * (value.dim() - 1)))
                    value = torch.where(keep, value, torch.zeros_like(value))
            batch[name] = value
        scores = self.net.scores(batch)
        # the temperature fitted on val, as the estimator applies it in torch
        return self.calibration.apply_torch(scores) if self.calibration is not None else scores


def export_onnx(
    directory: str | Path,
    out: str | Path,
    *,
    opset: int = 17,
    int8: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> Path:
    """Write the ONNX export of the model directory ``directory`` into ``out``.

    ``int8``: quantise the matrix products (the text transformer's linear layers; the image
    CNN's convolutions and the small heads stay float) to int8 weights with dynamic int8
    activations, onnxruntime's dynamic quantisation. ``on_step`` hears the name of each step
    as it starts (tracing a transformer takes a while: the CLI shows where it is).
    """
    require_extra("onnx", "ONNX export")
    step = on_step or (lambda _: None)
    directory, out = Path(directory), Path(out)
    step("loading the model")
    model = SentimentModel.load(directory)
    run = model.run_
    inputs: list[str] = []
    text_entry: dict[str, Any] | None = None
    if run.uses_image:
        inputs.append("image")
    if run.uses_text:
        encoder = model.text_encoder_
        in_graph = reads_tokenizer(encoder.name, encoder.config)
        if is_token_encoder(encoder) and not in_graph:
            raise UserInputError(
                f"ONNX export supports a transformer's own token ids only, not those of "
                f"{encoder.name!r} (its model reads token lengths)"
            )
        inputs.append("text")
        text_entry = {"name": encoder.name, "config": encoder.config, "in_graph": in_graph}
    graph = _ScoreGraph(model, inputs).eval()
    examples: list[torch.Tensor] = []
    dynamic: dict[str, dict[int, str]] = {}
    image_entry: dict[str, Any] | None = None
    if "image" in inputs:
        image = model.image_encoder_
        sample = image.transform(_grey_image())
        examples.append(torch.stack([sample, sample]))
        dynamic["image"] = {0: "batch"}
        image_entry = {"name": image.name, "config": image.config, "shape": list(sample.shape)}
    if "text" in inputs:
        encoded = model.text_encoder_.encode(["an example post", "another one"])
        tensor = torch.from_numpy(np.asarray(encoded))
        examples.append(tensor)
        dynamic["text"] = (
            {0: "batch", 1: "tokens"} if tensor.dim() == 2 and _ids(tensor) else {0: "batch"}
        )
    for name in graph_inputs(inputs)[len(inputs) :]:
        # traced with one post lacking it, so the fallback's ops are in the graph
        examples.append(torch.tensor([True, False]))
        dynamic[name] = {0: "batch"}
    out.mkdir(parents=True, exist_ok=True)
    step("tracing the model into an ONNX graph")
    with torch.inference_mode():
        reference = graph(*examples)
    with warnings.catch_warnings():
        # the tracer's notes on shapes it cannot prove; dynamic axes and the parity test cover it
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            tuple(examples),
            str(out / GRAPH_FILE),
            input_names=graph_inputs(inputs),
            output_names=["scores"],
            dynamic_axes={**dynamic, "scores": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    if int8:
        step("quantising the matrix products to int8")
        _quantize(out / GRAPH_FILE)
    files = {GRAPH_FILE: sha256((out / GRAPH_FILE).read_bytes())}
    if text_entry is not None and text_entry["in_graph"]:
        tokenizer = out / TOKENIZER_DIR
        tokenizer.mkdir(exist_ok=True)
        for name in TOKENIZER_FILES:
            source = model.text_encoder_.folder / name
            if source.is_file():
                data = source.read_bytes()
                write_atomic(tokenizer / name, data)
                files[f"{TOKENIZER_DIR}/{name}"] = sha256(data)
    config = model_dir.read_json(directory / model_dir.CONFIG_FILE)
    write_json_atomic(
        out / MANIFEST_FILE,
        {
            "format": ONNX_FORMAT,
            "format_version": ONNX_FORMAT_VERSION,
            "sentimodal_version": __version__,
            "labels": list(model.classes_),
            "inputs": inputs,
            "image_encoder": image_entry,
            "text_encoder": text_entry,
            "head": run.head,
            "model": run.model,
            "encoders": config.get("encoders", {}),
            "metrics": model.metrics_,
            "calibration": (
                {"method": model.calibration_.method, "temperature": model.calibration_.effective}
                if model.calibration_ is not None
                else None
            ),
            "trained_with": config.get("sentimodal_version"),
            "example_scores": reference.tolist(),
            "quantization": "int8 dynamic (MatMul)" if int8 else None,
            "files": files,
        },
    )
    return out


def _quantize(graph: Path) -> None:
    """Replace the float graph by its dynamically quantised twin (MatMul weights in int8)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    staged = graph.with_name(f".int8-{graph.name}")
    quantize_dynamic(graph, staged, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    staged.replace(graph)


def _ids(tensor: torch.Tensor) -> bool:
    return not torch.is_floating_point(tensor)


def _grey_image():
    from PIL import Image

    return Image.new("RGB", (320, 240), (120, 130, 140))
