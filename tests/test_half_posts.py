"""A post with only an image, or only a text, is labelled from what it has by every fusion on
the torch path, also when a whole batch holds such posts (no text to encode at all)."""

from __future__ import annotations

import pandas as pd
import pytest

from sentimodal import SentimentModel
from server_fixtures import sample_posts

pytestmark = pytest.mark.usefixtures("one_thread")

#: each with its own kind of text input: WordPiece ids of the fine-tuned MiniLM (the default's
#: text branch), frozen MiniLM vectors (gated's default), GloVe means
RECIPES = {
    "late": {"model": "late", "image_encoder": "pixels32"},
    "gated": {"model": "gated"},
    "concat": {"model": "concat", "text_encoder": "glove_mean"},
}


@pytest.fixture(scope="module")
def posts() -> pd.DataFrame:
    return sample_posts(80)


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_image_only_and_text_only_batches_are_labelled(
    recipe: str, posts: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = {**RECIPES[recipe], "feature_workers": 0, "train": {"epochs": 1}}
    work = tmp_path_factory.mktemp(recipe)
    model = SentimentModel(**settings).fit(posts.iloc[:64], work_dir=work, progress=False)
    held = posts.iloc[64:]
    images = [{"id": f"i{k}", "image": p} for k, p in enumerate(held["image"])]
    texts = [{"id": f"t{k}", "text": t} for k, t in enumerate(held["text"])]
    for batch, read in ((images, "image"), (texts, "text"), (images[:2] + texts[:2], None)):
        predictions = model.predict_posts(batch, workers=0)
        assert [p.error for p in predictions] == [None] * len(batch)
        assert all(p.label in model.classes_ for p in predictions)
        said = [p.modalities for p in predictions]
        assert said == ([read] * len(batch) if read else ["image", "image", "text", "text"])
