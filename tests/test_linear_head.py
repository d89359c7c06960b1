"""The image-only default: a linear softmax classifier solved to convergence, its L2 strength
chosen by cross-validation. It is scikit-learn's logistic regression as a model kind, so it
must agree with it, train/save/load/predict like every model, and not fall below the
logistic-regression baseline on real images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from sentimodal.analysis.baselines import BaselineConfig, run_baseline
from sentimodal.analysis.experiment.protocol import fold_dataset, fold_of
from sentimodal.analysis.model_report import modality_analysis, training_summary
from sentimodal.models.logistic import _choose, fit_linear, fit_softmax_regression, solve
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path
from sentimodal.training.estimator import SentimentModel

PIXELS = {"image_encoder": "pixels32", "feature_workers": 0}


@pytest.fixture(scope="module")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    out = tmp_path_factory.mktemp("sample") / "dataset"
    return prepare("mvsa", sample_path(), out, progress=False)


def _blobs(n: int = 240, dim: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = rng.normal(size=(3, dim))
    return centres[y] + rng.normal(scale=2.0, size=(n, dim)), y


def test_the_solver_reaches_scikit_learns_logistic_regression() -> None:
    x, y = _blobs()
    for c in (0.01, 1.0):
        reference = LogisticRegression(C=c, max_iter=5000, tol=1e-10).fit(x, y)
        weight, bias = solve(torch.tensor(x), torch.tensor(y), 3, c)
        np.testing.assert_allclose(weight.numpy(), reference.coef_, atol=2e-4)
        np.testing.assert_allclose(bias.numpy(), reference.intercept_, atol=2e-4)


def test_two_classes_are_scikit_learns_binary_logistic_regression_at_the_same_c() -> None:
    """For two classes scikit-learn fits one weight vector for the log-odds; a softmax with
    both rows penalised would equal it only at 2C (half the regularisation)."""
    x, y = _blobs(n=300)
    y = (y == 1).astype(int)  # 1 against the rest: unbalanced, as MVSA's image labels are
    sample_weight = np.random.default_rng(2).uniform(0.5, 2.0, len(y))
    for c in (0.001, 0.1):
        reference = LogisticRegression(C=c, max_iter=5000, tol=1e-10)
        reference.fit(x, y, sample_weight=sample_weight)
        weight, bias = solve(
            torch.tensor(x), torch.tensor(y), 2, c, sample_weight=torch.tensor(sample_weight)
        )
        assert weight.shape == (2, x.shape[1])  # still one row per class for the callers
        np.testing.assert_allclose((weight[1] - weight[0]).numpy(), reference.coef_[0], atol=2e-4)
        np.testing.assert_allclose(float(bias[1] - bias[0]), reference.intercept_[0], atol=2e-4)
        probabilities = torch.softmax(torch.tensor(x) @ weight.T + bias, dim=1).numpy()
        np.testing.assert_allclose(probabilities, reference.predict_proba(x), atol=2e-4)
        # warm-started from another C's two rows, it reaches the same answer
        warm, _ = solve(torch.tensor(x), torch.tensor(y), 2, c, start=(weight * 3, bias))
        cold, _ = solve(torch.tensor(x), torch.tensor(y), 2, c)
        np.testing.assert_allclose(warm.numpy(), cold.numpy(), atol=2e-4)
    # what C meant before (scikit-learn's model at 2C) is a measurably different model
    weight, _ = solve(torch.tensor(x), torch.tensor(y), 2, 0.001)
    twice = LogisticRegression(C=0.002, max_iter=5000, tol=1e-10).fit(x, y)
    assert np.abs((weight[1] - weight[0]).numpy() - twice.coef_[0]).max() > 20 * 2e-4


def test_a_class_absent_from_the_labels_is_never_predicted() -> None:
    """The stacked late fusion's combination is fitted on val, which may lack a class."""
    x, y = _blobs()
    y = np.where(y == 1, 2, y)  # classes 0 and 2 of 3
    weight, bias = fit_softmax_regression(x, y, 3)
    reference = LogisticRegression(max_iter=5000, tol=1e-10).fit(x, y)
    predicted = (torch.tensor(x) @ weight.T + bias).argmax(dim=1).numpy()
    assert set(predicted) <= {0, 2}
    assert (predicted == reference.predict(x)).mean() > 0.97
    assert bias[1] < -1e3 and not weight[1].any()
    assert fit_softmax_regression(x, np.zeros(len(x), dtype=int), 3) is None


def test_cross_validation_picks_a_strength_from_the_grid() -> None:
    x, y = _blobs()
    noisy = np.hstack([x, np.random.default_rng(1).normal(size=(len(x), 200))])
    fitted = fit_linear(noisy, y, 3, [1e-4, 1e-2, 1e2], folds=4)
    assert set(fitted.cv_loss) == {1e-4, 1e-2, 1e2}
    # 200 noise columns on 240 examples: almost no penalty overfits, too much learns nothing
    assert fitted.c == 1e-2
    assert fitted.cv_accuracy[1e-2] > max(fitted.cv_accuracy[1e-4], fitted.cv_accuracy[1e2])
    # one strength: no search
    assert fit_linear(x, y, 3, [0.5]).cv_loss == {}


def test_the_one_standard_error_rule_takes_the_strongest_penalty_within_reach() -> None:
    c_values = [0.001, 0.01, 0.1]
    # held-out accuracy per inner fold (rows) and C (columns); costs are their negatives
    accuracy = np.array([[0.73, 0.74, 0.72], [0.75, 0.76, 0.74], [0.725, 0.72, 0.73]])
    assert _choose(c_values, -accuracy, one_se=False) == 0.01  # best mean 0.740
    # C=0.001's mean 0.735 is within one standard error (0.0115) of the best: the rule takes it
    assert _choose(c_values, -accuracy, one_se=True) == 0.001
    accuracy[:, 0] -= 0.02  # now it is not
    assert _choose(c_values, -accuracy, one_se=True) == 0.01


def test_the_image_default_trains_saves_loads_and_predicts_posts(
    sample_dataset: PreparedDataset, tmp_path: Path
) -> None:
    model = SentimentModel(model="image", **PIXELS).fit(sample_dataset, progress=False)
    assert model.network_config_.kind == "linear"
    assert model.history_[0]["c"] in model.network_config_.c_values
    assert f"logistic regression with C={model.history_[0]['c']:g}" in training_summary(
        model, sample_dataset
    )
    model.save(tmp_path / "model")
    assert not list((tmp_path / "model").glob("*.p*kl*"))
    loaded = SentimentModel.load(tmp_path / "model")
    np.testing.assert_allclose(
        loaded.predict_proba(sample_dataset, "test"),
        model.predict_proba(sample_dataset, "test"),
        atol=1e-6,
    )
    posts = sample_dataset.split("test").head(5)
    predictions = loaded.predict_posts(posts[["id", "image"]])
    expected = model.predict_frame(sample_dataset, "test").set_index("id").loc[posts["id"]]
    assert [p.label for p in predictions] == expected["label"].tolist()
    assert all(p.modalities == "image" for p in predictions)
    # the previous default stays one recipe away, and the report's modality section reads
    # the linear image model like any other
    mlp = SentimentModel(model="image_mlp", train={"epochs": 1}, **PIXELS)
    assert mlp.fit(sample_dataset, progress=False).network_config_.kind == "mlp"
    text = SentimentModel(model="text", text_encoder="glove_mean", train={"epochs": 3})
    text.fit(sample_dataset, progress=False)
    analysis = modality_analysis(text, model, text, sample_dataset, "test")
    assert analysis.summary["posts"] == len(sample_dataset.split("test"))


def test_the_image_default_is_not_below_logistic_regression_on_emotion6(
    shared_data: Path, tmp_path: Path
) -> None:
    """Joy against sadness, 462 real images, 32x32 pixels (cheap features): over 3 folds the
    default's mean accuracy is at least the logistic-regression baseline's (C chosen on
    the validation tenth). Both are deterministic: convex problems, seeded folds."""
    root = shared_data / "emotion6" / "images"
    rows = [
        {"image": str(path), "label": folder}
        for folder in ("joy", "sadness")
        for path in sorted((root / folder).glob("*.jpg"))
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "e6.csv", index=False)
    dataset = prepare(
        "table",
        tmp_path / "e6.csv",
        tmp_path / "data",
        image_column="image",
        label_column="label",
        split=None,
        progress=False,
    )
    ids = dataset.examples["id"].astype(str).tolist()
    folds = fold_of(ids, dataset.examples["label"].astype(str).tolist(), 3, 0)
    ours, theirs = [], []
    for k in range(3):
        data = fold_dataset(dataset, folds, k, 0.1, 0)
        logreg = BaselineConfig(
            name="logreg",
            image_encoder="pixels32",
            text_encoder=None,
            c_values=[0.001, 0.01, 0.1, 1.0],
        )
        theirs.append(run_baseline(data, logreg)["test"]["accuracy"])
        model = SentimentModel(model="image", **PIXELS).fit(data, progress=False)
        ours.append(model.evaluate(data, "test")["accuracy"])
    assert np.mean(ours) >= np.mean(theirs) - 1e-9, (ours, theirs)
    assert np.mean(ours) > 0.6  # two balanced classes: well above chance
