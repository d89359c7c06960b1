"""`sentimodal download` against a fault-injecting server on 127.0.0.1: what the stats and
rejects say matches what the server did, request for request; reruns resume."""

from __future__ import annotations

import csv
import ipaddress
import json
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from fault_server import (
    FaultHandler,
    FaultServer,
    bomb_png,
    drip,
    fail_then_ok,
    jpeg_bytes,
    ok,
    redirect,
    running_server,
    truncated,
)
from sentimodal.download import download
from sentimodal.features.images import load_image
from sentimodal.net import addresses
from sentimodal.preparation.dataset import PreparedDataset

PHOTO = jpeg_bytes(32, 24)
FAST = {"backoff": 0.01, "timeout": 1.0, "deadline": 2.0, "workers": 4, "shard_size": 3}


@pytest.fixture()
def server() -> Iterator[FaultServer]:
    with running_server() as running:
        yield running


@pytest.fixture()
def loopback_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test server's 127.0.0.1 passes as a public address, so that the default address
    rules apply to everything else (a redirect to 10.0.0.1 must still be refused)."""
    original = addresses.refusal
    loopback = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(addresses, "refusal", lambda ip: None if ip == loopback else original(ip))


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "text", "label", "url"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def faulty_table(server: FaultServer, tmp_path: Path) -> Path:
    routes = {
        "/a.jpg": ok(PHOTO),
        "/flaky.jpg": fail_then_ok(1, 500, PHOTO),
        "/busy.jpg": fail_then_ok(1, 429, PHOTO, Retry_After="1"),
        "/drip.jpg": drip(PHOTO, interval=0.3),
        "/cut.jpg": truncated(PHOTO),
        "/big.jpg": ok(b"\xff" * 50_000),
        "/to-private.jpg": redirect("http://10.0.0.1/a.jpg"),
        "/page.html": ok(b"<html>not a photo</html>", "text/html"),
        "/bomb.png": ok(bomb_png()),
    }
    server.routes.update(routes)
    urls = [
        ("1", "/a.jpg"),
        ("2", "/missing.jpg"),
        ("3", "/flaky.jpg"),
        ("4", "/busy.jpg"),
        ("5", "/drip.jpg"),
        ("6", "/cut.jpg"),
        ("7", "/big.jpg"),
        ("8", "/to-private.jpg"),
        ("9", "/page.html"),
        ("10", "/bomb.png"),
        ("11", "/a.jpg"),
    ]
    rows = [
        {"id": i, "text": f"post {i}", "label": "positive", "url": server.url(p)} for i, p in urls
    ]
    rows.append({"id": "12", "text": "no image", "label": "negative", "url": ""})
    rows.append({"id": "13", "text": "bad", "label": "negative", "url": "http://x.example/a b.jpg"})
    return write_csv(tmp_path / "posts.csv", rows)


def test_download_matches_what_the_server_did(
    server: FaultServer, tmp_path: Path, loopback_is_public: None
) -> None:
    table = faulty_table(server, tmp_path)
    out = tmp_path / "out"
    result = download(
        table,
        out,
        id_column="id",
        text_columns=["text"],
        label_column="label",
        image_column="url",
        max_bytes=20_000,
        progress=False,
        **FAST,
    )
    stats = json.loads((out / "stats.json").read_text())
    assert stats == result.stats
    assert stats["url_rows"] == 12 and stats["unique_urls"] == 11
    assert stats["successes"] == 4  # a.jpg twice, flaky, busy
    assert stats["failures_by_reason"] == {
        "HTTP 404": 1,
        "image too large to decode safely": 1,
        "invalid URL": 1,
        "not an image": 1,
        "refused address": 1,
        "timeout": 1,
        "too large": 1,
        "truncated body": 1,
    }
    assert stats["retryable_failures"] == 2  # timeout and truncated body
    # request for request: one fetch of a.jpg for both rows, retries where they help
    assert server.counts() == {
        "/a.jpg": 1,
        "/missing.jpg": 1,
        "/flaky.jpg": 2,
        "/busy.jpg": 2,
        "/drip.jpg": 1,  # the deadline leaves no time for a retry
        "/cut.jpg": 3,  # two retries
        "/big.jpg": 1,
        "/to-private.jpg": 1,
        "/page.html": 1,
        "/bomb.png": 1,
    }
    run = stats["this_run"]
    assert run["fetched_ok"] == 3 and run["fetches"] == 11  # unique URLs
    assert run["bytes_received"] == 3 * len(PHOTO) + len(b"<html>not a photo</html>") + len(
        bomb_png()
    )

    rejects = pd.read_csv(out / "rejects.csv", dtype=str)
    assert sorted(rejects["id"], key=int) == ["2", "5", "6", "7", "8", "9", "10", "13"]
    reasons = dict(zip(rejects["id"], rejects["reason"], strict=True))
    assert reasons["2"] == "image download failed: HTTP 404"
    assert reasons["5"] == "image download failed: timed out after 2 s"
    assert reasons["8"] == "image download failed: refused: private address 10.0.0.1"
    assert reasons["13"] == "image download failed: invalid URL (contains a space)"
    assert reasons["7"].startswith("image download failed: larger than 20000 bytes")

    dataset = PreparedDataset.load(out)
    assert dataset is not None and sorted(dataset.examples["id"], key=int) == [
        "1",
        "3",
        "4",
        "11",
        "12",
    ]
    images = dict(zip(dataset.examples["id"], dataset.examples["image"], strict=True))
    assert images["1"] == images["11"]  # the same URL is one file
    assert pd.isna(images["12"])
    for key in ("1", "3", "4"):
        assert Path(images[key]).is_absolute() and load_image(images[key]).size == (32, 24)
    assert dataset.info["n_rejects"] == 8 and dataset.info["counts"]["all"]["positive"] == 4


def test_rerun_retries_only_failures_that_can_succeed(
    server: FaultServer, tmp_path: Path, loopback_is_public: None
) -> None:
    table = faulty_table(server, tmp_path)
    settings = {
        "id_column": "id",
        "image_column": "url",
        "max_bytes": 20_000,
        "progress": False,
        **FAST,
    }
    download(table, tmp_path / "out", **settings)
    first = server.counts()
    server.routes["/cut.jpg"] = ok(PHOTO)  # the truncation was transient
    second = download(table, tmp_path / "out", **settings).stats
    again = server.counts() - first
    assert again == {"/cut.jpg": 1, "/drip.jpg": 1}
    assert second["successes"] == 5 and second["this_run"]["fetched_ok"] == 1
    assert (
        second["failures_by_reason"]["timeout"] == 1
        and "truncated body" not in (second["failures_by_reason"])
    )
    # a third run with nothing retryable left fetches nothing new but the timeout
    server.routes["/drip.jpg"] = ok(PHOTO)
    third = download(table, tmp_path / "out", **settings).stats
    assert server.counts() - first - again == {"/drip.jpg": 1}
    assert third["successes"] == 6 and third["retryable_failures"] == 0


def test_refused_by_default_and_the_opt_in(server: FaultServer, tmp_path: Path) -> None:
    server.routes["/a.jpg"] = ok(PHOTO)
    table = write_csv(
        tmp_path / "t.csv", [{"id": "1", "text": "x", "label": "", "url": server.url("/a.jpg")}]
    )
    refused = download(table, tmp_path / "no", image_column="url", progress=False).stats
    assert refused["failures_by_reason"] == {"refused address": 1} and not server.log
    allowed = download(
        table, tmp_path / "yes", image_column="url", allow_private_addresses=True, progress=False
    ).stats
    assert allowed["successes"] == 1 and server.counts() == {"/a.jpg": 1}


def test_resize_and_prepared_dataset_input(server: FaultServer, tmp_path: Path) -> None:
    server.routes["/a.jpg"] = ok(PHOTO)
    server.routes["/b.jpg"] = ok(jpeg_bytes(300, 200))
    frame = pd.DataFrame(
        {
            "id": ["p1", "p2", "p3", "p4"],
            "text": ["one", "two", "three", "four"],
            "image": [server.url("/a.jpg"), server.url("/b.jpg"), server.url("/gone.jpg"), ""],
            "label": ["positive", "negative", "positive", "negative"],
            "split": ["train", "train", "test", "test"],
        }
    )
    source = PreparedDataset.from_dataframe(
        frame, image_column="image", id_column="id", split_column="split", root=tmp_path / "in"
    )
    out = tmp_path / "out"
    download(source.root, out, resize=64, allow_private_addresses=True, progress=False, **FAST)
    dataset = PreparedDataset.load(out)
    assert dataset.examples["id"].tolist() == ["p1", "p2", "p4"]
    assert dataset.labels == source.labels
    assert dataset.info["counts"] == {
        "train": {"negative": 1, "positive": 1},
        "test": {"negative": 1, "positive": 0},
    }
    sizes = [Image.open(p).size for p in dataset.examples["image"][:2]]
    assert sizes == [(32, 24), (96, 64)]  # only downscaled, shorter side 64
    assert pd.read_csv(out / "rejects.csv")["id"].tolist() == ["p3"]


def slow(delay: float):
    def behave(h: FaultHandler, n: int) -> None:
        time.sleep(delay)
        h.send_body(PHOTO)

    return behave


def _child(table: str, out: str) -> None:
    download(
        table,
        out,
        image_column="url",
        id_column="id",
        allow_private_addresses=True,
        workers=2,
        shard_size=2,
        progress=False,
    )


def test_killed_download_resumes_without_gaps_or_duplicates(
    server: FaultServer, tmp_path: Path
) -> None:
    rows = []
    for i in range(12):
        server.routes[f"/{i}.jpg"] = slow(0.15)
        rows.append({"id": str(i), "text": "", "label": "", "url": server.url(f"/{i}.jpg")})
    table = write_csv(tmp_path / "t.csv", rows)
    out = tmp_path / "out"
    process = multiprocessing.get_context("fork").Process(target=_child, args=(table, out))
    process.start()
    second_shard = out / "shards" / "shard-00001.json"
    deadline = time.monotonic() + 20
    while not second_shard.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    assert second_shard.exists()
    before = server.counts()
    done_before = {
        url
        for path in (out / "shards").glob("shard-*.json")
        for _, url in json.loads(path.read_text())["rows"]
    }
    stats = download(
        table,
        out,
        image_column="url",
        id_column="id",
        allow_private_addresses=True,
        shard_size=2,
        progress=False,
    ).stats
    assert stats["successes"] == 12 and stats["failures"] == 0
    dataset = PreparedDataset.load(out)
    assert sorted(dataset.examples["id"], key=int) == [str(i) for i in range(12)]
    assert dataset.examples["image"].map(lambda p: Path(p).is_file()).all()
    after = server.counts() - before
    # finished shards were not fetched again; the rest was fetched at most once more
    assert not {server.url(p) for p in after} & done_before
    assert sum(after.values()) == 12 - len(done_before)


def test_cli_download(server: FaultServer, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sentimodal.interfaces.cli import app

    server.routes["/a.jpg"] = ok(PHOTO)
    table = write_csv(
        tmp_path / "t.csv",
        [
            {"id": "a", "text": "hello", "label": "positive", "url": server.url("/a.jpg")},
            {"id": "b", "text": "bye", "label": "negative", "url": server.url("/b.jpg")},
        ],
    )
    out = tmp_path / "out"
    base = ["download", str(table), "--out", str(out), "--image-column", "url", "-q"]
    refused = CliRunner().invoke(app, [*base, "--id-column", "id"])
    assert refused.exit_code == 0, refused.output
    assert "refused address" in refused.output and not server.log
    args = [*base, "--id-column", "id", "--text-column", "text", "--label-column", "label"]
    result = CliRunner().invoke(app, [*args, "--allow-private-addresses", "--retries", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "stats.json").read_text())["failures_by_reason"] == {"HTTP 404": 1}
    dataset = PreparedDataset.load(out)
    assert dataset.examples["id"].tolist() == ["a"] and dataset.labels == ["negative", "positive"]
    missing = CliRunner().invoke(app, [*base, "--id-column", "nope"])
    assert missing.exit_code == 2 and "column 'nope' not in" in missing.output
