"""Every run model the ONNX exporter takes labels full posts, text-only and image-only posts
as the torch model does (same labels, near-equal scores, the same `modalities`), also in
batches mixing them, on tiny models trained here."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sentimodal import SentimentModel
from sentimodal.export.onnx import export_onnx
from sentimodal.inference.onnx_runtime import OnnxModel
from sentimodal.inference.posts import post_rows, predict_rows
from server_fixtures import sample_posts

pytestmark = pytest.mark.usefixtures("one_thread")

ONE_LAYER = {"num_layers": 1}
#: one per network kind the recipes build and the exporter takes, each with the smallest
#: encoders that give its inputs: token ids read in the graph (MiniLM, one layer), frozen
#: vectors read beside it (GloVe, MiniLM), pixel vectors, pixels for the CNN, an image grid
KINDS = {
    "text": {"model": "text", "text_encoder": "minilm_tokens", "model_options": ONE_LAYER},
    "image": {"model": "image", "image_encoder": "pixels32"},
    "image_mlp": {
        "model": "image_mlp",
        "image_encoder": "pixels32",
        "image_encoder_config": {"flatten": False},
    },
    "concat": {"model": "concat", "text_encoder": "glove_mean", "image_encoder": "pixels32"},
    "gated": {"model": "gated", "image_encoder": "pixels32"},
    "late": {
        "model": "late",
        "image_encoder": "pixels32",
        "image_encoder_config": {"flatten": False},
        "model_options": {"text": ONE_LAYER},
    },
    "late_stacked": {
        "model": "late",
        "text_encoder": "glove_mean",
        "image_encoder": "pixels32",
        "model_options": {"combine": "stacked"},
    },
    "cross": {
        "model": "cross",
        "image_encoder": "efficientnet_lite0",
        "image_encoder_config": {"grid": True, "weights": "none", "resolution": 64},
        "model_options": {"text": ONE_LAYER},
    },
}


@pytest.fixture(scope="module")
def posts() -> pd.DataFrame:
    return sample_posts(72)


@pytest.fixture(scope="module", params=list(KINDS))
def pair(
    request: pytest.FixtureRequest, posts: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, Path]:
    """(kind, model directory, its ONNX export)."""
    kind = request.param
    root = tmp_path_factory.mktemp(kind)
    settings = {**KINDS[kind], "feature_workers": 0, "train": {"epochs": 1, "batch_size": 32}}
    model = SentimentModel(**settings).fit(posts.iloc[:56], work_dir=root / "work", progress=False)
    directory = model.save(root / "model")
    return kind, directory, export_onnx(directory, root / "export")


def half_posts(posts: pd.DataFrame) -> list[dict]:
    """Full, image-only and text-only posts, interleaved (so one batch mixes all three)."""
    held = posts.iloc[56:].to_dict("records")
    out: list[dict] = []
    for k, post in enumerate(held):
        out.append({"id": f"both{k}", "text": post["text"], "image": post["image"]})
        out.append({"id": f"image{k}", "image": post["image"]})
        out.append({"id": f"text{k}", "text": post["text"]})
    return out


def test_onnx_labels_half_posts_as_torch_does(
    pair: tuple[str, Path, Path], posts: pd.DataFrame
) -> None:
    kind, directory, exported = pair
    batch = half_posts(posts)
    expected = SentimentModel.load(directory).predict_posts(batch, workers=0)
    onnx_model = OnnxModel.load(exported)
    # mixed batches, then batches of one kind of post only (no text, or no image, at all)
    mixed = predict_rows(onnx_model.work, post_rows(batch), batch_size=16)
    alone = {
        p.id: p
        for start in range(3)
        for p in predict_rows(onnx_model.work, post_rows(batch[start::3]), batch_size=16)
    }
    for got in (mixed, [alone[p["id"]] for p in batch]):
        assert [p.error for p in got] == [p.error for p in expected]
        assert [p.modalities for p in got] == [p.modalities for p in expected]
        assert [p.label for p in got] == [p.label for p in expected]
        for mine, theirs in zip(got, expected, strict=True):
            if theirs.scores is not None:
                assert mine.scores == pytest.approx(theirs.scores, abs=1e-4), mine.id
    fusion = kind not in ("text", "image", "image_mlp")
    said = {p.modalities for p in expected if p.error is None}
    assert said == ({"text+image", "text", "image"} if fusion else {kind.split("_")[0]})
    if not fusion:  # a unimodal model refuses the posts without its modality, on both
        assert {p.error for p in expected} == {
            None,
            "no image" if "image" in kind else "empty text",
        }


@pytest.mark.parametrize("pair", ["late"], indirect=True)
def test_predict_and_serve_label_half_posts_on_onnx(
    pair: tuple[str, Path, Path], posts: pd.DataFrame
) -> None:
    """The CLI's one-post predict and the server: an image alone, a text alone."""
    import httpx

    from hardening import invoke
    from sentimodal.interfaces.server import ServerSettings
    from server_fixtures import ThreadServer

    _, _, exported = pair
    image = posts.iloc[60]["image"]
    for args, read in ((["--image", image], "image"), (["--text", "a lovely day"], "text")):
        result = invoke("predict", exported, "--runtime", "onnx", *args)
        assert result.exit_code == 0, result.output
        rows = [line.strip() for line in result.output.splitlines() if line.startswith("│")]
        assert len(rows) == 1 and rows[0].endswith(f" {read} │"), result.output  # "read" column
    with ThreadServer(exported, ServerSettings(), runtime="onnx") as running:
        files = {"image": ("p.jpg", Path(image).read_bytes(), "image/jpeg")}
        answer = httpx.post(f"{running.base}/v1/predict", files=files)
        assert answer.status_code == 200, answer.text
        assert answer.json()["modalities"] == "image"
        answer = httpx.post(f"{running.base}/v1/predict", json={"text": "a lovely day"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["modalities"] == "text"
