"""Tweet-aware text normalisation: real MVSA-Single tweets in, plain words out; the choice is
part of the encoder config, so cache keys change with it and a saved model applies it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sentimodal.errors import UserInputError
from sentimodal.features.text_encoders import get_text_encoder, saved_text_encoder
from sentimodal.features.text_normalize import (
    normalize_texts,
    normalize_tweet,
    segment,
    split_hashtag,
)
from sentimodal.sources.mvsa import decode_text


def _tweet(mvsa_root: Path, post: str) -> str:
    return decode_text((mvsa_root / "data" / f"{post}.txt").read_bytes())[0].strip()


def test_real_tweets_hashtags_become_words(mvsa_root: Path) -> None:
    assert _tweet(mvsa_root, "1") == "How I feel today #legday #jelly #aching #gym"
    assert normalize_tweet(_tweet(mvsa_root, "1")) == "How I feel today leg day jelly aching gym"
    # camel case is split where it is written, and a tag of known words by frequency
    assert normalize_tweet(_tweet(mvsa_root, "9")) == (
        "Look at their Photo and feel the anger. speak up for peace. "
        "Speak up for equality. Speak up for tolerance."
    )
    assert normalize_tweet(_tweet(mvsa_root, "1996")).startswith("Happy valentines day love")


def test_real_tweets_mentions_and_urls_become_placeholders(mvsa_root: Path) -> None:
    text = _tweet(mvsa_root, "102")  # ends in a URL cut short by the retweet: "http:/…"
    assert text.endswith("http:/…")
    assert normalize_tweet(text) == (
        "RT @user: It's @user w @user Tim hosted @user @user & we r elated to host Tim @user http"
    )


def test_real_tweet_entities_and_typography(mvsa_root: Path) -> None:
    # 952 is "#Monster #who #raped #&amp; ...": the entity is decoded, the lone # kept
    assert "#&" in normalize_tweet(_tweet(mvsa_root, "952"))
    # 1013 is a GB18030 file with curly quotes: uncurled
    assert normalize_tweet(_tweet(mvsa_root, "1013")).startswith('"@user: Eto day')


def test_mojibake_is_repaired(mvsa_root: Path) -> None:
    # a real tweet with a curly apostrophe, read back as Windows-1252: the usual mojibake
    text = "RT @ItsWaltBitch: That’s right, Holly."
    broken = text.encode("utf-8").decode("cp1252")
    assert "â€™" in broken
    assert normalize_tweet(broken) == "RT @user: That's right, Holly."


def test_emoji_become_their_names_and_elongations_are_cut() -> None:
    assert normalize_tweet("best day 😂😍 soooooo good!!!!!!") == (
        "best day face with tears of joy smiling face with heart-eyes sooo good!!!"
    )


def test_an_elongated_hashtag_is_cut_before_it_is_split() -> None:
    assert normalize_tweet("#" + "x" * 5000) == "xxx"
    laughs = " ".join(["face with tears of joy"] * 3)
    assert normalize_tweet("#yessss 😂😂😂😂😂") == f"yesss {laughs}"


def test_segmentation_keeps_unknown_words_whole() -> None:
    assert segment("sobeautiful") == ["so", "beautiful"]
    assert segment("photooftheday") == ["photo", "of", "the", "day"]
    # not in the word list: kept whole, not cut into rare pieces ("self i e")
    assert segment("selfie") == ["selfie"]
    assert split_hashtag("SpeakUp4Dogs") == ["speak", "up", "4", "dogs"]
    assert split_hashtag("廃墟") == ["廃墟"]


def test_none_leaves_text_and_unknown_names_are_refused() -> None:
    assert normalize_texts(["#sobeautiful @bob", None], "none") == ["#sobeautiful @bob", ""]
    with pytest.raises(UserInputError, match="unknown text normalisation 'lower'"):
        normalize_texts(["x"], "lower")
    with pytest.raises(UserInputError, match="unknown text normalisation"):
        get_text_encoder("minilm", normalize="lower")


def test_normalisation_is_in_the_encoder_config() -> None:
    for name in ("minilm", "minilm_tokens", "mpnet"):
        assert get_text_encoder(name).config["normalize"] == "tweet"
        assert get_text_encoder(name, normalize="none").config["normalize"] == "none"
    tweet = get_text_encoder("minilm_tokens")
    plain = get_text_encoder("minilm_tokens", normalize="none")
    raw, clean = "#sobeautiful @bob http://t.co/x", "so beautiful @user http"
    assert np.array_equal(tweet.encode([raw]), plain.encode([clean]))
    assert not np.array_equal(plain.encode([raw]), plain.encode([clean]))


def test_saved_model_applies_its_normalisation_when_predicting(
    tmp_path: Path, one_thread, small_text_transformer: dict
) -> None:
    from sentimodal.preparation.pipeline import prepare
    from sentimodal.sample import sample_path
    from sentimodal.training.estimator import SentimentModel

    data = prepare("mvsa", sample_path(), tmp_path / "data", progress=False)
    SentimentModel(**small_text_transformer).fit(data, progress=False).save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["encoders"]["text"]["config"]["normalize"] == "tweet"

    loaded = SentimentModel.load(tmp_path / "model")
    raw = loaded.predict(["#sobeautiful day with @bob http://t.co/x"])
    clean = loaded.predict(["so beautiful day with @user http"])
    assert raw == clean
    raw_scores = loaded.predict_proba(["#sobeautiful day with @bob http://t.co/x"])
    clean_scores = loaded.predict_proba(["so beautiful day with @user http"])
    assert np.allclose(raw_scores, clean_scores)


def test_a_model_saved_before_normalisation_is_rebuilt_without_it() -> None:
    # model directories written before the setting existed have no "normalize" in their config
    assert saved_text_encoder("minilm_tokens", {"max_len": 128}).config["normalize"] == "none"
    assert saved_text_encoder("minilm", {}).config["normalize"] == "none"
    assert saved_text_encoder("minilm", {"normalize": "tweet"}).config["normalize"] == "tweet"
