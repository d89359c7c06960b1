"""SentimentModel is a scikit-learn estimator, not just alike: clone, GridSearchCV, pipelines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path
from sentimodal.training.estimator import SentimentModel

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
