"""Temperature scaling fitted on val, and the calibration figures of ``evaluate``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sentimodal import SentimentModel
from sentimodal.evaluation.calibration import (
    expected_calibration_error,
    log_loss,
    reliability_bins,
)
from sentimodal.inference.posts import post_rows, predict_rows
from sentimodal.models.forward import predict_scores
from sentimodal.training.calibration import (
    CALIBRATION_FILE,
    Calibration,
    calibrate,
    fit_temperature,
    temper,
)
from sentimodal.training.inputs import as_dataset
from server_fixtures import sample_posts

pytestmark = pytest.mark.usefixtures("one_thread")


def _overconfident(n: int = 4000, true_t: float = 2.5, seed: int = 0):
    """Labels drawn from softmax(z), scores softmax(z * true_t): too sure by ``true_t``."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, size=(n, 3))
    honest = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    truth = np.array([rng.choice(3, p=p) for p in honest])
    sure = np.exp(logits * true_t) / np.exp(logits * true_t).sum(1, keepdims=True)
    return sure, truth


def test_fitted_temperature_undoes_overconfidence() -> None:
    scores, truth = _overconfident()
    temperature = fit_temperature(scores, truth)
    assert temperature == pytest.approx(2.5, rel=0.1)
    after = temper(scores, temperature)
    assert (after.argmax(1) == scores.argmax(1)).all()  # no prediction changes
    assert log_loss(after, truth) < log_loss(scores, truth)
    assert expected_calibration_error(after, truth) < expected_calibration_error(scores, truth) / 2


def test_calibration_is_kept_only_when_it_lowers_log_loss() -> None:
    scores, truth = _overconfident()
    assert calibrate(scores, truth, use=True).applied
    assert not calibrate(scores, truth, use=False).applied  # the setting turns it off
    honest, truth = _overconfident(true_t=1.0)
    record = calibrate(honest, truth, use=True)
    assert record.temperature == pytest.approx(1.0, rel=0.1)
    assert record.val["after"]["log_loss"] <= record.val["before"]["log_loss"]


def test_reliability_bins_and_ece_of_known_scores() -> None:
    scores = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    truth = np.array([0, 1, 0, 1])
    bins = reliability_bins(scores, truth, bins=5)
    assert [b["n"] for b in bins] == [0, 0, 2, 0, 2]
    assert bins[4]["accuracy"] == 0.5 and bins[4]["confidence"] == pytest.approx(0.9)
    assert expected_calibration_error(scores, truth, bins=5) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)


def test_calibration_record_is_checked() -> None:
    with pytest.raises(Exception, match="temperature must be a positive"):
        Calibration.from_dict({"temperature": -1, "applied": True})
    with pytest.raises(Exception, match="not a calibration record"):
        Calibration.from_dict({"applied": True})


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[SentimentModel, Path]:
    root = tmp_path_factory.mktemp("calibrated")
    model = SentimentModel(
        model="concat", text_encoder="vader", image_encoder="pixels32", feature_workers=0,
        train={"epochs": 3},
    )  # fmt: skip
    model.fit(sample_posts(80), work_dir=root / "work", progress=False)
    return model, root


def test_training_fits_a_temperature_stored_and_applied(
    fitted: tuple[SentimentModel, Path],
) -> None:
    model, root = fitted
    record = model.calibration_
    assert record is not None and record.fitted_on == "val" and record.n > 0
    assert {"log_loss", "ece", "bins"} <= set(record.val["before"])
    # a temperature far from 1 so that applying it shows
    model.calibration_ = Calibration(4.0, True, "val", record.n, record.val)
    directory = model.save(root / "model")
    saved = json.loads((directory / CALIBRATION_FILE).read_text())
    assert saved["temperature"] == 4.0 and saved["applied"] is True
    loaded = SentimentModel.load(directory)
    posts = sample_posts(80).iloc[60:]
    inputs = loaded._inputs(as_dataset(posts), None, False)
    untempered = predict_scores(model.network_, inputs.data)  # before the temperature
    served = loaded.predict_proba(posts)
    assert np.allclose(served, temper(untempered, 4.0), atol=1e-5)
    assert not np.allclose(served, untempered, atol=1e-3)
    rows = loaded.predict_posts(posts.to_dict("records"), workers=0)
    assert np.allclose([list(r.scores.values()) for r in rows], served, atol=1e-5)


def test_evaluate_reports_log_loss_and_ece(fitted: tuple[SentimentModel, Path]) -> None:
    model, _ = fitted
    metrics = model.evaluate(sample_posts(80))
    assert 0 <= metrics["ece"] <= 1 and metrics["log_loss"] > 0


def test_onnx_export_applies_the_temperature(fitted: tuple[SentimentModel, Path]) -> None:
    pytest.importorskip("onnxruntime")
    from sentimodal.export.onnx import export_onnx
    from sentimodal.inference.onnx_runtime import OnnxModel

    model, root = fitted
    record = model.calibration_
    model.calibration_ = Calibration(3.0, True, "val", record.n, record.val)
    directory = model.save(root / "model-onnx")
    exported = OnnxModel.load(export_onnx(directory, root / "export"))
    assert exported.info()["calibration"]["temperature"] == 3.0
    posts = sample_posts(80).iloc[60:].to_dict("records")
    torch_rows = SentimentModel.load(directory).predict_posts(posts, workers=0)
    onnx_rows = predict_rows(exported.work, post_rows(posts))
    for a, b in zip(torch_rows, onnx_rows, strict=True):
        assert np.allclose(list(a.scores.values()), list(b.scores.values()), atol=1e-4)
