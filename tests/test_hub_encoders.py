"""Bring-your-own encoders: ``hf:`` text transformers, ``timm:`` image models, devices.

Every model here is built by the test itself (``hub_models``), saved to a folder and read back
with no network (``HF_HUB_OFFLINE=1``), through the API and the CLI: features, train, save,
load, predict, export, serve.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import hub_models
from sentimodal.devices import resolve_device
from sentimodal.errors import UserInputError
from sentimodal.features.image_encoders import get_image_encoder, list_image_encoders
from sentimodal.features.text_encoders import get_text_encoder, list_text_encoders
from sentimodal.inference.onnx_runtime import OnnxModel
from sentimodal.inference.posts import post_rows, predict_rows
from sentimodal.interfaces.cli import app
from sentimodal.interfaces.server import ServerSettings
from sentimodal.models.registry import get_model
from sentimodal.training.estimator import SentimentModel
from server_fixtures import ThreadServer, sample_posts, score_gap

runner = CliRunner()
GOLDEN = Path(__file__).parent / "golden" / "shipped_transformers_bafdf62.npz"
TEXTS = ["I love this so much :)", "worst day ever...", "", "@bob http://x.co great!!"]
TIMM_NAME = "resnet10t"
NO_GPU = "no CUDA GPU on this machine"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, one_thread) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hub")
    return {
        "bert": hub_models.tiny_bert(root / "bert"),
        "roberta": hub_models.tiny_roberta(root / "roberta"),
        "timm": hub_models.tiny_timm(root / f"{TIMM_NAME}.safetensors", TIMM_NAME),
        "clip": hub_models.tiny_clip(root / "clip"),
    }


@pytest.fixture(scope="module")
def posts():
    return sample_posts(24)


@pytest.fixture(scope="module")
def table_data(posts, tmp_path_factory: pytest.TempPathFactory):
    return _table_dataset(posts, tmp_path_factory.mktemp("table"))


def test_registries_list_the_families() -> None:
    assert "hf:<source>" in list_text_encoders()
    assert "timm:<source>" in list_image_encoders()
    with pytest.raises(UserInputError, match="write it as hf:<source>"):
        get_text_encoder("hf")


def test_hf_vectors_and_ids_name_their_weights(models: dict[str, Path]) -> None:
    name = f"hf:{models['bert']}"
    vectors = get_text_encoder(name)
    out = vectors.encode(TEXTS)
    assert out.shape == (4, 32) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    cls = get_text_encoder(name, pooling="cls", unit=False).encode(TEXTS)
    assert not np.allclose(cls, out)
    assert vectors.identity.startswith("bert:file:") and vectors.name == name
    again = get_text_encoder(vectors.name, **vectors.config)
    assert (again.identity, again.config) == (vectors.identity, vectors.config)
    ids = get_text_encoder(f"hf:{models['roberta']}", output="ids", max_len=8).encode(TEXTS)
    # RoBERTa pads with 1: ids are stored plus one, 0 is padding
    assert ids.shape == (4, 8) and (ids[2, 2:] == 0).all() and (ids[:, 0] != 0).all()


def test_weights_change_the_identity(models: dict[str, Path], tmp_path: Path) -> None:
    other = hub_models.tiny_bert(tmp_path / "bert", seed=1)
    assert (
        get_text_encoder(f"hf:{other}").identity
        != get_text_encoder(f"hf:{models['bert']}").identity
    )


def test_a_hub_id_not_cached_offline_is_one_line_exit_2(table_data, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(UserInputError, match=r"hf:nobody/nothing is not in the Hugging Face"):
        get_text_encoder("hf:nobody/nothing")
    with pytest.raises(UserInputError, match="timm:resnet18 .*--image-weights FILE"):
        get_image_encoder("timm:resnet18")
    data = table_data.root
    flags = ["--model", "text", "--text-encoder", "hf:nobody/nothing"]
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "m"), *flags])
    assert result.exit_code == 2 and "hf:nobody/nothing is not in the" in result.output


@pytest.mark.slow
def test_the_offline_error_in_a_fresh_process(posts, tmp_path: Path, monkeypatch) -> None:
    """As a user runs it: nothing else has imported the hub library's modules yet."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    data = _table_dataset(posts, tmp_path).root
    script = (
        "import sys; from sentimodal.interfaces.cli import app; "
        "sys.argv = ['sentimodal', 'train', sys.argv[1], '--out', sys.argv[2], "
        "'--text-encoder', 'hf:nobody/nothing', '--model', 'text']; app()"
    )
    done = subprocess.run([sys.executable, "-c", script, str(data), str(tmp_path / "m")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "hf:nobody/nothing is not in the Hugging Face cache" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


#: Scores are bit-identical on the CPU that saved the golden file; another CPU's kernels round
#: the last place differently (seen: an AMD EPYC against the machine that saved it)
SAME_MATH = {"rtol": 0, "atol": 1e-6}


def test_shipped_transformers_match_main(one_thread) -> None:
    """The unified encoder and network give what minilm_tokens / text_transformer and
    mpnet_tokens / text_mpnet gave before (saved at commit bafdf62): the same token ids and
    initial head exactly, the same scores up to the CPU's rounding."""
    golden = np.load(GOLDEN)
    for name in ("minilm_tokens", "mpnet_tokens"):
        assert np.array_equal(get_text_encoder(name).encode(TEXTS), golden[name])
    model = get_model("text_transformer", n_classes=3, seed=0, num_layers=2)
    model.load_pretrained()
    with torch.no_grad():
        scores = model.eval().scores({"text": torch.as_tensor(golden["minilm_tokens"])})
    np.testing.assert_allclose(scores.numpy(), golden["minilm_scores"], **SAME_MATH)
    assert np.array_equal(model.head.linear.weight.detach().numpy(), golden["minilm_head"])


def test_shipped_mpnet_matches_main(one_thread) -> None:
    golden = np.load(GOLDEN)
    model = get_model("text_mpnet", n_classes=3, seed=0, frozen_layers=11)
    model.load_pretrained()
    with torch.no_grad():
        scores = model.eval().scores({"text": torch.as_tensor(golden["mpnet_tokens"])})
    np.testing.assert_allclose(scores.numpy(), golden["mpnet_scores"], **SAME_MATH)


def _table_dataset(posts, tmp_path: Path):
    from sentimodal.preparation.pipeline import prepare

    posts.to_csv(tmp_path / "posts.csv", index=False)
    return prepare("table", tmp_path / "posts.csv", tmp_path / "data", text_columns=["text"],
                   image_column="image", label_column="label", progress=False)  # fmt: skip


def _fit(posts, tmp_path: Path, **settings) -> SentimentModel:
    model = SentimentModel(**settings, feature_workers=0, train={"epochs": 1, "batch_size": 8})
    return model.fit(posts, work_dir=tmp_path / "work", progress=False)


def test_hf_text_model_fine_tunes_saves_loads_exports(models, posts, tmp_path) -> None:
    model = _fit(posts, tmp_path, model="text", text_encoder=f"hf:{models['roberta']}")
    net = model.network_.config
    assert net.kind == "text_transformer" and net.id_shift == 1
    assert net.backbone == f"hf:{models['roberta']}" and model.run_.fine_tunes
    saved = model.save(tmp_path / "model")
    back = SentimentModel.load(saved, device="cpu")
    held = posts[["id", "text"]].to_dict("records")
    ours = model.predict_posts(held, workers=0)
    assert score_gap(ours, back.predict_posts(held, workers=0)) == 0.0
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", str(saved), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "tokenizer" / "tokenizer.json").is_file()
    onnx = predict_rows(OnnxModel.load(out).work, post_rows(held))
    assert score_gap(ours, onnx) <= 1e-4


def test_hf_frozen_vectors_feed_the_frozen_models(models, posts, tmp_path) -> None:
    model = _fit(posts, tmp_path, model="text", text_encoder=f"hf:{models['bert']}",
                 text_encoder_config={"output": "vectors"})  # fmt: skip
    assert model.network_.config.kind == "mlp" and not model.run_.fine_tunes


def test_timm_features_train_export_through_the_cli(models, posts, table_data, tmp_path) -> None:
    data = table_data
    weights = str(models["timm"])
    image = f"timm:{TIMM_NAME}"
    result = runner.invoke(app, ["features", str(data.root), "--image", image, "--image-weights",
                                 weights, "--text", "none", "--workers", "0", "-q"])  # fmt: skip
    assert result.exit_code == 0, result.output
    out = tmp_path / "model"
    result = runner.invoke(app, ["train", str(data.root), "--out", str(out), "--model", "image",
                                 "--image-encoder", image, "--image-weights", weights,
                                 "--epochs", "1", "--device", "cpu", "-q"])  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "config.json").read_text())["encoders"]["image"]
    assert saved["name"] == image and saved["identity"].startswith("file:")
    held = posts[["id", "text", "image"]].to_dict("records")
    ours = SentimentModel.load(out).predict_posts(held, workers=0)
    result = runner.invoke(app, ["export", str(out), "--out", str(tmp_path / "export")])
    assert result.exit_code == 0, result.output
    onnx = predict_rows(OnnxModel.load(tmp_path / "export").work, post_rows(held))
    assert score_gap(ours, onnx) <= 1e-4


def test_cross_reads_a_timm_grid_with_an_hf_transformer(models, posts, tmp_path) -> None:
    grid = get_image_encoder(f"timm:{TIMM_NAME}", weights="none", grid=True)
    assert len(grid.shape) == 2
    model = _fit(posts, tmp_path, model="cross", text_encoder=f"hf:{models['bert']}",
                 image_encoder=f"timm:{TIMM_NAME}",
                 image_encoder_config={"weights": str(models["timm"]), "grid": True},
                 model_options={"text": {"attention_heads": 4}})  # fmt: skip
    assert model.network_.config.text.kind == "text_cross"
    saved = model.save(tmp_path / "model")
    with ThreadServer(saved, ServerSettings()) as server:
        answer = httpx.post(f"{server.base}/v1/predict", json={"text": "i love this"}, timeout=30)
    assert answer.status_code == 200 and set(answer.json()["scores"]) == set(model.classes_)


def test_clip_gives_both_modalities_in_one_space(models) -> None:
    from PIL import Image

    name = f"clip:{models['clip']}"
    text, image = get_text_encoder(name), get_image_encoder(name)
    assert text.shape == image.shape == (16,)
    assert text.identity.endswith(":text") and image.identity.endswith(":image")
    pixels = image.transform(Image.new("RGB", (50, 40), (200, 0, 0)))
    assert tuple(pixels.shape) == (3, 32, 32)
    vectors = np.concatenate([text.encode(TEXTS[:1]), image.encode(pixels[None])])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_clip_model_takes_open_labels_for_every_kind_of_post(models, posts, tmp_path) -> None:
    name = f"clip:{models['clip']}"
    model = _fit(posts, tmp_path, model="gated", text_encoder=name, image_encoder=name)
    saved = model.save(tmp_path / "model")
    back = SentimentModel.load(saved).set_labels(["happy", "sad", "neutral"])
    assert back.classes_ == ["happy", "sad", "neutral"]
    image = posts["image"].iloc[0]
    rows = [{"text": "i love this", "image": image}, {"text": "bad day"}, {"image": image}]
    predictions = back.predict_posts(rows, workers=0)
    assert all(p.error is None for p in predictions), predictions
    assert all(set(p.scores) == {"happy", "sad", "neutral"} for p in predictions)
    assert all(abs(sum(p.scores.values()) - 1) < 1e-5 for p in predictions)
    other = SentimentModel.load(saved).set_labels(["happy", "sad", "neutral"], template="{label}!")
    assert other.predict_posts(rows[:1], workers=0)[0].scores != predictions[0].scores
    with pytest.raises(UserInputError, match="no {label}"):
        SentimentModel.load(saved).set_labels(["a", "b"], template="a photo")
    result = runner.invoke(app, ["predict", str(saved), "--text", "so happy", "--labels",
                                 "happy,sad", "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0 and "happy" in result.output, result.output
    with ThreadServer(saved, ServerSettings()) as server:
        answer = httpx.post(f"{server.base}/v1/predict", timeout=30,
                            json={"text": "i love this", "labels": ["happy", "sad"]})  # fmt: skip
        info = httpx.get(f"{server.base}/v1/model", timeout=30).json()
    assert answer.status_code == 200, answer.text
    assert set(answer.json()["scores"]) == {"happy", "sad"} and info["open_labels"]


def test_a_softmax_model_over_other_encoders_refuses_open_labels(models, posts, tmp_path):
    model = _fit(posts, tmp_path, model="text", text_encoder=f"hf:{models['bert']}")
    with pytest.raises(UserInputError, match="clip: encoders"):
        model.set_labels(["a", "b"])


def test_devices_refuse_what_the_machine_lacks(tmp_path: Path) -> None:
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(UserInputError, match="no cuda device"):
            resolve_device("cuda")
        result = runner.invoke(app, ["predict", str(tmp_path), "--text", "x", "--device", "cuda"])
        assert result.exit_code == 2
    with pytest.raises(UserInputError, match="unknown device"):
        resolve_device("tpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)
def test_a_gpu_trained_model_loads_and_predicts_on_the_cpu(models, posts, tmp_path) -> None:
    model = _fit(posts, tmp_path, model="text", text_encoder=f"hf:{models['bert']}",
                 device="cuda", train={"epochs": 1, "mixed_precision": True})  # fmt: skip
    assert next(model.network_.parameters()).device.type == "cuda"
    saved = model.save(tmp_path / "model")
    held = posts[["id", "text"]].to_dict("records")
    gpu = model.predict_posts(held, workers=0)
    cpu = SentimentModel.load(saved, device="cpu").predict_posts(held, workers=0)
    assert score_gap(gpu, cpu) <= 1e-2


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)
def test_gpu_features_match_cpu_features(models) -> None:
    cpu = get_text_encoder(f"hf:{models['bert']}").encode(TEXTS)
    gpu = get_text_encoder(f"hf:{models['bert']}").to("cuda").encode(TEXTS)
    assert np.allclose(cpu, gpu, atol=1e-4)


def test_environment_is_offline() -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
