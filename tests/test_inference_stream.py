"""Streaming table prediction: chunks, per-row errors, exit codes, resume, flat memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from sentimodal.inference.posts import PostBatchWork, post_rows, predict_rows
from sentimodal.inference.stream import Columns, predict_table, progress_path
from sentimodal.interfaces.cli import app
from sentimodal.training.estimator import SentimentModel

runner = CliRunner()
WORDS = ["I love this", "so happy today", "great fun", "awful day", "I hate it", "terrible news"]


@pytest.fixture(scope="module")
def text_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny text-only model on VADER scores: trains in about a second."""
    root = tmp_path_factory.mktemp("model")
    frame = pd.DataFrame(
        {
            "text": WORDS * 12,
            "label": (["positive"] * 3 + ["negative"] * 3) * 12,
        }
    )
    model = SentimentModel(model="text", text_encoder="vader", train={"epochs": 20, "lr": 0.01})
    model.fit(frame, work_dir=root / "work", progress=False)
    return model.save(root / "model")


def _texts(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"id": [f"p{i}" for i in range(n)], "text": [f"{WORDS[i % 6]} #{i}" for i in range(n)]}
    )


def test_csv_to_jsonl_keeps_bad_rows_and_exits_1_unless_allowed(
    text_model: Path, tmp_path: Path
) -> None:
    posts = _texts(300)
    posts.loc[[5, 250], "text"] = ""
    posts.to_csv(tmp_path / "posts.csv", index=False)
    out = tmp_path / "out.jsonl"
    args = ["predict", str(text_model), "-i", str(tmp_path / "posts.csv"), "-o", str(out)]
    result = runner.invoke(app, [*args, "--chunk-rows", "64", "-q"])
    assert result.exit_code == 1, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == list(posts["id"])
    keys = {"id", "label", "scores", "modalities", "error", "warning"}
    assert all(set(x) == keys for x in lines)
    bad = [x for x in lines if x["error"] is not None]
    assert [x["id"] for x in bad] == ["p5", "p250"]
    assert all(x["label"] is None and x["scores"] is None for x in bad)
    good = lines[0]
    assert good["label"] in ("negative", "positive") and good["error"] is None
    assert abs(sum(good["scores"].values()) - 1) < 1e-5
    # a rerun finds the run complete; --allow-errors accepts the two failures
    again = runner.invoke(app, [*args, "--allow-errors", "-q"])
    assert again.exit_code == 0, again.output
    assert "already complete" in again.output


def test_stream_matches_predict_posts_and_writes_parquet(text_model: Path, tmp_path: Path) -> None:
    posts = _texts(200)
    posts.to_parquet(tmp_path / "posts.parquet")
    model = SentimentModel.load(text_model)
    work = model.post_work()
    summary = predict_table(
        work, tmp_path / "posts.parquet", tmp_path / "out.parquet", model_name="m",
        chunk_rows=33, batch_size=8, progress=False,
    )  # fmt: skip
    assert (summary.rows, summary.errors, summary.resumed) == (200, 0, 0)
    table = pq.read_table(tmp_path / "out.parquet").to_pylist()
    direct = model.predict_posts(posts)
    assert [r["id"] for r in table] == [p.id for p in direct]
    assert [r["label"] for r in table] == [p.label for p in direct]
    for row, p in zip(table, direct, strict=True):
        assert row["scores"] == pytest.approx(p.scores, abs=1e-6)
    assert not (tmp_path / "out.parquet.parts").exists()


def test_jsonl_input_with_custom_columns(text_model: Path, tmp_path: Path) -> None:
    rows = [{"key": "a", "caption": "I love this"}, {"key": "b", "caption": "I hate it"}]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    work = SentimentModel.load(text_model).post_work()
    predict_table(
        work, tmp_path / "in.jsonl", tmp_path / "o.jsonl", model_name="m",
        columns=Columns(text="caption", id="key"), progress=False,
    )  # fmt: skip
    out = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [(x["id"], x["label"]) for x in out] == [("a", "positive"), ("b", "negative")]


def test_foreign_output_and_changed_input_are_refused(text_model: Path, tmp_path: Path) -> None:
    _texts(10).to_csv(tmp_path / "posts.csv", index=False)
    (tmp_path / "taken.jsonl").write_text("something else\n")
    base = ["predict", str(text_model), "-i", str(tmp_path / "posts.csv"), "-q"]
    taken = runner.invoke(app, [*base, "-o", str(tmp_path / "taken.jsonl")])
    assert taken.exit_code == 2 and "already exists" in taken.output
    out = tmp_path / "o.jsonl"
    state = {"format": "sentimodal-predict-progress", "identity": {"input": "other"}}
    out.write_text("")
    progress_path(out).write_text(json.dumps(state))
    changed = runner.invoke(app, [*base, "-o", str(out)])
    assert changed.exit_code == 2 and "another input" in changed.output
    for broken, says in (("{not json", "unreadable prediction progress file"), ("[]", "not a")):
        progress_path(out).write_text(broken)
        refused = runner.invoke(app, [*base, "-o", str(out)])
        assert refused.exit_code == 2 and says in refused.output, refused.output


def test_predict_rows_keeps_order_and_ids() -> None:
    rows = post_rows([{"text": "a"}, {"id": "x", "text": None}], start=7)
    assert [(r["position"], r["id"], r["text"]) for r in rows] == [(7, "7", "a"), (8, "x", "")]
    assert predict_rows(None, []) == []  # type: ignore[arg-type]


def test_token_models_batch_texts_of_similar_length_and_answer_in_row_order() -> None:
    from sentimodal.features.text_encoders import get_text_encoder

    texts = ["a much longer text than the others, by far", "hi", "medium sized text", "ok"]
    rows = post_rows([{"id": f"p{i}", "text": t} for i, t in enumerate(texts)])

    def work(encoder: str) -> PostBatchWork:
        return PostBatchWork(
            image_encoder=None,
            text_encoder=get_text_encoder(encoder),
            scaler=None,
            score=lambda data: data["text"][:, :2].astype("float32"),
            classes=["a", "b"],
        )

    tokens = work("minilm_tokens")
    assert [[r["id"] for r in b] for b in tokens.batches(rows, 2)] == [["p1", "p3"], ["p2", "p0"]]
    predictions = predict_rows(tokens, rows, batch_size=2)
    assert [p.id for p in predictions] == ["p0", "p1", "p2", "p3"]
    # each post's scores are its own ([CLS] id, first word-piece id), whatever its batch
    first_ids = get_text_encoder("minilm_tokens").encode(texts)[:, 1]
    assert [p.scores["b"] for p in predictions] == [float(i) for i in first_ids]
    vectors = work("vader")  # no padding to save: the table's order is kept
    assert [[r["id"] for r in b] for b in vectors.batches(rows, 3)] == [["p0", "p1", "p2"], ["p3"]]
    with pytest.raises(ValueError, match="batch size"):
        tokens.batches(rows, 0)


def _cli(*args: str) -> list[str]:
    code = "import sys; from sentimodal.interfaces.cli import app; app(sys.argv[1:])"
    return [sys.executable, "-c", code, *args]


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src, "HF_HUB_OFFLINE": "1"}


def test_interrupted_run_resumes_with_one_line_per_row(text_model: Path, tmp_path: Path) -> None:
    n = 6000
    _texts(n).to_csv(tmp_path / "posts.csv", index=False)
    out = tmp_path / "out.jsonl"
    args = _cli(
        "predict", str(text_model), "-i", str(tmp_path / "posts.csv"), "-o", str(out),
        "--chunk-rows", "200", "-q",
    )  # fmt: skip
    first = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = progress_path(out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and first.poll() is None:
        if state.is_file() and json.loads(state.read_text() or "{}").get("rows", 0) >= 400:
            break
        time.sleep(0.02)
    assert first.poll() is None, "finished before it could be interrupted"
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    stopped = json.loads(state.read_text())
    assert 0 < stopped["rows"] < n and not stopped["complete"]
    with out.open("ab") as handle:  # a half-written line past the last commit
        handle.write(b'{"id": "p9')
    second = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "from an earlier run" in second.stdout
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == [f"p{i}" for i in range(n)]
    assert json.loads(state.read_text())["complete"]


def _peak_rss_kib(model: Path, table: Path, out: Path) -> int:
    code = (
        "import resource, sys; from sentimodal.interfaces.cli import app\n"
        "try:\n    app(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    args = ["predict", str(model), "-i", str(table), "-o", str(out), "-q", "--chunk-rows", "2048"]
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_memory_is_flat_from_10k_to_100k_rows(text_model: Path, tmp_path: Path) -> None:
    peaks = {}
    for n in (10_000, 100_000):
        _texts(n).to_csv(tmp_path / f"{n}.csv", index=False)
        peaks[n] = _peak_rss_kib(text_model, tmp_path / f"{n}.csv", tmp_path / f"{n}.jsonl")
        assert len((tmp_path / f"{n}.jsonl").read_text().splitlines()) == n
    # 10x the rows: the peak may not grow by more than a few MB of allocator noise
    assert peaks[100_000] - peaks[10_000] < 24 * 1024, peaks


@pytest.mark.slow
def test_ray_engine_predicts_the_same_rows(text_model: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    posts = _texts(120)
    posts.loc[7, "text"] = ""
    posts.to_csv(tmp_path / "posts.csv", index=False)
    out = tmp_path / "out.jsonl"
    args = ["predict", str(text_model), "-i", str(tmp_path / "posts.csv"), "-o", str(out)]
    try:
        result = runner.invoke(
            app, [*args, "--engine", "ray", "--workers", "1", "--chunk-rows", "50", "-q"]
        )
    finally:
        ray.shutdown()
    assert result.exit_code == 1, result.output  # the one empty text
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    local = SentimentModel.load(text_model).predict_posts(posts, workers=0)
    assert [x["id"] for x in lines] == [p.id for p in local]
    assert [x["label"] for x in lines] == [p.label for p in local]
    assert lines[7]["error"] == "empty text" and lines[7]["scores"] is None


def test_jsonl_lines_that_are_not_objects_are_error_rows(text_model: Path, tmp_path: Path) -> None:
    posts = tmp_path / "posts.jsonl"
    posts.write_text(
        '{"id": "a", "text": "lovely day"}\n[1, 2]\n{broken\n7\n{"id": "e", "text": "awful"}\n'
    )
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["predict", str(text_model), "-i", str(posts), "-o", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == ["a", "1", "2", "3", "e"]
    assert lines[1]["error"] == "JSON line is a list, not an object"
    assert lines[2]["error"].startswith("malformed JSON line")
    assert lines[3]["error"] == "JSON line is a int, not an object"
    assert lines[0]["label"] and lines[4]["label"] and lines[4]["error"] is None
