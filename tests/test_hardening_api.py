"""The Python API's contracts under abuse (issue 25, item 9): unknown parameters are refused at
once as in scikit-learn, what is not a post is said to be so, and one unreadable cell is that
row's error (predict) or a refusal naming it (fit), never a crash of the whole call."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sentimodal.errors import UserInputError
from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path
from sentimodal.training.estimator import SentimentModel

CHEAP = {"model": "text", "text_encoder": "glove_mean", "feature_workers": 0}


@pytest.fixture(scope="module")
def posts(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    dataset = prepare("mvsa", sample_path(), tmp_path_factory.mktemp("api") / "d", progress=False)
    examples = dataset.examples.groupby("label").head(20).reset_index(drop=True)
    return pd.DataFrame(
        {"text": examples["text"].astype(object).tolist(), "label": examples["label"].tolist()}
    )


@pytest.fixture(scope="module")
def model(posts: pd.DataFrame) -> SentimentModel:
    return SentimentModel(**CHEAP, train={"epochs": 2}).fit(posts, progress=False)


def with_cell(posts: pd.DataFrame, row: int, value: object) -> pd.DataFrame:
    texts = posts["text"].tolist()
    texts[row] = value
    return pd.DataFrame({"text": texts, "label": posts["label"].tolist()})


# ---------------------------------------------------------------- set_params


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"bogus": 1}, "Invalid parameter 'bogus'.*Valid parameters are.*'train'"),
        ({"train__bogus": 1}, "'bogus' of 'train'.*'epochs'"),
        ({"confident__bogus": 1}, "'bogus' of 'confident'.*'threshold'"),
        ({"head__size": 1}, "head takes no nested parameters"),
    ],
)
def test_set_params_refuses_unknown_names_at_once(params: dict, needle: str) -> None:
    model = SentimentModel(**CHEAP)
    with pytest.raises(ValueError, match=needle):
        model.set_params(**params)
    assert model.get_params(deep=False) == SentimentModel(**CHEAP).get_params(deep=False)


def test_set_params_takes_fields_groups_and_free_option_keys() -> None:
    model = SentimentModel().set_params(
        train__epochs=3,
        model_options__hidden=8,
        image_encoder_config__weights="none",
        head="softmax",
    )
    assert model.run_config().train.epochs == 3


# ---------------------------------------------------------------- what fit accepts


def test_fit_refuses_a_feature_matrix_saying_what_it_got() -> None:
    y = ["positive", "negative"] * 20
    with pytest.raises(UserInputError, match=r"array of shape \(40, 3\).*raw posts"):
        SentimentModel(**CHEAP).fit(np.zeros((40, 3)), y, progress=False)


def test_fit_refuses_a_list_item_that_is_no_text_by_position() -> None:
    with pytest.raises(UserInputError, match="post 1 is not a text: got int 5"):
        SentimentModel(**CHEAP).fit(["hi", 5], ["a", "b"], progress=False)


def test_fit_refuses_an_undecodable_bytes_cell_naming_the_row(posts: pd.DataFrame) -> None:
    with pytest.raises(UserInputError, match=r"row 5 \(column 'text': a binary cell"):
        SentimentModel(**CHEAP).fit(with_cell(posts, 5, b"\xff\xfe"), progress=False)


# ---------------------------------------------------------------- predict: per-row errors


def test_predict_answers_an_undecodable_cell_with_that_rows_error(
    model: SentimentModel, posts: pd.DataFrame
) -> None:
    frame = model.predict_frame(with_cell(posts, 5, b"\xff\xfe").drop(columns="label"))
    assert len(frame) == len(posts)
    assert frame.loc[5, "label"] is None and "not UTF-8" in frame.loc[5, "error"]
    others = frame.drop(index=5)
    assert others["label"].notna().all()
    assert model.predict(with_cell(posts, 5, b"\xff")).tolist()[5] is None


def test_predict_posts_gives_what_is_no_post_an_error_and_goes_on(model: SentimentModel) -> None:
    results = model.predict_posts(["hi", 5, {"text": b"\xff"}, {"text": ["a", "list"]}, None])
    assert results[0].error is None and results[0].label in model.classes_
    assert "post 1 is not a post" in results[1].error and "int 5" in results[1].error
    assert "post 2: column 'text'" in results[2].error and "not UTF-8" in results[2].error
    assert "post 3: column 'text': a list cell" in results[3].error
    assert "post 4 is not a post" in results[4].error
    assert all(r.label is None for r in results[1:])


def test_predict_posts_refuses_one_post_not_in_a_list(model: SentimentModel) -> None:
    with pytest.raises(UserInputError, match="wrap it in a list"):
        model.predict_posts({"text": "hi"})  # type: ignore[arg-type]
