"""An ONNX export folder is untrusted input, like a model directory: a broken, truncated,
foreign or tampered file is one line naming it (exit 2 in the CLI), refused before anything
its claims size is allocated."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hardening import assert_user_error, invoke
from sentimodal import SentimentModel
from sentimodal.errors import UserInputError
from sentimodal.export.onnx import export_onnx
from sentimodal.inference.onnx_runtime import OnnxModel
from server_fixtures import sample_posts

pytestmark = pytest.mark.usefixtures("one_thread")


def _export(root: Path, **settings: object) -> Path:
    settings = {**settings, "feature_workers": 0, "train": {"epochs": 1}}
    model = SentimentModel(**settings).fit(sample_posts(48), work_dir=root / "w", progress=False)
    return export_onnx(model.save(root / "model"), root / "export")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A late fusion of one-layer MiniLM ids (tokenizer/ in the export) and the pixel CNN."""
    return _export(
        tmp_path_factory.mktemp("tokens"),
        model="late",
        image_encoder="pixels32",
        image_encoder_config={"flatten": False},
        model_options={"text": {"num_layers": 1}},
    )


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another model's export (GloVe and pixel vectors, two labels): a foreign graph."""
    root = tmp_path_factory.mktemp("other")
    model = SentimentModel(
        model="concat", text_encoder="glove_mean", image_encoder="pixels32", feature_workers=0,
        train={"epochs": 1},
    )  # fmt: skip
    posts = sample_posts(48)
    posts["label"] = ["negative" if x == "negative" else "other" for x in posts["label"]]
    model.fit(posts, work_dir=root / "w", progress=False)
    return export_onnx(model.save(root / "model"), root / "export")


@pytest.fixture
def folder(exported: Path, tmp_path: Path) -> Path:
    """A copy of the export to break."""
    return Path(shutil.copytree(exported, tmp_path / "export"))


def edit_manifest(folder: Path, change: Callable[[dict], object]) -> None:
    manifest = json.loads((folder / "onnx.json").read_text())
    change(manifest)
    (folder / "onnx.json").write_text(json.dumps(manifest))


def redigest(folder: Path, name: str = "model.onnx") -> None:
    """What a crafted folder does: the digest made to match the replaced file."""
    digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    edit_manifest(folder, lambda m: m["files"].update({name: digest}))


def refused(folder: Path, needle: str) -> str:
    """OnnxModel.load and `predict --runtime onnx` both refuse, on one line naming it."""
    with pytest.raises(UserInputError, match=needle) as caught:
        OnnxModel.load(folder)
    message = str(caught.value)
    assert "\n" not in message.strip() and "Traceback" not in message
    result = invoke("predict", folder, "--runtime", "onnx", "--text", "a lovely day")
    assert_user_error(result, needle)
    return message


def test_the_untouched_export_loads(folder: Path) -> None:
    model = OnnxModel.load(folder)
    assert model.classes == ["negative", "neutral", "positive"]


@pytest.mark.parametrize("crafted", [False, True], ids=["as-is", "digest-matched"])
def test_a_random_graph_is_refused(folder: Path, crafted: bool) -> None:
    (folder / "model.onnx").write_bytes(os.urandom(4096))
    if crafted:
        redigest(folder)
    refused(folder, "not a loadable ONNX graph" if crafted else "does not match its digest")


@pytest.mark.parametrize("crafted", [False, True], ids=["as-is", "digest-matched"])
def test_a_truncated_graph_is_refused(folder: Path, crafted: bool) -> None:
    data = (folder / "model.onnx").read_bytes()
    (folder / "model.onnx").write_bytes(data[: len(data) // 2])
    if crafted:
        redigest(folder)
    refused(folder, "not a loadable ONNX graph" if crafted else "does not match its digest")


@pytest.mark.parametrize("crafted", [False, True], ids=["as-is", "digest-matched"])
def test_a_foreign_graph_is_refused(folder: Path, other: Path, crafted: bool) -> None:
    shutil.copyfile(other / "model.onnx", folder / "model.onnx")
    if crafted:
        redigest(folder)
    refused(folder, "is not the graph onnx.json describes" if crafted else "does not match")


def test_a_graph_symlinked_to_dev_zero_is_refused(folder: Path) -> None:
    (folder / "model.onnx").unlink()
    os.symlink("/dev/zero", folder / "model.onnx")
    refused(folder, "not a regular file")


def test_a_missing_graph_is_refused(folder: Path) -> None:
    (folder / "model.onnx").unlink()
    refused(folder, "is not an ONNX export")


def test_a_missing_tokenizer_is_refused(folder: Path) -> None:
    shutil.rmtree(folder / "tokenizer")
    refused(folder, "incomplete ONNX export: tokenizer/")


def test_a_changed_tokenizer_is_refused(folder: Path) -> None:
    vocab = folder / "tokenizer" / "vocab.txt"
    vocab.write_text("[PAD]\n" + vocab.read_text())
    refused(folder, "vocab.txt does not match its digest")


def test_a_garbage_tokenizer_with_matching_digest_is_refused(folder: Path) -> None:
    (folder / "tokenizer" / "tokenizer.json").write_bytes(b"{not json")
    redigest(folder, "tokenizer/tokenizer.json")
    refused(folder, "unreadable tokenizer")


@pytest.mark.parametrize(
    ("labels", "needle"),
    [
        (None, "non-empty strings"),
        ([], "at least two"),
        (["a", "a", "b"], "listed twice"),
        (["negative", "positive"], "does not score the 2 labels"),
        ([f"l{k}" for k in range(4)], "does not score the 4 labels"),
    ],
    ids=["none", "empty", "twice", "too-few", "too-many"],
)
def test_bad_labels_are_refused(folder: Path, labels: object, needle: str) -> None:
    if labels is None:
        edit_manifest(folder, lambda m: m.pop("labels"))
    else:
        edit_manifest(folder, lambda m: m.update(labels=labels))
    refused(folder, needle)


def test_a_million_labels_are_refused_fast_and_small(folder: Path) -> None:
    edit_manifest(folder, lambda m: m.update(labels=[f"l{k}" for k in range(10**6)]))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(UserInputError, match="does not score the 1000000 labels"):
        OnnxModel.load(folder)
    assert time.perf_counter() - started < 10
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 500, f"memory grew by {grown_mb:.0f} MB"


@pytest.mark.parametrize("max_len", [10_000_000, 513, 2, "128", True])
def test_a_text_length_past_the_transformer_is_refused(folder: Path, max_len: object) -> None:
    edit_manifest(folder, lambda m: m["text_encoder"]["config"].update(max_len=max_len))
    started = time.perf_counter()
    refused(folder, "max_len must be a whole number from 3 to 512")
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda m: m.update(format_version=1), "export the model again"),
        (lambda m: m.update(format="sentimodal-model"), "not a sentimodal ONNX export manifest"),
        (lambda m: m.update(inputs=["audio"]), "'inputs' must be"),
        (lambda m: m.update(image_encoder=None), "'image_encoder' must be a mapping"),
        (lambda m: m["image_encoder"].update(shape=[3, 10**9, 32]), "3 sizes"),
        (lambda m: m["image_encoder"].update(shape=[3, 64, 64]), "gives pixels of shape"),
        (lambda m: m["image_encoder"].update(name="nope"), "unknown image encoder"),
        (lambda m: m["image_encoder"]["config"].update(bogus=1), "bad settings"),
        (lambda m: m["text_encoder"].update(in_graph="yes"), "'in_graph' must be"),
        (lambda m: m["text_encoder"]["config"].update(normalize=7), "text normalisation"),
        (lambda m: m.pop("files"), "'files' must map"),
        (lambda m: m["files"].update({"../../etc/passwd": "0"}), "does not hold"),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_a_tampered_manifest_is_one_line(folder: Path, change, needle: str) -> None:
    edit_manifest(folder, change)
    refused(folder, needle)


def test_a_manifest_that_is_not_json_is_one_line(folder: Path) -> None:
    (folder / "onnx.json").write_bytes(b"\xff\xfe{")
    refused(folder, "unreadable ONNX export manifest")
