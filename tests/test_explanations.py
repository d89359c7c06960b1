"""Explanations per post: what each part says, that it is the model's own occlusion, and
that every interface (API, CLI, server, ONNX) gives the same object for every kind of post."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from sentimodal import SentimentModel
from sentimodal.inference.explanations import ExplainSettings, explanation_cost, mask_cells
from sentimodal.inference.heatmap import region_overlay
from sentimodal.interfaces.cli import app
from sentimodal.interfaces.server import ServerSettings
from server_fixtures import ThreadServer, sample_posts

pytestmark = pytest.mark.usefixtures("one_thread")
KEYS = {"label", "score", "modalities", "words", "regions", "method"}


@pytest.fixture(scope="module")
def posts() -> pd.DataFrame:
    return sample_posts(80)


@pytest.fixture(scope="module")
def fusion(
    posts: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> tuple[SentimentModel, Path]:
    root = tmp_path_factory.mktemp("explain")
    model = SentimentModel(
        model="concat", text_encoder="glove_mean", image_encoder="pixels32", feature_workers=0,
        train={"epochs": 3},
    )  # fmt: skip
    model.fit(posts.iloc[:64], work_dir=root / "work", progress=False)
    return model, model.save(root / "model")


def kinds(posts: pd.DataFrame) -> list[dict]:
    held = posts.iloc[64:67].reset_index(drop=True)
    return [
        {"id": "both", "text": held.text[0], "image": held.image[0]},
        {"id": "text", "text": held.text[1]},
        {"id": "image", "image": held.image[2]},
        {"id": "nothing", "text": ""},
    ]


def test_every_kind_of_post_gets_an_explanation_saying_what_it_had(
    fusion: tuple[SentimentModel, Path], posts: pd.DataFrame
) -> None:
    model, _ = fusion
    batch = kinds(posts)
    plain = model.predict_posts(batch, workers=0)
    explained = model.explain_posts(batch, workers=0)
    both, text, image, nothing = (p.to_row() for p in explained)
    for row, before in zip((both, text, image), plain, strict=False):
        assert set(row["explanation"]) == KEYS
        assert row["scores"] == before.scores  # explaining changes no prediction
        assert row["explanation"]["label"] == row["label"]
        shares = row["explanation"]["modalities"]["shares"]
        assert set(shares) == {"text", "image"} and sum(shares.values()) == pytest.approx(1)
    assert both["explanation"]["modalities"]["had"] == ["text", "image"]
    assert set(both["explanation"]["method"]) == {"modalities", "words", "regions", "network"}
    outside = {k: v for k, v in text["explanation"]["modalities"].items() if k != "network"}
    assert outside == {"had": ["text"], "shares": {"text": 1.0, "image": 0.0}, "alone": None}
    # the concatenation's head is linear: its own weights split it, per post
    network = both["explanation"]["modalities"]["network"]
    assert sum(network["weights"].values()) == pytest.approx(1) and network["branches"] == {}
    assert "linear head" in both["explanation"]["method"]["network"]
    # a missing modality is read as the mean post's (zeros): it weighs nothing
    assert text["explanation"]["modalities"]["network"]["weights"] == {"text": 1.0, "image": 0.0}
    assert image["explanation"]["modalities"]["network"]["weights"] == {"text": 0.0, "image": 1.0}
    assert text["explanation"]["regions"] is None and "regions" not in text["explanation"]["method"]
    assert image["explanation"]["words"] is None
    assert image["explanation"]["modalities"]["shares"] == {"text": 0.0, "image": 1.0}
    assert nothing["error"] and nothing["explanation"] is None
    # words in reading order, as written
    assert [w["word"] for w in both["explanation"]["words"]] == batch[0]["text"].split()
    grid = both["explanation"]["regions"]
    assert grid["rows"] == grid["cols"] == 4 and np.array(grid["scores"]).shape == (4, 4)
    assert "explanation" not in plain[0].to_row()  # off by default


def test_scores_are_the_models_own_occlusion(
    fusion: tuple[SentimentModel, Path], posts: pd.DataFrame
) -> None:
    """A word's score is the label's score minus the model's score without it; the shares
    come from the model's scores of each modality alone."""
    model, _ = fusion
    post = kinds(posts)[0]
    (explained,) = model.explain_posts([post], workers=0)
    exp = explained.explanation
    words = post["text"].split()
    label = explained.label
    for i in (0, len(words) - 1):
        rest = " ".join(w for k, w in enumerate(words) if k != i)
        (without,) = model.predict_posts([{"text": rest, "image": post["image"]}], workers=0)
        assert exp["words"][i]["score"] == pytest.approx(
            exp["score"] - without.scores[label], abs=1e-5
        )
    (alone,) = model.predict_posts([{"text": post["text"]}], workers=0)
    assert exp["modalities"]["alone"]["text"] == pytest.approx(alone.scores[label], abs=1e-6)


def test_a_masked_cell_and_the_overlay() -> None:
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((200, 100, 50), (0, 0, 20, 20))
    masked = np.asarray(mask_cells(image, [(0, 0)], 2))
    assert (masked[:10, :20] == [100, 50, 25]).all() and (masked[10:, :20] == [200, 100, 50]).all()
    overlay = np.asarray(region_overlay(image, {"scores": [[1.0, -0.5], [None, 0.0]]}))
    assert overlay.shape == (20, 40, 3)
    assert overlay[0, 0, 0] > overlay[0, 0, 2]  # for the label: red
    assert overlay[0, 39, 2] > 0  # against: blue
    assert (overlay[15, 30] == [0, 0, 0]).all()  # zero: untouched


def test_cost_bound(fusion: tuple[SentimentModel, Path]) -> None:
    model, _ = fusion
    work = model.post_work()
    settings = ExplainSettings(max_words=3, grid=2)
    # words, cells, each modality alone, and one pass for the fusion's own weights
    assert (
        explanation_cost({"text": "a b c d e", "image": "x.jpg"}, work, settings) == 3 + 4 + 2 + 1
    )
    assert explanation_cost({"text": "a b", "image": ""}, work, settings) == 2 + 1


def test_cli_predict_explain(
    fusion: tuple[SentimentModel, Path], posts: pd.DataFrame, tmp_path: Path
) -> None:
    _, directory = fusion
    post = kinds(posts)[0]
    out, png = tmp_path / "one.jsonl", tmp_path / "heat.png"
    args = ["predict", str(directory), "--text", post["text"], "--image", post["image"]]
    result = CliRunner().invoke(
        app, [*args, "--explain", "--explain-png", str(png), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "why" in result.output and "method" in result.output
    row = json.loads(out.read_text())
    # without colour (CliRunner is no terminal) the top words still show, with their scores
    top = max((w for w in row["explanation"]["words"] if w["score"] is not None),
              key=lambda w: abs(w["score"]))  # fmt: skip
    assert f"top words: {top['word']} {top['score']:+.3f}" in result.output
    weights = row["explanation"]["modalities"]["network"]["weights"]
    shown = ", ".join(f"{m} {w:.0%}" for m, w in weights.items())
    assert f"the network's own weights: {shown}" in " ".join(result.output.split())
    assert set(row["explanation"]) == KEYS
    assert Image.open(png).size == Image.open(post["image"]).size
    table = tmp_path / "posts.jsonl"
    table.write_text("".join(json.dumps(p) + "\n" for p in kinds(posts)[:3]))
    for suffix in ("jsonl", "parquet"):
        written = tmp_path / f"explained.{suffix}"
        result = CliRunner().invoke(
            app,
            ["predict", str(directory), "-i", str(table), "-o", str(written), "--explain", "-q"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        if suffix == "parquet":
            frame = pd.read_parquet(written)
            assert [set(json.loads(e)) for e in frame["explanation"]] == [KEYS] * 3
        else:
            rows = [json.loads(line) for line in written.read_text().splitlines()]
            assert [r["explanation"]["modalities"]["had"] for r in rows] == [
                ["text", "image"],
                ["text"],
                ["image"],
            ]


def test_server_explains_on_request_within_its_bound(
    fusion: tuple[SentimentModel, Path], posts: pd.DataFrame
) -> None:
    _, directory = fusion
    post = kinds(posts)[0]
    image = base64.b64encode(Path(post["image"]).read_bytes()).decode()
    settings = ServerSettings(max_explain_passes=40, explain_grid=3)
    with ThreadServer(directory, settings) as server:
        one = {"text": post["text"], "image_base64": image}
        plain = httpx.post(f"{server.base}/v1/predict", json=one).json()
        assert plain.get("explanation") is None
        answer = httpx.post(f"{server.base}/v1/predict", json={**one, "explain": True}).json()
        exp = answer["explanation"]
        assert set(exp) == KEYS and exp["regions"]["rows"] == 3
        assert exp["modalities"]["had"] == ["text", "image"]
        form = httpx.post(
            f"{server.base}/v1/predict",
            data={"text": post["text"], "explain": "true"},
        ).json()
        assert form["explanation"]["modalities"]["had"] == ["text"]
        batch = {"posts": [{"text": post["text"]}, {"image_base64": image}], "explain": True}
        rows = httpx.post(f"{server.base}/v1/predict/batch", json=batch).json()["predictions"]
        assert [r["explanation"]["modalities"]["had"] for r in rows] == [["text"], ["image"]]
        costly = {"posts": [{"text": "word " * 30, "image_base64": image}] * 2, "explain": True}
        refused = httpx.post(f"{server.base}/v1/predict/batch", json=costly)
        assert refused.status_code == 413
        assert refused.json()["error"]["code"] == "explanation_too_costly"


def test_onnx_export_explains_as_torch_does(
    fusion: tuple[SentimentModel, Path], posts: pd.DataFrame, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    from sentimodal.export.onnx import export_onnx
    from sentimodal.inference.explanations import explain_predictions
    from sentimodal.inference.onnx_runtime import OnnxModel
    from sentimodal.inference.posts import post_rows, predict_rows

    model, directory = fusion
    exported = OnnxModel.load(export_onnx(directory, tmp_path / "export"))
    batch = kinds(posts)[:3]
    rows = post_rows(batch)
    theirs = explain_predictions(exported.work, rows, predict_rows(exported.work, rows))
    ours = model.explain_posts(batch, workers=0)
    for a, b in zip(ours, theirs, strict=True):
        ea, eb = a.explanation, b.explanation
        assert ea["modalities"]["had"] == eb["modalities"]["had"]
        if ea["words"]:
            wa = [w["score"] for w in ea["words"]]
            wb = [w["score"] for w in eb["words"]]
            assert np.allclose(wa, wb, atol=1e-4)
        if ea["regions"]:
            assert np.allclose(ea["regions"]["scores"], eb["regions"]["scores"], atol=1e-4)
        # the graph has no weights per modality to read: it says so, the shares stand
        assert ea["modalities"]["network"] is not None and eb["modalities"]["network"] is None
        assert "exported graph" in eb["method"]["network"]


@pytest.fixture(scope="module")
def late(posts: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> SentimentModel:
    model = SentimentModel(
        model="late", text_encoder="glove_mean", image_encoder="pixels32", feature_workers=0,
        train={"epochs": 3}, calibrate=False,
    )  # fmt: skip
    return model.fit(posts.iloc[:64], work_dir=tmp_path_factory.mktemp("late"), progress=False)


def test_late_fusion_explains_with_its_branch_weights_and_scores(
    late: SentimentModel, posts: pd.DataFrame
) -> None:
    both, text, image, _ = late.explain_posts(kinds(posts), workers=0)
    network = both.explanation["modalities"]["network"]
    assert network["weights"] == {"text": 0.5, "image": 0.5}
    # each branch's score is what that branch says alone (the average of the two is the post's)
    (alone,) = late.branch("text").predict_posts([{"text": kinds(posts)[0]["text"]}], workers=0)
    assert network["branches"]["text"] == pytest.approx(alone.scores, abs=1e-5)
    mean = {c: (network["branches"]["text"][c] + network["branches"]["image"][c]) / 2
            for c in late.classes_}  # fmt: skip
    assert mean == pytest.approx(both.scores, abs=1e-5)
    assert "average" in both.explanation["method"]["network"]
    # a post with one modality: all the weight on its branch, only that branch's scores
    assert text.explanation["modalities"]["network"]["weights"] == {"text": 1.0, "image": 0.0}
    assert set(text.explanation["modalities"]["network"]["branches"]) == {"text"}
    assert set(image.explanation["modalities"]["network"]["branches"]) == {"image"}


def test_gated_fusion_explains_with_its_gates_and_a_unimodal_model_says_it_has_none(
    posts: pd.DataFrame, tmp_path: Path
) -> None:
    settings = {"text_encoder": "glove_mean", "image_encoder": "pixels32", "feature_workers": 0}
    gated = SentimentModel(model="gated", train={"epochs": 2}, **settings)
    gated.fit(posts.iloc[:64], work_dir=tmp_path / "g", progress=False)
    (both,) = gated.explain_posts(kinds(posts)[:1], workers=0)
    network = both.explanation["modalities"]["network"]
    stats = gated.gate_stats()
    assert network["gates"] == {m: pytest.approx(stats[m]["mean"], abs=1e-5) for m in stats}
    assert sum(network["weights"].values()) == pytest.approx(1)
    text = SentimentModel(model="text", train={"epochs": 2}, **settings)
    text.fit(posts.iloc[:64], work_dir=tmp_path / "t", progress=False)
    (alone,) = text.explain_posts(kinds(posts)[:1], workers=0)
    assert alone.explanation["modalities"]["network"] is None
    assert "no weights of its own" in alone.explanation["method"]["network"]


def test_faithfulness_compares_top_with_random_removals(
    fusion: tuple[SentimentModel, Path], posts: pd.DataFrame
) -> None:
    from sentimodal.analysis.faithfulness import faithfulness
    from sentimodal.inference.explanations import explain_predictions, picture_of
    from sentimodal.inference.posts import post_rows, predict_rows

    model, _ = fusion
    work = model.post_work()
    held = posts.iloc[64:70]
    pictures = [picture_of(p, work) for p in held["image"]]
    rows = post_rows([{"text": t, "image": p} for t, p in zip(held["text"], pictures, strict=True)])
    explained = explain_predictions(work, rows, predict_rows(work, rows))
    scores = faithfulness(work, rows, explained, dict(enumerate(pictures)), k=2, draws=2)
    long = sum(len(t.split()) > 2 for t in held["text"])
    assert scores["words"]["posts"] == long and scores["regions"]["posts"] == len(held)
    for part in ("words", "regions"):
        s = scores[part]
        assert s["difference"] == pytest.approx(s["fall_top"] - s["fall_random"])
        low, high = s["difference_ci95"]
        assert low <= s["difference"] <= high
