"""SentimentModel is a scikit-learn estimator, not just alike: clone, GridSearchCV, pipelines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sentimodal.errors import UserInputError
from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.run_config import RunConfig
from sentimodal.training.train_config import TrainConfig

CHEAP = {"model": "text", "text_encoder": "glove_mean", "feature_workers": 0}


@pytest.fixture(scope="module")
def posts(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """90 real tweets of the embedded sample with their labels, as a user's table."""
    dataset = prepare("mvsa", sample_path(), tmp_path_factory.mktemp("sk") / "d", progress=False)
    examples = dataset.examples.groupby("label").head(30).reset_index(drop=True)
    return pd.DataFrame({"text": examples["text"], "label": examples["label"]})


def test_params_round_trip_and_clone() -> None:
    model = SentimentModel(**CHEAP, train={"epochs": 3})
    given = {"config": None, "verbose": True, **CHEAP, "train": {"epochs": 3}}
    assert model.get_params(deep=False) == given
    model.set_params(train__patience=None, head="embedding")
    assert model.get_params(deep=False)["train"] == {"epochs": 3, "patience": None}
    run = model.run_config()
    assert run.head == "embedding" and run.train.epochs == 3 and run.train.patience is None
    copy = clone(model)
    assert copy is not model and copy.get_params() == model.get_params()
    assert repr(copy).startswith("SentimentModel(model='text'")
    assert repr(clone(copy.set_params(verbose=False))).startswith("SentimentModel(verbose=False")
    # nested settings given on top of a config change those fields only
    base = SentimentModel(run, train={"epochs": 5}).run_config()
    assert base.train.epochs == 5 and base.train.patience is None and base.head == "embedding"


def test_deep_params_name_every_setting_set_params_takes() -> None:
    """As scikit-learn's ``get_params(deep=True)``: a grid's keys can be discovered, each
    with the value the estimator would train with (the recipe's derived ones included)."""
    model = SentimentModel(**CHEAP, train={"epochs": 3})
    deep = model.get_params(deep=True)
    shallow = model.get_params(deep=False)
    assert deep.items() >= shallow.items()  # scikit-learn's invariance
    run = model.run_config().resolved()
    for field in TrainConfig.model_fields:
        assert deep[f"train__{field}"] == run.to_dict()["train"][field]
    assert deep["train__epochs"] == 3 and deep["train__optimizer"] == "adam"
    assert {"head", "device", "validation_fraction", "calibrate", "verbose"} <= deep.keys()
    for key, value in deep.items():  # every name is one set_params takes, to the same run
        assert clone(model).set_params(**{key: value}).run_config().resolved() == run, key
    tuned = SentimentModel(model="late").get_params()
    assert tuned["text_encoder"] == "minilm_tokens" and tuned["train__optimizer"] == "adamw"


def test_verbose_false_keeps_fit_and_grid_search_silent(
    posts: pd.DataFrame, capfd: pytest.CaptureFixture[str]
) -> None:
    quiet = SentimentModel(**CHEAP, train={"epochs": 2}, verbose=False)
    GridSearchCV(quiet, {"train__epochs": [1, 2]}, cv=2).fit(posts[["text"]], posts["label"])
    assert capfd.readouterr().err == ""
    SentimentModel(**CHEAP, train={"epochs": 2}).fit(posts[["text"]], posts["label"])
    assert "epoch" in capfd.readouterr().err  # the default shows progress


@pytest.mark.parametrize(("fraction", "trained"), [(0.2, 72), (0.5, 45), (0.0, 90)])
def test_validation_fraction_is_the_share_of_a_table_held_out(
    posts: pd.DataFrame, fraction: float, trained: int
) -> None:
    model = SentimentModel(
        **CHEAP, train={"epochs": 2}, validation_fraction=fraction, verbose=False
    ).fit(posts[["text"]], posts["label"])
    assert len(model.train_fingerprints_) == trained  # of the 90 posts
    assert ("val_loss" in model.history_[-1]) == (fraction > 0)
    assert model.get_params()["validation_fraction"] == fraction


def test_validation_fraction_must_leave_posts_to_train(posts: pd.DataFrame) -> None:
    with pytest.raises(UserInputError, match="validation_fraction.*less than 1"):
        SentimentModel(**CHEAP, validation_fraction=1.0).fit(posts[["text"]], posts["label"])


def test_fit_x_y_predict_texts_and_score(posts: pd.DataFrame) -> None:
    model = SentimentModel(**CHEAP, train={"epochs": 30}).fit(
        posts[["text"]], posts["label"], progress=False
    )
    predicted = model.predict(["i love it, best day ever", "i hate it, everything is broken"])
    assert predicted.shape == (2,) and set(predicted) <= set(model.classes_)
    assert model.predict_proba(posts["text"].tolist()).shape == (len(posts), 3)
    accuracy = model.score(posts[["text"]], posts["label"])
    assert accuracy == pytest.approx((model.predict(posts[["text"]]) == posts["label"]).mean())
    # a DataFrame with its labels is evaluated whole by default
    assert model.evaluate(posts)["n"] == len(posts)


def test_grid_search_cross_validates(posts: pd.DataFrame) -> None:
    search = GridSearchCV(
        SentimentModel(**CHEAP, train={"patience": None}),
        {"train__epochs": [1, 20]},
        cv=2,
        error_score="raise",
    )
    search.fit(posts[["text"]], posts["label"].to_numpy())
    assert set(search.cv_results_["param_train__epochs"]) == {1, 20}
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.predict(["what a lovely day"])[0] in set(posts["label"])


def test_every_construction_path_resolves_the_same_run() -> None:
    """What the user set stays apart from what the recipe derives: a RunConfig with the
    default model's settings filled in would force its text encoder on another model."""
    runs = [
        SentimentModel(RunConfig(), model="concat").run_config(),
        SentimentModel(model="concat").run_config(),
        clone(SentimentModel(RunConfig(model="late"))).set_params(model="concat").run_config(),
        RunConfig.model_validate(RunConfig(model="concat").to_dict()),
    ]
    resolved = {run.resolved().to_json() for run in runs}
    assert len(resolved) == 1
    run = runs[0].resolved()
    assert (run.text_encoder, run.train.optimizer, run.train.epochs) == ("minilm", "adam", 40)
    assert run.resolved() == run
    # given training settings survive a change of model; the profile fills the rest
    tuned = SentimentModel(RunConfig(train={"epochs": 2}), model="late").run_config().resolved()
    assert (tuned.train.epochs, tuned.train.optimizer) == (2, "adamw")
    assert RunConfig().to_dict()["train"] == {} and RunConfig().text_encoder is None


def test_the_model_directory_records_given_and_resolved_settings(
    posts: pd.DataFrame, tmp_path: Path
) -> None:
    model = SentimentModel(
        RunConfig(), model="text", text_encoder="glove_mean", train={"epochs": 2}
    ).fit(posts["text"].tolist(), posts["label"].tolist(), work_dir=tmp_path / "w", progress=False)
    saved = json.loads((model.save(tmp_path / "m") / "config.json").read_text())
    assert saved["given"]["train"] == {"epochs": 2}
    assert saved["run"]["train"]["epochs"] == 2 and saved["run"]["train"]["optimizer"] == "adam"
    loaded = SentimentModel.load(tmp_path / "m")
    assert loaded.run_ == model.run_ and loaded.given_ == model.given_
    assert loaded.get_params(deep=False)["config"] == model.given_
