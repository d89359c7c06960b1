"""The feature store: keys, cache hits, rejects, resumption (in-process and by SIGKILL), reading
back by id, and the engines' plumbing."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from sentimodal.errors import UserInputError
from sentimodal.features import batch_work, engine, store
from sentimodal.features.engine import BatchResult, LocalEngine, get_engine
from sentimodal.features.folder import FeatureFolder
from sentimodal.features.image_encoders.base import ImageEncoder
from sentimodal.features.reading import aligned, load_features
from sentimodal.features.store import extract_features
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.preparation.dataset import PreparedDataset

# --------------------------------------------------------------------------- test encoders


class _Mean(torch.nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) * self.scale


class MeanColour(ImageEncoder):
    """Mean RGB of the image scaled by ``scale``: cheap, exact, and says which image it saw."""

    name = "mean_colour"
    dim = 3
    shape = (3,)

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.reads = 0
        self.batches = 0

    @property
    def config(self) -> dict[str, Any]:
        return {"scale": self.scale}

    @property
    def identity(self) -> str:
        return "mean-colour-v1"

    def read(self, source: str | Path, **kwargs: Any) -> torch.Tensor:
        self.reads += 1
        return super().read(source, **kwargs)

    def transform(self, image: Image.Image) -> torch.Tensor:
        pixels = np.asarray(image.resize((8, 8)), dtype=np.float32) / 255.0
        return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()

    def module(self) -> torch.nn.Module:
        return _Mean(self.scale)

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        self.batches += 1
        return super().encode(batch)


class CrashingMeanColour(MeanColour):
    """The same encoder (same key) that dies after ``survive`` batches, like a killed run."""

    def __init__(self, survive: int) -> None:
        super().__init__()
        self.survive = survive

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        if self.batches >= self.survive:
            raise KeyboardInterrupt
        return super().encode(batch)


class CharCounts(TextEncoder):
    """(characters, exclamation marks) of each text."""

    name = "char_counts"
    shape = (2,)

    @property
    def config(self) -> dict[str, Any]:
        return {}

    @property
    def identity(self) -> str:
        return "char-counts-v1"

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.array([[len(t), t.count("!")] for t in texts], dtype=np.float32)


# --------------------------------------------------------------------------- dataset

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 100, 50), (10, 20, 30), (90, 90, 200)]


def write_dataset(root: Path, n: int = 12, texts: dict[int, str] | None = None) -> PreparedDataset:
    """n posts: coloured JPEG/PNG images, one corrupt file, one missing file, one post without
    an image, one with an empty text; splits train/val/test."""
    images_dir = root.parent / f"{root.name}-images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        image: str | None = str(images_dir / f"{i}.jpg")
        if i == 3:
            Path(image).write_bytes(b"this is not a jpeg")
        elif i == 5:
            image = str(images_dir / "missing.jpg")
        elif i == 7:
            image = None
        else:
            suffix = "png" if i % 4 == 1 else "jpg"
            image = str(images_dir / f"{i}.{suffix}")
            Image.new("RGB", (40 + i, 30), COLOURS[i % len(COLOURS)]).save(image)
        text = f"post {i} is {'great!' * (i % 3)} words {i * 7}"
        if i == 9:
            text = ""
        rows.append(
            {
                "id": f"p{i:02d}",
                "text": (texts or {}).get(i, text),
                "image": image,
                "label": ["negative", "neutral", "positive"][i % 3],
                "split": "train" if i < n * 2 // 3 else ("val" if i % 2 else "test"),
            }
        )
    return PreparedDataset.from_dataframe(
        pd.DataFrame(rows),
        text_columns=("text",),
        image_column="image",
        id_column="id",
        split_column="split",
        root=root,
    )


@pytest.fixture()
def dataset(tmp_path: Path) -> PreparedDataset:
    return write_dataset(tmp_path / "ds")


def extract(data: Any, **kwargs: Any) -> dict[str, store.ExtractionResult]:
    settings = {"image": MeanColour(), "text": CharCounts(), "workers": 0, "progress": False}
    return extract_features(data, **{**settings, **kwargs})


def expected_mean_colour(path: str) -> np.ndarray:
    encoder = MeanColour()
    return encoder.encode(encoder.read(path)[None])[0]


# --------------------------------------------------------------------------- extraction


def test_features_are_stored_by_id_with_rejects_and_skipped_rows(dataset: PreparedDataset) -> None:
    results = extract(dataset, batch_size=4, shard_size=5)
    image = results["image"]
    assert image.directory.parent == dataset.root / "features" / "image"
    assert image.directory.name.startswith("mean_colour-")
    assert not image.cache_hit and image.n_rejects == 2

    features = load_features(dataset.root, "image", "mean_colour")
    examples = dataset.examples
    with_image = [
        (row.id, row.image) for row in examples.itertuples() if row.id not in ("p03", "p05", "p07")
    ]
    assert features.ids == [id_ for id_, _ in with_image]
    assert features.values.dtype == np.float32 and features.values.shape == (len(with_image), 3)
    for got, (_, path) in zip(features.values, with_image, strict=True):
        np.testing.assert_allclose(got, expected_mean_colour(path), rtol=1e-6)

    rejects = pd.read_csv(image.directory / "rejects.csv", dtype=str)
    assert rejects["id"].tolist() == ["p03", "p05"]
    assert "not an image" in rejects["reason"][0] and "not found" in rejects["reason"][1]
    assert rejects["image"][1].endswith("missing.jpg")

    texts = load_features(dataset.root, "text", "char_counts")
    assert "p09" not in texts.ids and len(texts) == len(examples) - 1
    assert texts.values[texts.ids.index("p01")].tolist() == [len(dataset.texts()[1]), 1]

    meta = json.loads((image.directory / "meta.json").read_text())
    assert meta["counts"]["rows"] == len(with_image) and meta["n_shards"] == 3  # 11 images
    assert sum(image.rows.values()) == len(with_image)


def test_split_rows_follow_examples_order(dataset: PreparedDataset) -> None:
    extract(dataset)
    for split in ("train", "val", "test"):
        got = load_features(dataset.root, "text", "char_counts", split=split)
        wanted = [i for i in dataset.split(split)["id"] if i != "p09"]
        assert got.ids == wanted
    with pytest.raises(UserInputError, match="no split"):
        load_features(dataset.root, "text", "char_counts", split="holdout")


def test_second_run_is_a_cache_hit_that_decodes_nothing(dataset: PreparedDataset) -> None:
    first = extract(dataset)
    encoder = MeanColour()
    again = extract(dataset, image=encoder)
    assert again["image"].cache_hit and again["text"].cache_hit
    assert again["image"].directory == first["image"].directory
    assert encoder.reads == 0 and encoder.batches == 0
    assert again["image"].rows == first["image"].rows


def test_other_settings_never_read_stale_features(dataset: PreparedDataset) -> None:
    base = extract(dataset)["image"]
    scaled = extract(dataset, image=MeanColour(scale=2.0), text=None)["image"]
    half = extract(dataset, text=None, dtype="float16")["image"]
    assert len({base.directory, scaled.directory, half.directory}) == 3

    plain = load_features(
        dataset.root, "image", "mean_colour", config={"scale": 1.0}, stored_dtype="float32"
    )
    double = load_features(dataset.root, "image", "mean_colour", config={"scale": 2.0})
    np.testing.assert_allclose(double.values, 2 * plain.values, rtol=1e-6)
    stored16 = load_features(dataset.root, "image", "mean_colour", stored_dtype="float16")
    assert stored16.values.dtype == np.float32
    np.testing.assert_allclose(stored16.values, plain.values, atol=2e-3)
    with safe_open(str(half.directory / "shard-00000.safetensors"), "numpy") as shard:
        assert shard.get_tensor("features").dtype == np.float16
    assert (
        load_features(
            dataset.root, "image", "mean_colour", stored_dtype="float16", dtype="float16"
        ).values.dtype
        == np.float16
    )
    with pytest.raises(UserInputError, match="several image features"):
        load_features(dataset.root, "image", "mean_colour")


def test_changed_examples_change_only_that_modality(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    data = write_dataset(root)
    before = extract(data)
    edited = write_dataset(root, texts={2: "an edited text!!!"})
    with pytest.raises(UserInputError, match="extracted from other examples"):
        load_features(root, "text", "char_counts")
    after = extract(edited)
    assert after["image"].cache_hit and after["image"].directory == before["image"].directory
    assert not after["text"].cache_hit and after["text"].directory != before["text"].directory
    texts = load_features(root, "text", "char_counts")
    assert texts.values[texts.ids.index("p02")].tolist() == [len("an edited text!!!"), 3]


def test_tokens_store_int64_ids_lengths_and_a_train_only_vocabulary(
    dataset: PreparedDataset,
) -> None:
    extract(dataset, image=None, text="tokens", dtype="float16")
    tokens = load_features(dataset.root, "text", "tokens")
    assert tokens.values.dtype == np.int64 and tokens.values.shape[1] == 101
    assert tokens.lengths is not None and tokens.lengths.dtype == np.int64
    np.testing.assert_array_equal(tokens.lengths, (tokens.values != 0).sum(axis=1))
    assert tokens.directory is not None
    vocab = json.loads((tokens.directory / "vocab.json").read_text())["tokens"]
    # train posts are p00-p07 ("words 0" ... "words 49"); "words 70" is only in p10 (val)
    assert set(dataset.split("train")["id"]) == {f"p{i:02d}" for i in range(8)}
    assert "49" in vocab and "70" not in vocab
    meta = json.loads((tokens.directory / "meta.json").read_text())
    assert meta["dtype"] == "int64" and meta["identity"].startswith("vocab:")


def test_vocabulary_identity_is_part_of_the_key(tmp_path: Path) -> None:
    small = extract(write_dataset(tmp_path / "ds"), image=None, text="tokens")["text"]
    other = extract(
        write_dataset(tmp_path / "ds"), image=None, text="tokens", text_config={"max_size": 3}
    )["text"]
    assert small.directory != other.directory
    assert len(json.loads((other.directory / "vocab.json").read_text())["tokens"]) == 5 + 3


def test_crashed_run_resumes_from_the_last_complete_shard(tmp_path: Path) -> None:
    clean_root, crash_root = tmp_path / "clean", tmp_path / "crash"
    write_dataset(clean_root)
    crashed = write_dataset(crash_root)
    clean = extract(clean_root, text=None, batch_size=3, shard_size=3)["image"]

    with pytest.raises(KeyboardInterrupt):
        extract(crashed, image=CrashingMeanColour(survive=2), text=None, batch_size=3, shard_size=3)
    folder = next((crash_root / "features" / "image").iterdir())
    assert sorted(p.name for p in folder.glob("shard-*")) == [
        "shard-00000.safetensors",
        "shard-00001.safetensors",
    ]
    assert not FeatureFolder(folder).complete

    encoder = MeanColour()
    resumed = extract(crashed, image=encoder, text=None, batch_size=3, shard_size=3)["image"]
    assert resumed.directory == folder and not resumed.cache_hit
    assert encoder.reads == 11 - 6  # only the rows of the missing shards
    got = load_features(crash_root, "image", "mean_colour")
    want = load_features(clean_root, "image", "mean_colour")
    assert got.ids == want.ids and len(set(got.ids)) == len(got.ids)
    np.testing.assert_array_equal(got.values, want.values)
    got_rejects = pd.read_csv(folder / "rejects.csv")
    assert got_rejects["id"].tolist() == pd.read_csv(clean.directory / "rejects.csv")["id"].tolist()


class ScramblingEngine:
    """Results one row at a time and in reverse order, as a distributed engine may return."""

    def run(self, work: Any, batches: list[list[dict]]) -> Any:
        for rows in reversed(batches):
            for row in reversed(rows):
                yield work([row])


def test_shards_do_not_depend_on_result_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ordered_root, scrambled_root = tmp_path / "ordered", tmp_path / "scrambled"
    write_dataset(ordered_root)
    write_dataset(scrambled_root)
    extract(ordered_root, batch_size=4, shard_size=5)
    monkeypatch.setattr(store, "get_engine", lambda name, workers, address=None: ScramblingEngine())
    extract(scrambled_root, batch_size=4, shard_size=5)
    for kind, name in (("image", "mean_colour"), ("text", "char_counts")):
        got = load_features(scrambled_root, kind, name)
        want = load_features(ordered_root, kind, name)
        assert got.ids == want.ids
        np.testing.assert_array_equal(got.values, want.values)


def test_aligned_keeps_examples_with_both_modalities(dataset: PreparedDataset) -> None:
    extract(dataset)
    images, texts = aligned(dataset.root, image="mean_colour", text="char_counts", split="train")
    assert images.ids == texts.ids
    train = list(dataset.split("train")["id"])
    assert images.ids == [i for i in train if i not in ("p03", "p05", "p07", "p09")]
    assert images.values.shape == (len(images), 3) and texts.values.shape == (len(texts), 2)


def test_single_modality_datasets_are_normal(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": ["a", "b"], "text": ["one!", "two"], "label": ["x", "y"]})
    data = PreparedDataset.from_dataframe(frame, id_column="id", root=tmp_path / "ds")
    results = extract(data)
    assert results["image"].rows == {} and results["image"].n_rejects == 0
    assert len(load_features(data.root, "image", "mean_colour")) == 0
    assert load_features(data.root, "image", "mean_colour").values.shape == (0, 3)
    assert load_features(data.root, "text", "char_counts").ids == ["a", "b"]


def test_bad_settings_are_user_errors(dataset: PreparedDataset, tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="dtype"):
        extract(dataset, dtype="int8")
    with pytest.raises(UserInputError, match="batch_size"):
        extract(dataset, batch_size=0)
    with pytest.raises(UserInputError, match="not a prepared dataset"):
        extract(tmp_path / "nowhere")
    with pytest.raises(UserInputError, match="unknown image encoder"):
        extract(dataset, image="no_such_encoder")
    with pytest.raises(UserInputError, match="no image features"):
        load_features(dataset.root, "image", "mean_colour")


# --------------------------------------------------------------------------- engines


class AcceleratorWork(batch_work.ImageBatchWork):
    """Image work whose model would sit on an accelerator: workers only decode."""

    @property
    def compute_in_workers(self) -> bool:
        return False


@pytest.mark.parametrize("work_type", [batch_work.ImageBatchWork, AcceleratorWork])
def test_local_engine_workers_return_the_same_results_in_order(
    dataset: PreparedDataset, work_type: type[batch_work.ImageBatchWork]
) -> None:
    rows = [
        {"position": i, "id": r.id, "image": r.image}
        for i, r in enumerate(dataset.examples.itertuples())
        if isinstance(r.image, str)
    ]
    batches = [rows[i : i + 2] for i in range(0, len(rows), 2)]
    inline = list(LocalEngine(workers=0).run(work_type(MeanColour()), batches))
    encoder = MeanColour()
    parallel = list(LocalEngine(workers=2).run(work_type(encoder), batches))
    assert len(parallel) == len(batches)
    for a, b in zip(inline, parallel, strict=True):
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.values, b.values)
        assert a.rejects == b.rejects
    # where the work ran: decoding always in the workers, the forward pass only for the
    # accelerator in the main process
    assert encoder.reads == 0
    assert encoder.batches == (len(batches) if work_type is AcceleratorWork else 0)


def test_batch_results_survive_the_column_format() -> None:
    rows = [{"position": p, "id": f"r{p}", "image": f"/x/{p}.jpg"} for p in (4, 6, 9)]
    result = BatchResult(
        positions=np.array([4, 9]),
        values=np.array([[1, 2], [3, 4]], dtype=np.int64),
        lengths=np.array([2, 1]),
        rejects=[{"position": 6, "id": "r6", "image": "/x/6.jpg", "reason": "broken"}],
    )
    back = BatchResult.from_columns(result.to_columns(rows))
    np.testing.assert_array_equal(back.positions, [4, 9])
    np.testing.assert_array_equal(back.values, result.values)
    np.testing.assert_array_equal(back.lengths, [2, 1])
    assert back.rejects == result.rejects


def test_ray_engine_without_ray_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UserInputError, match=r"the 'ray' engine needs the \[ray\] extra"):
        get_engine("ray")
    with pytest.raises(UserInputError, match="unknown engine"):
        get_engine("spark")


@pytest.mark.slow
def test_ray_engine_matches_the_local_engine(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    local_root, ray_root = tmp_path / "local", tmp_path / "ray"
    write_dataset(local_root)
    write_dataset(ray_root)
    settings = {"image": "pixels32", "text": "tokens", "batch_size": 4, "shard_size": 5}
    extract(local_root, **settings)
    try:
        results = extract(ray_root, engine="ray", workers=1, **settings)
    finally:
        ray.shutdown()
    assert results["image"].n_rejects == 2
    for kind, name in (("image", "pixels32"), ("text", "tokens")):
        got, want = load_features(ray_root, kind, name), load_features(local_root, kind, name)
        assert got.ids == want.ids
        np.testing.assert_array_equal(got.values, want.values)
        if kind == "text":
            np.testing.assert_array_equal(got.lengths, want.lengths)


@pytest.fixture
def mallopt_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The glibc allocator switches set, in order (a stand-in C library records them)."""
    calls: list[tuple[int, int]] = []

    class FakeLibc:
        def mallopt(self, option: int, value: int) -> int:
            calls.append((option, value))
            return 1

    monkeypatch.setattr(engine, "_glibc", FakeLibc)
    return calls


def test_allocator_setting_is_applied_once_and_restored(mallopt_calls: list) -> None:
    calls = mallopt_calls
    with engine.reuse_freed_memory():
        with engine.reuse_freed_memory():
            assert calls == [(engine._M_MMAP_MAX, 0), (engine._M_TRIM_THRESHOLD, 2**31 - 1)]
        assert len(calls) == 2  # the inner block leaves the outer one's setting alone
    assert calls[2:] == list(engine._GLIBC_DEFAULTS)


def test_loading_workers_keep_the_allocator_switches_for_their_whole_life(
    mallopt_calls: list,
) -> None:
    """A worker sets them once at start; nothing may set the defaults back behind it (a
    dropped context manager used to, at once, which made the workers fault more, not less)."""
    calls = mallopt_calls
    engine._worker_start(0)
    gc.collect()
    assert calls == [(engine._M_MMAP_MAX, 0), (engine._M_TRIM_THRESHOLD, 2**31 - 1)]


# --------------------------------------------------------------------------- real data


def small_mvsa(mvsa_root: Path, root: Path, n: int) -> Path:
    """The first ``n`` MVSA-Single posts as a prepared dataset (real JPEGs and tweets)."""
    lines = (mvsa_root / "labelResultAll.txt").read_text().splitlines()[1 : n + 1]
    rows = []
    for line in lines:
        post_id, labels = line.split("\t")
        text = (mvsa_root / "data" / f"{post_id}.txt").read_text(errors="replace").strip()
        rows.append(
            {
                "id": post_id,
                "text": text,
                "image": str(mvsa_root / "data" / f"{post_id}.jpg"),
                "label": labels.split(",")[0],
            }
        )
    PreparedDataset.from_dataframe(
        pd.DataFrame(rows), id_column="id", image_column="image", split="0.7,0.2,0.1", root=root
    )
    return root


SETTINGS = {"image": "pixels32", "text": "tokens", "batch_size": 8, "workers": 1, "shard_size": 8}
EXTRACT_SCRIPT = f"""
import sys
from sentimodal.features.store import extract_features
extract_features(sys.argv[1], progress=False, **{SETTINGS!r})
"""


def test_sigkilled_extraction_resumes_without_missing_or_duplicate_rows(
    mvsa_root: Path, tmp_path: Path
) -> None:
    clean_root = small_mvsa(mvsa_root, tmp_path / "clean", 240)
    killed_root = small_mvsa(mvsa_root, tmp_path / "killed", 240)

    process = subprocess.Popen(
        [sys.executable, "-c", EXTRACT_SCRIPT, str(killed_root)],
        start_new_session=True,  # its own process group: the kill reaches its workers too
    )
    deadline = time.monotonic() + 120
    shards: list[Path] = []
    while not shards and time.monotonic() < deadline and process.poll() is None:
        shards = list((killed_root / "features" / "image").glob("*/shard-*.safetensors"))
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert shards, "the extraction wrote no shard before it ended or timed out"
    folder = shards[0].parent
    n_shards = json.loads((folder / "meta.json").read_text())["n_shards"]
    done = len(list(folder.glob("shard-*.safetensors")))
    assert 1 <= done < n_shards and not FeatureFolder(folder).complete

    resumed = extract_features(killed_root, progress=False, **SETTINGS)
    assert resumed["image"].directory == folder
    assert resumed["image"].items == 240 - 8 * done  # only the missing shards were computed
    extract_features(clean_root, progress=False, **SETTINGS)
    for kind, name in (("image", "pixels32"), ("text", "tokens")):
        got = load_features(killed_root, kind, name)
        want = load_features(clean_root, kind, name)
        assert len(set(got.ids)) == len(got.ids)
        assert got.ids == want.ids
        np.testing.assert_array_equal(got.values, want.values)
    examples = PreparedDataset.load(killed_root).examples
    assert len(load_features(killed_root, "image", "pixels32")) == len(examples)
