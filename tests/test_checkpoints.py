"""Training checkpoints: saved each epoch, resumed to the same weights as an uninterrupted
run (in process, and after a real SIGKILL of `sentimodal train`), refused for other
settings; and the epoch progress a log file sees."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from sentimodal.errors import UserInputError
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path
from sentimodal.training import checkpoint
from sentimodal.training.checkpoint import Checkpoints, read_state, state_bytes
from sentimodal.training.epoch_progress import ConsoleProgress
from sentimodal.training.estimator import SentimentModel

FAST = {
    "model": "concat",
    "text_encoder": "glove_mean",
    "image_encoder": "pixels32",
    "train": {"epochs": 7, "patience": None, "lr": 3e-3, "seed": 3},
    "feature_workers": 0,
}


@pytest.fixture(scope="module")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    out = tmp_path_factory.mktemp("sample") / "dataset"
    return prepare("mvsa", sample_path(), out, progress=False)


def _same_weights(a: SentimentModel, b: SentimentModel) -> bool:
    first, second = a.network_.state_dict(), b.network_.state_dict()
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def _losses(model: SentimentModel) -> list[float]:
    return [record["train_loss"] for record in model.history_]


def test_a_fit_interrupted_after_an_epoch_resumes_to_the_same_weights(
    sample_dataset: PreparedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = SentimentModel(**FAST).fit(sample_dataset, progress=False)
    save = Checkpoints.save
    saved: list[int] = []

    def interrupted(self: Checkpoints, state: dict) -> None:
        save(self, state)
        saved.append(state["epoch"])
        if len(saved) == 3:
            raise KeyboardInterrupt  # as if killed right after epoch 3's checkpoint

    monkeypatch.setattr(Checkpoints, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        SentimentModel(**FAST).fit(sample_dataset, progress=False, checkpoint_dir=tmp_path)
    monkeypatch.setattr(Checkpoints, "save", save)
    assert read_state(tmp_path / checkpoint.STATE_FILE, _key(tmp_path))["epoch"] == 3
    resumed = SentimentModel(**FAST).fit(
        sample_dataset, progress=False, checkpoint_dir=tmp_path, resume=True
    )
    assert _same_weights(whole, resumed)
    assert _losses(whole) == _losses(resumed)
    # without the checkpoint the other seed's run differs: the comparison can fail
    other = SentimentModel(**{**FAST, "train": {**FAST["train"], "seed": 4}})
    assert not _same_weights(whole, other.fit(sample_dataset, progress=False))


def _key(folder: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(folder / checkpoint.STATE_FILE), framework="pt") as handle:
        return handle.metadata()["fingerprint"]


def test_a_checkpoint_of_other_settings_is_refused(
    sample_dataset: PreparedDataset, tmp_path: Path
) -> None:
    short = {**FAST, "train": {**FAST["train"], "epochs": 2}}
    SentimentModel(**short).fit(sample_dataset, progress=False, checkpoint_dir=tmp_path)
    other = {**FAST, "train": {**FAST["train"], "epochs": 2, "lr": 1e-2}}
    with pytest.raises(UserInputError, match="other settings or data"):
        SentimentModel(**other).fit(
            sample_dataset, progress=False, checkpoint_dir=tmp_path, resume=True
        )
    # without --resume an old checkpoint is simply replaced
    SentimentModel(**other).fit(sample_dataset, progress=False, checkpoint_dir=tmp_path)


def test_state_round_trips_optimiser_state_without_pickle(tmp_path: Path) -> None:
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.1)
    layer(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    state = {"optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(), "best": None}
    path = tmp_path / "state.safetensors"
    path.write_bytes(state_bytes(state, "k"))
    back = read_state(path, "k")
    assert set(back["optimizer"]["state"]) == {0, 1}  # int keys stay ints
    assert torch.equal(
        back["optimizer"]["state"][0]["exp_avg"], state["optimizer"]["state"][0]["exp_avg"]
    )
    assert back["optimizer"]["param_groups"][0]["lr"] == 0.1 and back["best"] is None
    fresh = torch.optim.AdamW(layer.parameters(), lr=0.5)
    fresh.load_state_dict(back["optimizer"])
    assert fresh.param_groups[0]["lr"] == 0.1
    assert b"pickle" not in path.read_bytes()[:64]
    with pytest.raises(UserInputError, match="other settings"):
        read_state(path, "another run")
    path.write_bytes(b"garbage")
    with pytest.raises(UserInputError, match="unreadable checkpoint"):
        read_state(path, "k")


def test_a_log_file_sees_batches_posts_per_second_and_time_left() -> None:
    out = io.StringIO()
    progress = ConsoleProgress(Console(file=out, width=120), every=0.0)
    progress.start(1, 4, batches=3)
    progress.advance(32, 0.7)
    progress.advance(32, 0.6)
    progress.advance(32, 0.5)  # the last batch: the epoch line says the rest
    progress.line("epoch 1/4  train_loss 0.5")
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch 1/4  batch 1/3  ")
    assert "posts/s" in lines[1] and "loss 0.6000" in lines[1] and lines[1].endswith("left")


@pytest.mark.slow
def test_train_resume_after_sigkill_ends_with_the_same_weights(
    sample_dataset: PreparedDataset, tmp_path: Path
) -> None:
    """`sentimodal train` killed with SIGKILL mid-run, then `train --resume`: the model
    directory holds the weights of a run never interrupted."""
    config = tmp_path / "run.yaml"
    config.write_text(
        "model: concat\ntext_encoder: glove_mean\nimage_encoder: pixels32\n"
        "feature_workers: 0\ntrain: {epochs: 12, patience: null, batch_size: 8, seed: 1}\n"
    )
    env = {**os.environ, "PYTHONPATH": "src", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}

    def train(out: Path, *extra: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "sentimodal", "train", str(sample_dataset.root)]
        command += ["--config", str(config), "--out", str(out), "-q", *extra]
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    whole = tmp_path / "whole"
    assert train(whole).wait(timeout=300) == 0
    killed = tmp_path / "killed"
    state = killed / checkpoint.CHECKPOINT_FOLDER / checkpoint.STATE_FILE
    running = train(killed)
    deadline = time.monotonic() + 300
    while not state.exists() and running.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(running.pid, signal.SIGKILL)
    running.wait(timeout=30)
    assert running.returncode == -signal.SIGKILL
    assert state.exists() and not (killed / "model.safetensors").exists()
    resumed = train(killed, "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (killed / checkpoint.CHECKPOINT_FOLDER).exists()  # a saved model needs none
