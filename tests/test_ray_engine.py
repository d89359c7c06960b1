"""The Ray engine on a real (local) Ray instance: the same features, ids and rejects as the
local engine, resumption after an interrupted run, and a running cluster by address."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fault_server import FaultServer, jpeg_bytes, ok, running_server
from sentimodal.features import store
from sentimodal.features.engine import RayEngine
from sentimodal.features.reading import load_features
from sentimodal.features.store import extract_features
from sentimodal.preparation.dataset import PreparedDataset

ray = pytest.importorskip("ray")

SETTINGS: dict[str, Any] = {
    "image": "pixels32",
    "text": "tokens",
    "batch_size": 4,
    "shard_size": 4,
    "workers": 2,
    "progress": False,
}
#: Ray asks for a token it keeps in ~/.ray unless told not to; these clusters listen on
#: loopback only and live for one test.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with running_server() as running:
        running.routes["/a.jpg"] = ok(jpeg_bytes(40, 30, (10, 200, 90)))
        yield running


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray instance for the module (it takes ~10 s to start here)."""
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    temp = tempfile.mkdtemp(prefix="rt")  # short: Ray's socket paths must stay < 108 bytes
    ray.init(
        num_cpus=2,
        object_store_memory=200 * 1024**2,
        include_dashboard=False,
        log_to_driver=False,
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


def make_dataset(root: Path, server: FaultServer, n: int = 18) -> PreparedDataset:
    """Local JPEG/PNG images, a corrupt one, a missing one, one post without an image, and
    URLs: one that works, one that is 404."""
    images = root.parent / "images"  # shared by the datasets of a test: same rejects
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        image: str | None = str(images / f"{i}.{'png' if i % 3 == 0 else 'jpg'}")
        if i == 2:
            Path(image).write_bytes(b"not an image")
        elif i == 4:
            image = str(images / "missing.jpg")
        elif i == 6:
            image = None
        elif i == 8:
            image = server.url("/a.jpg")
        elif i == 10:
            image = server.url("/gone.jpg")
        else:
            colour = ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256)
            Image.new("RGB", (20 + i, 16 + i), colour).save(image)
        words = ["good", "bad", "sunny", "rain", "happy", "sad"]
        rows.append(
            {
                "id": f"p{i}",
                "text": " ".join(words[(i + k) % 6] for k in range(3 + i % 4)),
                "image": image,
                "label": "positive" if i % 2 else "negative",
                "split": "train" if i < 12 else "test",
            }
        )
    return PreparedDataset.from_dataframe(
        pd.DataFrame(rows), id_column="id", image_column="image", split_column="split", root=root
    )


def assert_same_features(
    got_root: Path,
    want_root: Path,
    kinds: tuple[tuple[str, str], ...] = (("image", "pixels32"), ("text", "tokens")),
) -> None:
    for kind, name in kinds:
        got, want = load_features(got_root, kind, name), load_features(want_root, kind, name)
        assert got.ids == want.ids and len(set(got.ids)) == len(got.ids)
        np.testing.assert_allclose(got.values, want.values, atol=1e-6, rtol=0)
        if kind == "text":
            np.testing.assert_array_equal(got.lengths, want.lengths)


def rejects(root: Path, kind: str = "image") -> pd.DataFrame:
    (path,) = (root / "features" / kind).glob("*/rejects.csv")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_ray_engine_matches_the_local_engine(
    tmp_path: Path, server: FaultServer, local_ray: None
) -> None:
    """The one Ray test of the fast suite (images only: each Ray job costs seconds here; the
    slow tests below compare text features too)."""
    local_root = make_dataset(tmp_path / "local", server).root
    ray_root = make_dataset(tmp_path / "ray", server).root
    settings = {**SETTINGS, "text": None, "allow_private_addresses": True}
    extract_features(local_root, engine="local", **settings)
    extract_features(ray_root, engine="ray", **settings)
    assert_same_features(ray_root, local_root, kinds=(("image", "pixels32"),))
    assert rejects(ray_root).equals(rejects(local_root))
    assert set(rejects(ray_root)["id"]) == {"p2", "p4", "p10"}


@pytest.mark.slow
def test_the_address_opt_in_reaches_ray_actors(
    tmp_path: Path, server: FaultServer, local_ray: None
) -> None:
    refused_root = make_dataset(tmp_path / "refused", server).root
    extract_features(refused_root, engine="ray", **SETTINGS)
    refused = rejects(refused_root).set_index("id")["reason"]
    assert set(refused.index) == {"p2", "p4", "p8", "p10"}
    assert "refused: loopback address 127.0.0.1" in refused["p8"]


class _Interrupted(Exception):
    pass


class StopsAfter:
    """A Ray engine whose driver is interrupted after ``n`` results (as by Ctrl-C)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def run(self, work: Any, batches: Any) -> Iterator[Any]:
        for count, result in enumerate(RayEngine(workers=2).run(work, batches)):
            if count == self.n:
                raise _Interrupted
            yield result


@pytest.mark.slow
def test_interrupted_ray_run_resumes_without_gaps_or_duplicates(
    tmp_path: Path, server: FaultServer, local_ray: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_root = make_dataset(tmp_path / "local", server).root
    ray_root = make_dataset(tmp_path / "ray", server).root
    extract_features(local_root, allow_private_addresses=True, **SETTINGS)
    with monkeypatch.context() as patch:
        patch.setattr(store, "get_engine", lambda *a, **k: StopsAfter(2))
        with pytest.raises(_Interrupted):
            extract_features(ray_root, engine="ray", allow_private_addresses=True, **SETTINGS)
    (folder,) = (ray_root / "features" / "image").iterdir()
    written = sorted(p.name for p in folder.glob("shard-*.safetensors"))
    assert 0 < len(written) < 5 and not (folder / "ids.json").exists()
    extract_features(ray_root, engine="ray", allow_private_addresses=True, **SETTINGS)
    assert_same_features(ray_root, local_root)
    assert rejects(ray_root).drop(columns="image").equals(rejects(local_root).drop(columns="image"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def ray_cluster() -> Iterator[str]:
    """``ray start --head`` on loopback, stopped (its whole process group) after the test.

    The head listens on 127.0.0.2: Ray rewrites 127.0.0.1 in an address to the machine's
    network address, where nothing would listen.
    """
    host, port = "127.0.0.2", free_port()
    temp = tempfile.mkdtemp(prefix="rc")
    command = [
        str(Path(sys.executable).with_name("ray")),
        *("start", "--head", "--block", "--disable-usage-stats"),
        *("--port", str(port), "--node-ip-address", host, "--num-cpus", "2"),
        *("--include-dashboard", "false", "--temp-dir", temp),
        *("--object-store-memory", str(200 * 1024**2)),
    ]
    env = {**os.environ, **RAY_ENV}
    head = subprocess.Popen(
        command,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and head.poll() is None:
            try:
                socket.create_connection((host, port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("ray start --head did not come up")
        yield f"{host}:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_ray_address_connects_to_a_running_cluster(
    tmp_path: Path, server: FaultServer, ray_cluster: str
) -> None:
    local_root = make_dataset(tmp_path / "local", server).root
    ray_root = make_dataset(tmp_path / "ray", server).root
    extract_features(local_root, allow_private_addresses=True, **SETTINGS)
    command = [
        str(Path(sys.executable).with_name("sentimodal")),
        *("features", str(ray_root), "--engine", "ray", "--ray-address", ray_cluster),
        *("--image", "pixels32", "--text", "tokens", "--batch-size", "4", "--shard-size", "4"),
        "--allow-private-addresses",
    ]
    env = {**os.environ, **RAY_ENV}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_features(ray_root, local_root)
    assert rejects(ray_root).drop(columns="image").equals(rejects(local_root).drop(columns="image"))
