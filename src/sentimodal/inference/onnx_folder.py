"""An ONNX export folder is untrusted input, checked as a model directory is before use.

What :mod:`sentimodal.export.onnx` writes: ``onnx.json`` (the manifest), ``model.onnx`` (the
graph) and, for graphs that read token ids, ``tokenizer/``. Reading one checks, in order and
before anything sized by the folder's claims is allocated: the manifest's format, version,
labels (two or more distinct strings), inputs and encoder entries (a text length above the
transformer's positions is refused by the encoder itself); that the graph and tokenizer files
are regular files under their size caps whose SHA-256 match the manifest (a truncated, mutated
or swapped file is refused before any parser sees it); and, once onnxruntime has parsed the
graph, that its inputs and its output match the manifest (a foreign graph with a recomputed
digest, or labels of the wrong number). Every problem is one :class:`UserInputError` naming the
file as the folder was given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sentimodal.errors import UserInputError
from sentimodal.features.model_inputs import PRESENT
from sentimodal.files import read_regular, read_tagged_json
from sentimodal.inference.labels import check_labels

GRAPH_FILE = "model.onnx"
MANIFEST_FILE = "onnx.json"
TOKENIZER_DIR = "tokenizer"
ONNX_FORMAT = "sentimodal-onnx"
#: 2: a fusion's graph reads which posts have each modality (``<modality>_present``), and the
#: manifest holds the SHA-256 of the graph and tokenizer files
ONNX_FORMAT_VERSION = 2
#: the tokenizer files copied into an export of a model over a transformer's own ids
#: (``minilm_tokens``, ``mpnet_tokens``, ``hf:`` with output=ids): the ones its folder has
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)
#: protobuf's own limit on one message: no graph this tool writes comes near it (MiniLM +
#: EfficientNet-Lite0 is about 110 MB)
MAX_GRAPH_BYTES = 2**31 - 1
#: a tokenizer file (MiniLM's tokenizer.json is 700 KB)
MAX_TOKENIZER_FILE_BYTES = 16 * 1024 * 1024
#: the manifest (labels, encoders, metrics: KBs for real exports)
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_ORT_TYPES = {"float32": "tensor(float)", "int64": "tensor(int64)", "bool": "tensor(bool)"}


def graph_inputs(modalities: Sequence[str]) -> list[str]:
    """The graph's input names: each modality, then (a fusion) which rows have each one."""
    names = list(modalities)
    if len(names) > 1:
        names += [m + PRESENT for m in modalities]
    return names


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(directory: Path) -> dict[str, Any]:
    """The checked manifest of an export folder (no graph or tokenizer file read yet)."""
    if not directory.is_dir():
        raise UserInputError(f"ONNX export folder not found: {directory}")
    manifest_file = directory / MANIFEST_FILE
    if not manifest_file.exists() or not (directory / GRAPH_FILE).exists():
        raise UserInputError(
            f"{directory} is not an ONNX export (no {MANIFEST_FILE} / {GRAPH_FILE}): "
            f"make one with `sentimodal export MODEL_DIR --format onnx --out DIR`"
        )
    manifest = read_tagged_json(
        manifest_file, ONNX_FORMAT, "ONNX export manifest", MAX_MANIFEST_BYTES
    )
    where = manifest_file
    version = manifest.get("format_version")
    if version != ONNX_FORMAT_VERSION:
        raise UserInputError(
            f"{where}: ONNX export format version {version!r} is not the one this sentimodal "
            f"reads ({ONNX_FORMAT_VERSION}): export the model again"
        )
    check_labels(manifest.get("labels"), where)
    inputs = manifest.get("inputs")
    if inputs not in (["image"], ["text"], ["image", "text"]):
        raise UserInputError(f"{where}: 'inputs' must be ['image'], ['text'] or ['image', 'text']")
    for modality in ("image", "text"):
        entry = manifest.get(f"{modality}_encoder")
        if (modality in inputs) != isinstance(entry, dict):
            raise UserInputError(
                f"{where}: '{modality}_encoder' must be a mapping exactly when the graph "
                f"reads {modality}"
            )
        if entry is None:
            continue
        if not isinstance(entry.get("name"), str) or not isinstance(entry.get("config"), dict):
            raise UserInputError(f"{where}: the {modality} encoder needs a name and a config")
    image = manifest.get("image_encoder")
    if image is not None:
        shape = image.get("shape")
        if not (
            isinstance(shape, list)
            and len(shape) == 3
            and all(type(x) is int and 0 < x <= 4096 for x in shape)
        ):
            raise UserInputError(f"{where}: the image encoder's 'shape' must be 3 sizes (C, H, W)")
    text = manifest.get("text_encoder")
    if text is not None:
        in_graph = text.get("in_graph")
        if not isinstance(in_graph, bool):
            raise UserInputError(f"{where}: the text encoder's 'in_graph' must be true or false")
        if in_graph and not _reads_tokenizer(text):
            raise UserInputError(
                f"{where}: only a transformer's own ids are read in the graph, not those of "
                f"{text['name']!r}"
            )
    digests = manifest.get("files")
    if not isinstance(digests, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in digests.items()
    ):
        raise UserInputError(f"{where}: 'files' must map file names to their SHA-256")
    if GRAPH_FILE not in digests:
        raise UserInputError(f"{where}: 'files' lacks the digest of {GRAPH_FILE}")
    extra = sorted(set(digests) - {GRAPH_FILE, *(f"{TOKENIZER_DIR}/{n}" for n in TOKENIZER_FILES)})
    if extra:
        raise UserInputError(f"{where}: 'files' names a file an export does not hold: {extra[0]!r}")
    if (
        text is not None
        and text["in_graph"]
        and not any(k.startswith(TOKENIZER_DIR + "/") for k in digests)
    ):
        raise UserInputError(f"{where}: the graph reads token ids but no tokenizer file is listed")
    return manifest


def read_checked(directory: Path, manifest: Mapping[str, Any], name: str, limit: int) -> bytes:
    """The bytes of one listed file of the export, refused unless they match their digest."""
    path = directory / name
    if not path.exists() and not path.is_symlink():
        raise UserInputError(f"{directory} is an incomplete ONNX export: {name} is missing")
    data = read_regular(path, limit, error=UserInputError)
    if sha256(data) != manifest["files"][name]:
        raise UserInputError(
            f"{path} does not match its digest in {MANIFEST_FILE} (truncated, changed or from "
            f"another export): export the model again"
        )
    return data


def tokenizer_files(directory: Path, manifest: Mapping[str, Any]) -> dict[str, bytes]:
    """The export's checked tokenizer files, by name."""
    listed = [k for k in manifest["files"] if k.startswith(TOKENIZER_DIR + "/")]
    return {
        k.split("/", 1)[1]: read_checked(directory, manifest, k, MAX_TOKENIZER_FILE_BYTES)
        for k in listed
    }


def check_session(
    session: Any, manifest: Mapping[str, Any], text: tuple[str, int | None], graph: Path
) -> None:
    """The parsed graph reads what the manifest says and scores its labels, else refused.

    ``text``: the text encoder's dtype and vector width (None for token ids, of any length).
    """
    text_dtype, text_dim = text
    expected = {}
    for name in graph_inputs(manifest["inputs"]):
        if name.endswith(PRESENT):
            expected[name] = ("bool", 1)
        elif name == "image":
            expected[name] = ("float32", 4)
        else:
            expected[name] = (text_dtype, 2)
    given = {i.name: i for i in session.get_inputs()}
    outputs = session.get_outputs()
    labels = len(manifest["labels"])
    problem = None
    if sorted(given) != sorted(expected):
        problem = f"its inputs are {sorted(given)}, not {sorted(expected)}"
    else:
        for name, (dtype, rank) in expected.items():
            node = given[name]
            if node.type != _ORT_TYPES.get(dtype) or len(node.shape) != rank:
                problem = (
                    f"input {name!r} is {node.type} of rank {len(node.shape)}, not {dtype} of "
                    f"rank {rank}"
                )
                break
    if problem is None and "image" in expected:
        declared = list(given["image"].shape[1:])
        if declared != list(manifest["image_encoder"]["shape"]):
            problem = f"it reads images of shape {declared}"
    width = given["text"].shape[1] if problem is None and "text" in expected else None
    if text_dim is not None and width is not None and width != text_dim:
        problem = f"it reads text vectors of width {given['text'].shape[1]}, not {text_dim}"
    if problem is None and (
        [o.name for o in outputs] != ["scores"]
        or len(outputs[0].shape) != 2
        or outputs[0].shape[1] != labels
    ):
        shape = outputs[0].shape if outputs else None
        problem = f"its output {shape} does not score the {labels} labels"
    if problem is not None:
        raise UserInputError(f"{graph} is not the graph {MANIFEST_FILE} describes: {problem}")


def _reads_tokenizer(entry: Mapping[str, Any]) -> bool:
    from sentimodal.features.text_encoders.hf import reads_tokenizer

    config = entry.get("config")
    return isinstance(config, dict) and reads_tokenizer(str(entry.get("name")), config)
