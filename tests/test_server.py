"""`sentimodal serve`: a real uvicorn server on 127.0.0.1, every endpoint and every limit."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from sentimodal.interfaces.server import ServerSettings
from sentimodal.interfaces.server.batcher import MicroBatcher, QueueFull
from sentimodal.training.estimator import SentimentModel
from server_fixtures import (
    ThreadServer,
    free_port,
    sample_posts,
    train_embedding,
    train_fusion,
    wait_ready,
)

SETTINGS = ServerSettings(
    max_request_bytes=2 * 1024 * 1024, max_batch_posts=8, batch_window_ms=30, queue_size=32
)


@pytest.fixture(scope="session")
def fusion_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_fusion(tmp_path_factory.mktemp("serve") / "fusion")


@pytest.fixture(scope="session")
def embedding_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_embedding(tmp_path_factory.mktemp("serve") / "embedding")


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(record.getMessage()))


@pytest.fixture(scope="session")
def access_lines() -> Iterator[list[dict]]:
    handler = _Lines()
    logger = logging.getLogger("sentimodal.server.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)


@pytest.fixture(scope="session")
def server(fusion_dir: Path, access_lines: list[dict]) -> Iterator[str]:
    with ThreadServer(fusion_dir, SETTINGS) as running:
        yield running.base


@pytest.fixture(scope="session")
def embedding_server(embedding_dir: Path) -> Iterator[str]:
    with ThreadServer(embedding_dir, SETTINGS) as running:
        yield running.base


@pytest.fixture(scope="session")
def post() -> dict:
    row = sample_posts(1).iloc[0]
    return {"text": row["text"], "image": row["image"]}


def _b64(path: str | Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    return body["error"]["message"]


def test_health_ready_model_docs_and_page(server: str) -> None:
    assert httpx.get(f"{server}/health").json() == {"status": "ok"}
    assert httpx.get(f"{server}/ready").json() == {"status": "ready"}
    info = httpx.get(f"{server}/v1/model").json()
    assert info["labels"] == ["negative", "neutral", "positive"]
    assert info["inputs"] == {"text": True, "image": True} and info["open_labels"] is False
    assert info["encoders"]["image"]["name"] == "pixels32" and info["version"]["sentimodal"]
    assert info["limits"]["max_batch_posts"] == 8
    docs = httpx.get(f"{server}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = httpx.get(f"{server}/openapi.json").json()
    assert {"/v1/predict", "/v1/predict/batch", "/v1/model", "/health", "/ready"} <= set(
        schema["paths"]
    )
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<textarea" in page.text and 'type="file"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no external assets


def test_predict_json_matches_the_python_api(server: str, fusion_dir: Path, post: dict) -> None:
    response = httpx.post(
        f"{server}/v1/predict",
        json={"id": "a", "text": post["text"], "image_base64": _b64(post["image"])},
        headers={"x-request-id": "req-1"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "req-1"
    out = response.json()
    expected = SentimentModel.load(fusion_dir).predict_posts([post])[0]
    assert out["id"] == "a" and out["label"] == expected.label
    assert out["scores"] == pytest.approx(expected.scores, abs=1e-5)


def test_predict_multipart_upload(server: str, post: dict) -> None:
    files = {"image": ("p.jpg", Path(post["image"]).read_bytes(), "image/jpeg")}
    response = httpx.post(f"{server}/v1/predict", data={"text": post["text"]}, files=files)
    assert response.status_code == 200, response.text
    assert sum(response.json()["scores"].values()) == pytest.approx(1, abs=1e-5)


def test_a_post_with_one_modality_is_labelled_from_it(server: str, post: dict) -> None:
    files = {"image": ("p.jpg", Path(post["image"]).read_bytes(), "image/jpeg")}
    alone = httpx.post(f"{server}/v1/predict", files=files)
    assert alone.status_code == 200, alone.text
    assert alone.json()["modalities"] == "image" and alone.json()["error"] is None
    text = httpx.post(f"{server}/v1/predict", json={"text": post["text"]})
    assert text.status_code == 200, text.text
    assert text.json()["modalities"] == "text" and text.json()["label"] is not None


def test_batch_keeps_order_and_bad_posts(server: str, post: dict) -> None:
    good = {"text": post["text"], "image_base64": _b64(post["image"])}
    posts = [
        {**good, "id": "1"},
        {"id": "2", "text": "fine", "image_base64": base64.b64encode(b"not an image").decode()},
        {"id": "3", "text": "", "image_base64": good["image_base64"]},
        {**good, "id": "4"},
    ]
    response = httpx.post(f"{server}/v1/predict/batch", json={"posts": posts})
    assert response.status_code == 200, response.text
    out = response.json()["predictions"]
    assert [p["id"] for p in out] == ["1", "2", "3", "4"]
    assert out[0]["label"] and out[0]["scores"] == out[3]["scores"]
    assert out[1]["label"] is None and "not an image" in out[1]["error"]
    # a fusion reads a post without text by its image, and says so
    assert out[2]["error"] is None and out[2]["modalities"] == "image"
    assert out[0]["modalities"] == "text+image"


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares a huge image (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_limits_answer_json_errors_with_proper_status(server: str, post: dict) -> None:
    url = f"{server}/v1/predict"
    image = _b64(post["image"])
    big = httpx.post(url, content=b"x" * (3 * 1024 * 1024), headers={"content-type": "text/plain"})
    assert "2,097,152" in _error(big, 413, "body_too_large")
    bomb = base64.b64encode(_png_header_only(6000, 6000)).decode()
    assert "6000x6000" in _error(
        httpx.post(url, json={"text": "x", "image_base64": bomb}), 413, "image_too_large"
    )
    long_text = httpx.post(url, json={"text": "a" * 1_000_000, "image_base64": image})
    _error(long_text, 413, "text_too_long")
    batch = httpx.post(f"{server}/v1/predict/batch", json={"posts": [{"text": "x"}] * 9})
    _error(batch, 413, "batch_too_large")
    corrupt = base64.b64encode(Path(post["image"]).read_bytes()[:200]).decode()
    _error(httpx.post(url, json={"text": "x", "image_base64": corrupt}), 422, "bad_image")
    _error(httpx.post(url, json={"text": "x", "image_base64": "%%%"}), 422, "bad_image")
    wrong = httpx.post(url, content=b"hello", headers={"content-type": "text/plain"})
    _error(wrong, 415, "unsupported_media_type")
    _error(httpx.post(f"{server}/v1/predict/batch", data={"a": "b"}), 415, "unsupported_media_type")
    malformed = httpx.post(url, content=b"{nope", headers={"content-type": "application/json"})
    _error(malformed, 400, "malformed_json")
    _error(httpx.post(url, json={"text": "x", "colour": 1}), 422, "invalid_request")
    text_only = httpx.post(url, json={"text": "x"})  # the fusion falls back to the text
    assert text_only.status_code == 200 and text_only.json()["modalities"] == "text"
    _error(httpx.post(url, json={"text": ""}), 422, "unpredictable_post")  # nothing to read
    labels = httpx.post(url, json={"text": "x", "image_base64": image, "labels": ["a", "b"]})
    assert "softmax" in _error(labels, 422, "unknown_labels")
    fetch = httpx.post(url, json={"text": "x", "image_url": "http://169.254.169.254/x.jpg"})
    _error(fetch, 422, "image_urls_disabled")


def test_free_labels_on_an_embedding_head(embedding_server: str) -> None:
    url = f"{embedding_server}/v1/predict"
    info = httpx.get(f"{embedding_server}/v1/model").json()
    assert info["open_labels"] is True and info["inputs"] == {"text": True, "image": False}
    free = httpx.post(url, json={"text": "I love it", "labels": ["joy", "anger", "sadness"]})
    assert free.status_code == 200, free.text
    assert set(free.json()["scores"]) == {"joy", "anger", "sadness"}
    plain = httpx.post(url, json={"text": "I love it"}).json()
    assert set(plain["scores"]) == set(info["labels"])  # the trained labels are back
    unknown = httpx.post(url, json={"text": "x", "labels": ["qwzxv", "vvqqz"]})
    assert "GloVe" in _error(unknown, 422, "unknown_labels")
    form = httpx.post(url, data={"text": "I love it", "labels": "joy,anger"})
    assert set(form.json()["scores"]) == {"joy", "anger"}


def test_concurrent_requests_are_micro_batched(
    server: str, post: dict, access_lines: list[dict]
) -> None:
    body = {"text": post["text"], "image_base64": _b64(post["image"])}

    def send(i: int) -> httpx.Response:
        return client.post(f"{server}/v1/predict", json=body, headers={"x-request-id": f"c{i}"})

    with httpx.Client() as client, ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(send, range(32)))
    assert all(r.status_code == 200 for r in responses)
    first = responses[0].json()
    for response in responses:  # one post, whatever batch it ran in
        assert response.json()["scores"] == pytest.approx(first["scores"], abs=1e-5)
    ids = {f"c{i}" for i in range(32)}
    lines = [x for x in access_lines if x["id"] in ids]
    assert len(lines) == 32 and {x["status"] for x in lines} == {200}
    assert all(set(x) >= {"id", "status", "latency_ms", "batch_size"} for x in lines)
    assert max(x["batch_size"] for x in lines) > 1


def test_batcher_bounds_its_queue_and_batches_by_key() -> None:
    async def scenario() -> None:
        calls: list[tuple] = []
        gate = asyncio.Event()

        def run(key: object, payloads: list) -> list:
            calls.append((key, list(payloads)))
            return [f"{key}:{p}" for p in payloads]

        batcher = MicroBatcher(run, max_batch=4, window_s=0.05, queue_size=2)
        first = asyncio.ensure_future(batcher.submit(1, key="a"))
        second = asyncio.ensure_future(batcher.submit(2, key="a"))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):  # nothing consumes yet: the queue holds 2
            await batcher.submit(3, key="a")
        batcher.start()
        third = asyncio.ensure_future(batcher.submit(4, key="b"))
        results = await asyncio.gather(first, second, third)
        gate.set()
        await batcher.stop()
        assert [r[0] for r in results] == ["a:1", "a:2", "b:4"]
        assert calls == [("a", [1, 2]), ("b", [4])]

    asyncio.run(scenario())


def test_timeout_is_a_504(fusion_dir: Path, post: dict) -> None:
    slow = SETTINGS.model_copy(update={"request_timeout_s": 0.001, "batch_window_ms": 200})
    with ThreadServer(fusion_dir, slow) as running:
        body = {"text": post["text"], "image_base64": _b64(post["image"])}
        _error(httpx.post(f"{running.base}/v1/predict", json=body), 504, "timeout")
        assert httpx.get(f"{running.base}/ready").status_code == 200


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src, "HF_HUB_OFFLINE": "1"}


def test_serve_command_shuts_down_gracefully(fusion_dir: Path, post: dict, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # a long collection window keeps the requests inside the server when the signal comes
    (tmp_path / "server.yaml").write_text("batch_window_ms: 1500\n")
    code = "import sys; from sentimodal.interfaces.cli import app; app(sys.argv[1:])"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "serve", str(fusion_dir), "--port", str(port),
         "--config", str(tmp_path / "server.yaml")],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_ready(base, timeout=120)
        body = {"text": post["text"], "image_base64": _b64(post["image"])}
        with httpx.Client(timeout=30) as client, ThreadPoolExecutor(8) as pool:
            pending = [pool.submit(client.post, f"{base}/v1/predict", json=body) for _ in range(8)]
            time.sleep(0.7)  # all 8 are in, waiting for their batch
            process.send_signal(signal.SIGTERM)
            statuses = [f.result().status_code for f in pending]
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert statuses == [200] * 8  # in-flight requests were answered, not dropped
    log = [json.loads(line) for line in process.stderr.read().splitlines() if line.startswith("{")]
    assert [x["batch_size"] for x in log if x["path"] == "/v1/predict"] == [8] * 8
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/health", timeout=2)
