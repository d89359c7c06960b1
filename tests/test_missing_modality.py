"""Real posts often lack one side: fusions fall back to the modality a post has, and every
prediction says which modalities it read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sentimodal.models.registry import get_model
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path
from sentimodal.training.estimator import SentimentModel

CHEAP = {
    "text_encoder": "glove_mean",
    "image_encoder": "pixels32",
    "feature_workers": 0,
    "train": {"epochs": 5, "patience": None, "batch_size": 32},
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    return prepare("mvsa", sample_path(), tmp_path_factory.mktemp("mm") / "d", progress=False)


@pytest.fixture(scope="module")
def posts(dataset: PreparedDataset) -> list[dict[str, str]]:
    test = dataset.split("test").head(12)
    return [
        {"id": str(i), "text": str(t), "image": str(p)}
        for i, t, p in zip(test["id"], test["text"], test["image"], strict=True)
    ]


def _scores(predictions) -> np.ndarray:
    return np.array([[p.scores[c] for c in sorted(p.scores)] for p in predictions])


def test_late_fusion_falls_back_to_the_branch_it_has(dataset, posts) -> None:
    model = SentimentModel(model="late", **CHEAP).fit(dataset, progress=False)
    both = model.predict_posts(posts)
    assert {p.modalities for p in both} == {"text+image"}
    texts = model.predict_posts([{**p, "image": None} for p in posts])
    images = model.predict_posts([{**p, "text": ""} for p in posts])
    assert {p.modalities for p in texts} == {"text"} and {p.modalities for p in images} == {"image"}
    # with one side missing, the fusion is exactly that side's own model
    alone_text = model.branch("text").predict_posts([{**p, "image": None} for p in posts])
    alone_image = model.branch("image").predict_posts([{**p, "text": ""} for p in posts])
    # (through the fusion's temperature, fitted on val)
    calibrated = model.calibration_.apply
    np.testing.assert_allclose(_scores(texts), calibrated(_scores(alone_text)), atol=1e-5)
    np.testing.assert_allclose(_scores(images), calibrated(_scores(alone_image)), atol=1e-5)
    # and with both, the mean of the two
    np.testing.assert_allclose(
        _scores(both), calibrated((_scores(alone_text) + _scores(alone_image)) / 2), atol=1e-5
    )
    nothing = model.predict_posts([{"id": "x", "text": " ", "image": None}])[0]
    assert nothing.label is None and nothing.error == "empty text and no image"
    assert set(nothing.to_dict()) == {"id", "label", "scores", "modalities", "error", "warning"}


def test_unreadable_image_falls_back_with_a_warning(dataset, posts, tmp_path: Path) -> None:
    model = SentimentModel(model="gated", **CHEAP).fit(dataset, progress=False)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    post = model.predict_posts([{"id": "b", "text": posts[0]["text"], "image": str(broken)}])[0]
    assert post.error is None and post.modalities == "text"
    assert post.warning.startswith("image not used:")
    alone = model.predict_posts([{"id": "b", "image": str(broken)}])[0]
    assert alone.label is None and alone.error is not None


def test_unimodal_models_refuse_a_post_without_their_modality(dataset, posts) -> None:
    model = SentimentModel(model="text", **CHEAP).fit(dataset, progress=False)
    predicted = model.predict_posts([{"id": "a", "image": posts[0]["image"]}])[0]
    assert predicted.error == "empty text" and predicted.scores is None


def test_modality_dropout_learns_a_missing_input(dataset, posts, tmp_path: Path) -> None:
    run = {**CHEAP, "model_options": {"modality_dropout": 0.3}}
    model = SentimentModel(model="concat", **run).fit(dataset, progress=False)
    learned = model.network_.missing.learned
    assert set(learned) == {"text", "image"}
    assert all(float(v.detach().abs().sum()) > 0 for v in learned.values())  # trained, not zeros
    loaded = SentimentModel.load(model.save(tmp_path / "m"))
    texts = [{**p, "image": None} for p in posts]
    np.testing.assert_allclose(
        _scores(model.predict_posts(texts)), _scores(loaded.predict_posts(texts)), atol=1e-6
    )


def test_modality_dropout_hides_at_most_one_modality_per_post() -> None:
    net = get_model("concat", text_dim=3, image_dim=2, dropout=0.0, modality_dropout=0.45, seed=0)
    with torch.no_grad():
        net.missing.learned["text"].fill_(100.0)
        net.missing.learned["image"].fill_(-100.0)
    captured = {}
    net.body.register_forward_hook(lambda _m, args, _o: captured.update(x=args[0]))
    net.train()
    net({"text": torch.zeros(4000, 3), "image": torch.zeros(4000, 2)})
    x = captured["x"]
    text_hidden, image_hidden = (x[:, 0] == 100).float(), (x[:, 3] == -100).float()
    assert (text_hidden * image_hidden).sum() == 0
    assert 0.40 < float(text_hidden.mean()) < 0.50 and 0.40 < float(image_hidden.mean()) < 0.50
    net.eval()
    net({"text": torch.zeros(10, 3), "image": torch.zeros(10, 2)})
    assert (captured["x"] == 0).all()  # nothing hidden at prediction time
