"""Data-parallel training on Ray Train: each worker its own part of the rows, statistics and
metrics summed over the workers, an ordinary model directory at the end, a killed worker
restarted from the last checkpoint, and a Ray address that does not answer refused at once.

The Ray runs are slow (a local Ray instance and its train workers take ~20 s to start on the
2-core machine); the fast tests hold the pieces they are made of without Ray."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sentimodal.interfaces.cli import app
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path
from sentimodal.training import ray_train
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.fitting import start_network
from sentimodal.training.inputs import fit_encoders
from sentimodal.training.run_config import RunConfig
from sentimodal.training.scaler import FeatureScaler
from sentimodal.training.trainer import fit, worker_batch_size

FAST = {
    "model": "concat",
    "text_encoder": "glove_mean",
    "image_encoder": "pixels32",
    "train": {"epochs": 4, "patience": None, "lr": 3e-3, "seed": 0},
    "feature_workers": 0,
}
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    out = tmp_path_factory.mktemp("sample") / "dataset"
    return prepare("mvsa", sample_path(), out, progress=False)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray instance for the module, on loopback, stopped after it."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.train.torch")
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    temp = tempfile.mkdtemp(prefix="rt")  # short: Ray's socket paths must stay < 108 bytes
    ray.init(
        num_cpus=2,
        object_store_memory=200 * 1024**2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        _temp_dir=temp,
    )
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ------------------------------------------------------------------------- fast, no Ray


def test_workers_split_the_training_rows_and_take_the_batch_together(
    sample_dataset: PreparedDataset,
) -> None:
    model = SentimentModel(**FAST, engine="ray", workers=3)
    model.run_ = model.run_config().resolved()
    model.labels_, model.train_splits_ = sample_dataset.labels, ["train"]
    local = model.run_.model_copy(update={"engine": "local"})
    model.image_encoder_, model.text_encoder_, results = fit_encoders(local, sample_dataset, False)
    start_network(model)
    assert not ray_train.closed_form(model.network_)
    folders = {kind: r.directory for kind, r in results.items()}
    parts = ray_train.plan(model, sample_dataset, folders)
    train = np.concatenate(parts.train)
    assert len(parts.train) == 3 and len(set(train)) == len(train)
    assert max(map(len, parts.train)) - parts.rows <= 1
    expected = sample_dataset.examples.reset_index(drop=True)
    assert sorted(train) == list(expected.index[expected["split"] == "train"])
    assert len(np.concatenate(parts.val)) == len(sample_dataset.split("val"))
    # a worker reads only its part, in its order, and it is what the whole table holds
    data = ray_train.read_part(parts.folders, parts.train[1])
    assert len(data["image"]) == len(parts.train[1])
    assert worker_batch_size(64, 3) == 22 and worker_batch_size(64, 1) == 64


class TwoIdentical:
    """A stand-in for two data-parallel copies holding the same rows: sums double."""

    rank, world_size, device = 0, 2, torch.device("cpu")

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def wrap(self, model):  # noqa: ANN001, ANN201
        return model.training_outputs

    def sums(self, values: list[float]) -> list[float]:
        return [2 * v for v in values]


def test_summed_statistics_and_metrics_are_those_of_all_rows(
    sample_dataset: PreparedDataset,
) -> None:
    rng = np.random.default_rng(0)
    data = {"image": rng.normal(3, 2, (50, 6)).astype(np.float32), "text": rng.normal(size=(50, 4))}
    data["text"] = data["text"].astype(np.float32)
    shared = ray_train.shared_scaler(data, TwoIdentical(50))
    alone = FeatureScaler().fit(data)
    for key in data:
        np.testing.assert_allclose(shared.stats_[key][0], alone.stats_[key][0], rtol=1e-5)
        np.testing.assert_allclose(shared.stats_[key][1], alone.stats_[key][1], rtol=1e-5)
    # the trainer as one of two copies: rows an epoch, half batches, summed val metrics
    from sentimodal.models.registry import get_model

    network = get_model("mlp", input="image", input_dim=6, n_classes=2, hidden=[8])
    labels = (data["image"][:, 0] > 3).astype(np.int64)
    inputs = {"image": shared.transform(data)["image"]}
    result = fit(
        network,
        inputs,
        labels,
        val=(inputs, labels),
        config=RunConfig(train={"epochs": 3, "batch_size": 8}).resolved().train,
        replica=TwoIdentical(40),
        progress=False,
    )
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert 0.0 <= result.history[-1]["val_accuracy"] <= 1.0


def test_engine_settings_need_the_ray_engine() -> None:
    with pytest.raises(ValueError, match="need engine 'ray'"):
        RunConfig(workers=2)
    assert RunConfig(engine="ray", workers=2, ray_address="h:1").workers == 2


def test_a_ray_address_that_does_not_answer_is_one_line(
    sample_dataset: PreparedDataset, tmp_path: Path
) -> None:
    pytest.importorskip("ray.train.torch")
    with socket_closed() as port:
        started = time.monotonic()
        result = CliRunner().invoke(
            app,
            ["train", str(sample_dataset.root), "--out", str(tmp_path / "m"), "--model", "concat"]
            + ["--engine", "ray", "--ray-address", f"127.0.0.1:{port}", "-q"],
        )
    assert result.exit_code == 2, result.output
    assert "cannot reach the Ray cluster at 127.0.0.1:" in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert time.monotonic() - started < 30
    result = CliRunner().invoke(
        app, ["train", str(sample_dataset.root), "--out", str(tmp_path / "m"), "--workers", "2"]
    )
    assert result.exit_code == 2 and "need engine 'ray'" in result.output


class socket_closed:
    """A loopback port where nothing listens (bound, then closed)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        pass


# ------------------------------------------------------------------------- slow, on Ray


@pytest.mark.slow
def test_two_ray_workers_train_an_ordinary_model_directory(
    local_ray: None, sample_dataset: PreparedDataset, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    model = SentimentModel(**FAST, engine="ray", workers=2).fit(
        sample_dataset, checkpoint_dir=tmp_path / "checkpoint"
    )
    err = capfd.readouterr().err
    assert err.count("epoch 4/4  train_loss") == 1  # one display, not one per worker
    assert len(model.history_) == 4 and model.best_epoch_ is not None
    model.save(tmp_path / "model")
    loaded = SentimentModel.load(tmp_path / "model")
    np.testing.assert_allclose(
        loaded.predict_proba(sample_dataset, "test"), model.predict_proba(sample_dataset, "test")
    )
    assert loaded.run_.engine == "ray" and loaded.run_.workers == 2


def _train_worker_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"RayTrainWorker" in command:
                pids.append(int(entry.name))
    return sorted(pids)


@pytest.mark.slow
def test_a_worker_killed_mid_epoch_restarts_from_the_last_checkpoint(
    local_ray: None, sample_dataset: PreparedDataset, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    slow = {**FAST, "train": {**FAST["train"], "epochs": 30, "batch_size": 4}}
    folder = tmp_path / "checkpoint"
    killed: list[int] = []

    def kill_a_worker_mid_run() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            found = sorted(folder.glob("checkpoint_*")) if folder.exists() else []
            pids = _train_worker_pids()
            # Ray's controller learns of reported checkpoints every few seconds: wait for
            # epoch 12 (about 4 s of 0.3 s epochs here) so that one has reached it
            if found and pids and _epoch(found[-1]) >= 12:
                os.kill(pids[-1], signal.SIGKILL)
                killed.append(pids[-1])
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker_mid_run, daemon=True)
    killer.start()
    model = SentimentModel(**slow, engine="ray", workers=2, max_failures=2).fit(
        sample_dataset, checkpoint_dir=folder
    )
    killer.join(timeout=5)
    assert killed, "no train worker was found to kill"
    err = capfd.readouterr().err
    assert "resumed after epoch" in err
    assert [r["epoch"] for r in model.history_] == list(range(1, 31))


def _epoch(checkpoint_dir: Path) -> int:
    from sentimodal.training.checkpoint import STATE_FILE

    path = checkpoint_dir / STATE_FILE
    if not path.is_file():
        return 0
    import json

    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return int(json.loads(handle.metadata()["state"])["__dict__"][0][1])
