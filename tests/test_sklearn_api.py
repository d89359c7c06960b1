"""SentimentModel is a scikit-learn estimator, not just alike: clone, GridSearchCV, pipelines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.run_config import RunConfig

CHEAP = {"model": "text", "text_encoder": "glove_mean", "feature_workers": 0}


@pytest.fixture(scope="module")
def posts(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """90 real tweets of the embedded sample with their labels, as a user's table."""
    dataset = prepare("mvsa", sample_path(), tmp_path_factory.mktemp("sk") / "d", progress=False)
    examples = dataset.examples.groupby("label").head(30).reset_index(drop=True)
    return pd.DataFrame({"text": examples["text"], "label": examples["label"]})


def test_params_round_trip_and_clone() -> None:
    model = SentimentModel(**CHEAP, train={"epochs": 3})
    assert model.get_params() == {"config": None, **CHEAP, "train": {"epochs": 3}}
    model.set_params(train__patience=None, head="embedding")
    assert model.get_params()["train"] == {"epochs": 3, "patience": None}
    run = model.run_config()
    assert run.head == "embedding" and run.train.epochs == 3 and run.train.patience is None
    copy = clone(model)
    assert copy is not model and copy.get_params() == model.get_params()
    assert repr(copy).startswith("SentimentModel(model='text'")
    # nested settings given on top of a config change those fields only
    base = SentimentModel(run, train={"epochs": 5}).run_config()
    assert base.train.epochs == 5 and base.train.patience is None and base.head == "embedding"


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
    assert loaded.get_params()["config"] == model.given_
