"""Small models and a real uvicorn server on 127.0.0.1 for the server tests."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import uvicorn

from sentimodal.interfaces.server import ServerSettings, create_app
from sentimodal.interfaces.server.connections import uvicorn_config
from sentimodal.interfaces.server.model import ServedModel
from sentimodal.sample import sample_path
from sentimodal.training.estimator import SentimentModel


def sample_posts(n: int = 90) -> pd.DataFrame:
    """The embedded MVSA sample's first posts: text, image path, the text annotation."""
    root = sample_path()
    lines = (root / "labelResultAll.txt").read_text().splitlines()[1:]
    rows = []
    for line in lines:
        post_id, labels = line.split("\t")
        text_file = root / "data" / f"{post_id}.txt"
        if not text_file.is_file():
            continue
        text = text_file.read_text(encoding="utf-8", errors="replace").strip()
        rows.append(
            {
                "id": post_id,
                "text": text,
                "image": str(root / "data" / f"{post_id}.jpg"),
                "label": labels.split(",")[0],
            }
        )
        if len(rows) == n:
            break
    return pd.DataFrame(rows)


def train_fusion(out: Path) -> Path:
    """Text (VADER) + image (32x32 pixels), concatenated, softmax: trains in seconds."""
    model = SentimentModel(
        model="concat", text_encoder="vader", image_encoder="pixels32", feature_workers=0,
        train={"epochs": 3},
    )  # fmt: skip
    model.fit(sample_posts(), work_dir=out.parent / f"{out.name}-work", progress=False)
    return model.save(out)


def train_embedding(out: Path) -> Path:
    """Text-only with a GloVe embedding head: takes free labels."""
    model = SentimentModel(
        model="text", head="embedding", text_encoder="vader", train={"epochs": 3}
    )
    model.fit(sample_posts(), work_dir=out.parent / f"{out.name}-work", progress=False)
    return model.save(out)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base: str, timeout: float = 60.0) -> float:
    """Seconds until /ready answers 200."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{base} not ready after {timeout} s")


class ThreadServer:
    """uvicorn in a thread of the test process, on a free port of 127.0.0.1."""

    def __init__(self, model_dir: Path, settings: ServerSettings, runtime: str = "torch") -> None:
        app = create_app(lambda: ServedModel.load(model_dir, runtime), settings, "127.0.0.1")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        short = settings.model_copy(update={"graceful_shutdown_s": 5})
        self.server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", self.port, short))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        wait_ready(self.base)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def score_gap(ours: list, theirs: list) -> float:
    """The largest difference between two predictions of the same posts, label by label (the
    labels of ``ours``): how far an export or another runtime strays from the model."""
    labels = list(ours[0].scores)
    a = np.array([[p.scores[c] for c in labels] for p in ours])
    b = np.array([[p.scores[c] for c in labels] for p in theirs])
    return float(np.abs(a - b).max())
