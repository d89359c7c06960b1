"""Fuzzing the readers, the config loaders and ONNX export folders: arbitrary bytes and
structures give posts, rejects or the tool's one-line user errors, never another exception,
in bounded time and memory."""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentimodal.config import load_data
from sentimodal.errors import UserInputError
from sentimodal.features.store import FeatureConfig
from sentimodal.inference.stream import REJECT, Columns, read_chunks
from sentimodal.preparation.pipeline import PrepareConfig
from sentimodal.sources.mvsa import read_mvsa
from sentimodal.sources.mvso import load_anp_scores, read_photo_xml
from sentimodal.sources.record import Post, Reject
from sentimodal.sources.table import read_table
from sentimodal.training.run_config import RunConfig

FUZZ = settings(
    max_examples=100,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # the same inputs on every run: a failure reproduces
)
#: what one example may allocate in Python objects (a YAML bomb would take gigabytes)
MEMORY_LIMIT = 64 * 1024 * 1024

#: bytes near the formats' syntax, so that the fuzzer reaches past the first parse error
SYNTAX = st.sampled_from(
    [b"\t", b",", b"\n", b"\r\n", b'"', b"{", b"}", b"[", b"]", b":", b"&a ", b"*a", b"<<: ",
     b"\xef\xbb\xbf", b"\x00", b"\xff", b"\xe9", b"positive", b"neg", b"id", b"text", b"label",
     b"../", b"/etc/passwd", b".inf", b"NaN", b"1e999", b"<rsp stat='ok'>", b"<photo id='1'>",
     b"</photo></rsp>", b"<!DOCTYPE x [<!ENTITY a 'b'>]>", b"&a;"]
)  # fmt: skip
NOISY_BYTES = st.lists(st.one_of(SYNTAX, st.binary(max_size=8)), max_size=40).map(b"".join)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@contextmanager
def bounded_memory(limit: int = MEMORY_LIMIT) -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
        assert peak < limit, f"peak {peak / 2**20:.0f} MB"
    finally:
        tracemalloc.stop()


def only_records(records: Iterator[object]) -> None:
    """Consume a reader: every item is a Post or a Reject, or the reader stops with a
    UserInputError (a problem with the whole input)."""
    try:
        for record in records:
            assert isinstance(record, Post | Reject), record
    except UserInputError as exc:
        assert "\n" not in str(exc).strip()


@FUZZ
@given(label_file=NOISY_BYTES, text=NOISY_BYTES)
def test_mvsa_reader(label_file: bytes, text: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder, bounded_memory():
        root = Path(folder)
        (root / "data").mkdir()
        (root / "labelResultAll.txt").write_bytes(b"ID\ttext,image\n" + label_file)
        (root / "data" / "1.txt").write_bytes(text)
        (root / "data" / "1.jpg").write_bytes(text)
        (root / "labelResultAll.txt").open("ab").write(b"\n1\tpositive,neutral\n")
        only_records(read_mvsa(root))


@FUZZ
@given(content=NOISY_BYTES, suffix=st.sampled_from([".csv", ".tsv", ".jsonl"]))
def test_table_reader_on_text_formats(content: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder, bounded_memory():
        path = Path(folder) / f"t{suffix}"
        path.write_bytes(b"id,text,label\n" + content if suffix == ".csv" else content)
        only_records(read_table(path, text_columns=["text"], id_column="id", label_column="label"))


@FUZZ
@given(
    cells=st.lists(st.one_of(st.none(), st.text(max_size=20), st.binary(max_size=20)), max_size=8),
    cut=st.integers(min_value=0, max_value=400),
)
def test_table_reader_on_parquet(cells: list[object], cut: int) -> None:
    """Binary and text cells, and the file cut anywhere (a truncated download)."""
    texts = [c if not isinstance(c, bytes) else c.decode("latin-1") for c in cells]
    buffer = io.BytesIO()
    pq.write_table(pa.table({"text": pa.array(texts, pa.string())}), buffer)
    with tempfile.TemporaryDirectory() as folder, bounded_memory():
        path = Path(folder) / "t.parquet"
        data = buffer.getvalue()
        path.write_bytes(data[: len(data) - cut] if cut else data)
        only_records(read_table(path, text_columns=["text"]))


@FUZZ
@given(xml=NOISY_BYTES)
def test_mvso_photo_reader(xml: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder, bounded_memory():
        path = Path(folder) / "1.xml"
        path.write_bytes(xml)
        assert isinstance(read_photo_xml(path, anp="a", anp_score=0.1), Post | Reject)


@FUZZ
@given(content=NOISY_BYTES)
def test_anp_score_reader(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder, bounded_memory():
        path = Path(folder) / "anp.csv"
        path.write_bytes(content)
        try:
            scores = load_anp_scores(path)
        except UserInputError:
            return
        assert all(isinstance(v, float) for v in scores.values())


#: a JSON line built from values, then possibly cut or spliced with noise
JSON_LINES = st.lists(
    st.one_of(
        st.dictionaries(st.sampled_from(["id", "text", "x"]), JSON_VALUES, max_size=3).map(
            lambda d: json.dumps(d).encode()
        ),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        NOISY_BYTES,
        st.just(b'{"id": "s", "text": "\\ud800x"}'),
        st.integers(min_value=30, max_value=3000).map(
            lambda n: b'{"text": ' + b"[" * n + b"]" * n + b"}"
        ),
    ),
    max_size=8,
).map(b"\n".join)
CSV_ROWS = st.lists(
    st.lists(
        st.one_of(st.text(max_size=6), SYNTAX.map(lambda b: b.decode("latin-1"))), max_size=5
    ).map(lambda fields: ",".join(fields).encode("utf-8", "surrogatepass")),
    max_size=8,
).map(lambda rows: b"id,text,x\n" + b"\n".join(rows))


def decisions(path: Path) -> tuple[object, object]:
    """What `predict --input` and `prepare table` decide about each row of ``path``: the
    reason a row is refused, or its text; or the one-line user error for the whole file."""

    def predict() -> object:
        try:
            rows = [r for chunk in read_chunks(path, Columns(), 3) for r in chunk]
        except UserInputError as exc:
            assert "\n" not in str(exc).strip()
            return "user error"
        for row in rows:
            for value in row.values():
                assert value is None or isinstance(value, str), row
                if value:
                    value.encode("utf-8")  # nothing unwritable reaches the output
        return [r.get(REJECT) or ("text", r.get("text", "")) for r in rows]

    def prepare() -> object:
        try:
            records = list(read_table(path, text_columns=["text"], id_column="id"))
        except UserInputError as exc:
            assert "\n" not in str(exc).strip()
            return "user error"
        out = []
        for record in records:
            assert isinstance(record, Post | Reject), record
            if isinstance(record, Post):
                out.append(("text", record.text))
            elif record.reason in ("empty id", "no text and no image"):
                out.append(("text", ""))  # prepare's own rules, after reading the same row
            else:
                out.append(record.reason)
        return out

    return predict(), prepare()


def same_decisions(path: Path) -> None:
    ours, theirs = decisions(path)
    if ours == "user error" or theirs == "user error":
        # predict names only default columns: a table without "id" is fine there
        assert theirs == "user error", (ours, theirs)
        return
    assert len(ours) == len(theirs), (ours, theirs)
    for mine, other in zip(ours, theirs, strict=True):
        if other == ("text", "") and isinstance(mine, tuple):
            continue  # no id or no text: prepare refuses, predict gives the row its error
        assert mine == other, (ours, theirs)


@FUZZ
@given(content=JSON_LINES)
def test_predict_and_prepare_read_jsonl_alike(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder, bounded_memory():
        path = Path(folder) / "t.jsonl"
        path.write_bytes(content)
        same_decisions(path)


@FUZZ
@given(content=st.one_of(CSV_ROWS, NOISY_BYTES.map(lambda b: b"id,text\n" + b)))
def test_predict_and_prepare_read_csv_alike(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder, bounded_memory():
        path = Path(folder) / "t.csv"
        path.write_bytes(content)
        same_decisions(path)


CONFIGS = st.sampled_from([RunConfig, PrepareConfig, FeatureConfig])


@FUZZ
@given(content=NOISY_BYTES, suffix=st.sampled_from([".yaml", ".json"]), config=CONFIGS)
def test_config_loaders_on_bytes(content: bytes, suffix: str, config: type) -> None:
    with tempfile.TemporaryDirectory() as folder, bounded_memory():
        path = Path(folder) / f"c{suffix}"
        path.write_bytes(content)
        try:
            config.load(path)
        except UserInputError as exc:
            assert "\n" not in str(exc).strip()


@FUZZ
@given(data=JSON_VALUES, config=CONFIGS, as_json=st.booleans())
def test_config_loaders_on_structures(data: object, config: type, as_json: bool) -> None:
    with tempfile.TemporaryDirectory() as folder, bounded_memory():
        if as_json:
            path = Path(folder) / "c.json"
            path.write_text(json.dumps(data))
        else:
            path = Path(folder) / "c.yaml"
            path.write_text(yaml.safe_dump(data))
        try:
            config.load(path)
        except UserInputError as exc:
            assert "\n" not in str(exc).strip()


@FUZZ
@given(depth=st.integers(min_value=1, max_value=8), width=st.integers(min_value=2, max_value=12))
def test_yaml_alias_bombs_of_any_shape(depth: int, width: int) -> None:
    lines = ["l0: &l0 [" + ", ".join(["x"] * width) + "]"]
    for level in range(1, depth + 1):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    with tempfile.TemporaryDirectory() as folder, bounded_memory():
        path = Path(folder) / "bomb.yaml"
        path.write_text("\n".join(lines) + "\n")
        try:
            load_data(path)
        except UserInputError as exc:
            assert "aliases" in str(exc)


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small export with every kind of file: graph, manifest, tokenizer (one-layer MiniLM
    ids late-fused with the pixel CNN)."""
    from sentimodal import SentimentModel
    from sentimodal.export.onnx import export_onnx
    from server_fixtures import sample_posts

    root = tmp_path_factory.mktemp("onnx")
    model = SentimentModel(
        model="late", image_encoder="pixels32", image_encoder_config={"flatten": False},
        model_options={"text": {"num_layers": 1}}, feature_workers=0, train={"epochs": 1},
    )  # fmt: skip
    model.fit(sample_posts(40), work_dir=root / "w", progress=False)
    return export_onnx(model.save(root / "model"), root / "export")


ONNX_FILES = ["onnx.json", "model.onnx", "tokenizer/vocab.txt", "tokenizer/tokenizer.json"]
ONNX_FUZZ = settings(FUZZ, max_examples=40, deadline=20000)


def onnx_memory(export: Path) -> int:
    """What loading an export may allocate in Python objects: the graph's bytes, read once
    (the pieces and their join), beside the readers' own bound."""
    return 2 * (export / "model.onnx").stat().st_size + MEMORY_LIMIT


def _linked_copy(export: Path, folder: Path) -> Path:
    """The export as hard links (the big graph is not copied per example); a file to change
    is unlinked first, so the original stays intact."""
    out = folder / "export"
    for path in export.rglob("*"):
        target = out / path.relative_to(export)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
    return out


def _redigest(folder: Path, name: str) -> None:
    import hashlib
    import json

    manifest = json.loads((folder / "onnx.json").read_text())
    if (folder / name).is_file() and isinstance(manifest.get("files"), dict):
        manifest["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "onnx.json").unlink()
    (folder / "onnx.json").write_text(json.dumps(manifest))


def only_onnx_errors(folder: Path) -> None:
    """Loading gives a model whose posts are predictions, or one UserInputError line."""
    from sentimodal.inference.onnx_runtime import OnnxModel
    from sentimodal.inference.posts import post_rows, predict_rows
    from sentimodal.sample import sample_path

    started = time.perf_counter()
    try:
        model = OnnxModel.load(folder)
    except UserInputError as exc:
        assert "\n" not in str(exc).strip()
        return
    image = str(next((sample_path() / "data").glob("*.jpg")))
    rows = post_rows([{"text": "a lovely day", "image": image}, {"text": "sad"}, {"image": image}])
    for prediction in predict_rows(model.work, rows):
        assert prediction.error is None or "\n" not in prediction.error
    assert time.perf_counter() - started < 15


@ONNX_FUZZ
@given(
    target=st.sampled_from(ONNX_FILES),
    how=st.sampled_from(["truncate", "overwrite", "random", "delete"]),
    at=st.floats(min_value=0, max_value=1),
    noise=NOISY_BYTES,
    crafted=st.booleans(),
)
def test_onnx_export_files_mutated(
    onnx_export: Path, target: str, how: str, at: float, noise: bytes, crafted: bool
) -> None:
    """Any file of an export cut, overwritten in place, replaced or deleted; ``crafted``: its
    digest in the manifest made to match, so the parsers behind the digest check are fuzzed."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = _linked_copy(onnx_export, Path(tmp))
        path = folder / target
        data = path.read_bytes()
        path.unlink()
        cut = int(len(data) * at)
        if how == "truncate":
            path.write_bytes(data[:cut])
        elif how == "overwrite":
            path.write_bytes(data[:cut] + noise + data[cut + len(noise) :])
        elif how == "random":
            path.write_bytes(noise)
        if crafted and target != "onnx.json":
            _redigest(folder, target)
        with bounded_memory(onnx_memory(onnx_export)):
            only_onnx_errors(folder)


MANIFEST_PATHS = st.sampled_from(
    [("labels",), ("inputs",), ("format_version",), ("files",), ("image_encoder",),
     ("image_encoder", "shape"), ("image_encoder", "name"), ("image_encoder", "config"),
     ("text_encoder",), ("text_encoder", "config"), ("text_encoder", "config", "max_len"),
     ("text_encoder", "config", "normalize"), ("text_encoder", "in_graph"),
     ("text_encoder", "name"), ("files", "model.onnx"), ("head",), ("metrics",)]
)  # fmt: skip


@ONNX_FUZZ
@given(where=MANIFEST_PATHS, value=JSON_VALUES)
def test_onnx_manifest_structures(onnx_export: Path, where: tuple[str, ...], value: object):
    """Any field of the manifest, at any depth, replaced by any JSON value."""
    import json

    with tempfile.TemporaryDirectory() as tmp:
        folder = _linked_copy(onnx_export, Path(tmp))
        manifest = json.loads((folder / "onnx.json").read_text())
        node = manifest
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = value
        (folder / "onnx.json").unlink()
        (folder / "onnx.json").write_text(json.dumps(manifest))
        with bounded_memory(onnx_memory(onnx_export)):
            only_onnx_errors(folder)
