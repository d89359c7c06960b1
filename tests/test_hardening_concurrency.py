"""Two writers never share an output folder, staging never follows a planted link, and a
dataset or feature folder mixed from different runs is refused, not used."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hardening import assert_user_error, invoke
from sentimodal.errors import UserInputError
from sentimodal.features.folder import FeatureFolder
from sentimodal.features.store import extract_features
from sentimodal.files import LOCK_FILE, folder_lock, write_atomic
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path

HOLD = (
    "import sys, time\n"
    "from sentimodal.files import folder_lock\n"
    "with folder_lock(sys.argv[1]):\n"
    "    print('locked', flush=True)\n"
    "    time.sleep(30)\n"
)


@contextmanager
def held_by_another_process(folder: Path) -> Iterator[int]:
    """Another process holds the folder's lock while the block runs."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "locked"
        yield process.pid
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "d"
    prepare("mvsa", sample_path(), out, progress=False)
    return out


def test_prepare_into_a_folder_in_use_names_the_pid(tmp_path: Path) -> None:
    out = tmp_path / "d"
    with held_by_another_process(out) as pid:
        result = invoke("prepare", "mvsa", sample_path(), "--out", out, "--quiet")
        assert_user_error(result, f"in use by pid {pid}")
    assert not (out / "dataset.json").exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    out = tmp_path / "d"
    out.mkdir()
    (out / LOCK_FILE).write_text("999999\n")  # left by a killed run: nobody holds it
    result = invoke("prepare", "mvsa", sample_path(), "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "dataset.json",
        "examples.parquet",
        "rejects.csv",
    ]


def test_lock_is_released_after_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), folder_lock(tmp_path):
        raise RuntimeError("boom")
    with folder_lock(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())


def test_features_into_a_folder_in_use(dataset: Path, tmp_path: Path) -> None:
    copy = tmp_path / "d"
    shutil.copytree(dataset, copy)
    result = extract_features(copy, image="pixels32", text=None, progress=False, workers=0)
    folder = result["image"].directory
    (folder / "ids.json").unlink()  # an unfinished folder: the next run would work in it
    with held_by_another_process(folder) as pid, pytest.raises(UserInputError, match=str(pid)):
        extract_features(copy, image="pixels32", text=None, progress=False, workers=0)


def test_dataset_mixed_from_two_runs_is_refused(dataset: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    prepare("mvsa", sample_path(), other, progress=False, classes=2)
    mixed = tmp_path / "mixed"
    shutil.copytree(dataset, mixed)
    shutil.copy(other / "examples.parquet", mixed / "examples.parquet")  # killed between renames
    with pytest.raises(UserInputError, match="incomplete dataset"):
        PreparedDataset.load(mixed)
    assert_user_error(invoke("features", mixed, "--image", "pixels32", "--text", "none"))


def test_staging_never_follows_a_planted_symlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    folder = tmp_path / "out"
    folder.mkdir()
    monkeypatch.setattr("sentimodal.files.secrets.token_hex", lambda n: "guessed")
    planted = folder / f".staging-examples.parquet.{os.getpid()}.guessed"
    planted.symlink_to(outside)
    with pytest.raises(FileExistsError):
        write_atomic(folder / "examples.parquet", b"new")
    assert outside.read_text() == "precious" and not (folder / "examples.parquet").exists()


def test_feature_shard_copied_over_another_is_refused(dataset: Path, tmp_path: Path) -> None:
    copy = tmp_path / "d"
    shutil.copytree(dataset, copy)
    result = extract_features(
        copy, image="pixels32", text=None, progress=False, workers=0, shard_size=64
    )
    folder = FeatureFolder(result["image"].directory)
    assert len(folder.read().ids) == len(PreparedDataset.load(copy).examples)
    shutil.copy(folder.shard_path(0), folder.shard_path(1))
    with pytest.raises(UserInputError, match="holds another shard"):
        folder.read()
