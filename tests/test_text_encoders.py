"""Text encoders: registry, the study's tokeniser and vocabulary, and sensible embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sentimodal.errors import UserInputError
from sentimodal.features import resources
from sentimodal.features.text_encoders import (
    get_text_encoder,
    glove_vector,
    lengths_from_ids,
    list_text_encoders,
    minilm_vectors,
    tokenize,
)
from sentimodal.features.text_encoders.glove_mean import glove_words


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_registry_lists_every_encoder() -> None:
    assert list_text_encoders() == [
        "clip:<source>",
        "glove_mean",
        "hf:<source>",
        "minilm",
        "minilm_tokens",
        "mpnet",
        "mpnet_tokens",
        "tokens",
        "vader",
    ]
    with pytest.raises(UserInputError, match="unknown text encoder 'bert'.*tokens"):
        get_text_encoder("bert")
    with pytest.raises(UserInputError, match="bad settings for text encoder 'tokens'"):
        get_text_encoder("tokens", maxlen=5)


# ---- tokens -------------------------------------------------------------------------------


def test_tokenizer_keeps_punctuation_and_maps_links() -> None:
    text = (
        'Sunset at the lake. <a href="http://www.flickr.com/x" rel="nofollow">More</a>! '
        "See http://t.co/AbC1, @Anna: I don't LOVE it... 3.5/5 :( #sad 😀"
    )
    assert tokenize(text) == [
        "sunset", "at", "the", "lake", ".", "<rel>", "more", "<rel>", "!",
        "see", "<href>", ",", "<user>", ":", "i", "don't", "love", "it", "...",
        "3.5/5", ":", "(", "#", "sad", "😀",
    ]  # fmt: skip


def test_tokenizer_options_and_html() -> None:
    assert tokenize("Hi @Bob www.x.org", lowercase=False, map_users=False) == [
        "Hi",
        "@Bob",
        "<href>",
    ]
    # Entities are decoded, formatting tags dropped.
    assert tokenize("fish &amp; chips<br/>yum") == ["fish", "&", "chips", "yum"]


def test_vocabulary_is_ranked_by_frequency_then_alphabet() -> None:
    texts = ["b a c a.", "c b a!", "z y"]
    encoder = get_text_encoder("tokens").fit(texts)
    assert list(encoder.vocab_) == [
        "<pad>", "<unk>", "<href>", "<rel>", "<user>",
        "a", "b", "c", "!", ".", "y", "z",
    ]  # fmt: skip
    assert encoder.vocab_size == 12


def test_vocabulary_limits_and_unknowns() -> None:
    texts = ["a a a b b c", "a b d"]
    encoder = get_text_encoder("tokens", max_size=2, min_count=2).fit(texts)
    assert list(encoder.vocab_)[5:] == ["a", "b"]
    ids = encoder.encode(["a c zebra b"])
    assert ids[0, :4].tolist() == [5, 1, 1, 6]
    rare = get_text_encoder("tokens", min_count=2).fit(texts)
    assert "c" not in rare.vocab_ and "d" not in rare.vocab_


def test_fit_only_sees_given_texts() -> None:
    encoder = get_text_encoder("tokens").fit(["train words only"])
    encoder.encode(["unseen test words appear here"])
    assert set(encoder.vocab_) - {"<pad>", "<unk>", "<href>", "<rel>", "<user>"} == {
        "train",
        "words",
        "only",
    }


def test_sequences_are_cut_and_post_padded_to_101() -> None:
    encoder = get_text_encoder("tokens").fit(["w"])
    long_text = " ".join(["w"] * 150)
    ids, lengths = encoder.encode_with_lengths([long_text, "w w", ""])
    assert ids.shape == (3, 101) and ids.dtype == np.int64 and encoder.shape == (101,)
    assert (ids[0] == 5).all()
    assert ids[1, :2].tolist() == [5, 5] and not ids[1, 2:].any()
    assert not ids[2].any()
    assert lengths.tolist() == [101, 2, 0] and lengths.dtype == np.int64
    assert lengths_from_ids(ids).tolist() == lengths.tolist()


def test_vocabulary_round_trip(tmp_path: Path) -> None:
    train = ["Great day!! http://x.co", "@me so sad :(", "great great food"]
    encoder = get_text_encoder("tokens", max_len=12).fit(train)
    encoder.save(tmp_path)
    saved = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert saved["tokens"][:2] == ["<pad>", "<unk>"] and saved["format"] == "sentimodal-vocab"
    loaded = get_text_encoder("tokens", **encoder.config).load(tmp_path)
    probe = ["great sad day, unknown!", "", "http://y.org :("]
    assert np.array_equal(loaded.encode(probe), encoder.encode(probe))
    assert loaded.identity == encoder.identity
    assert encoder.identity != get_text_encoder("tokens").fit(["other"]).identity


def test_vocabulary_load_refusals(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="no vocabulary"):
        get_text_encoder("tokens").load(tmp_path)
    get_text_encoder("tokens", lowercase=False).fit(["A"]).save(tmp_path)
    with pytest.raises(UserInputError, match="lowercase=False"):
        get_text_encoder("tokens").load(tmp_path)
    (tmp_path / "vocab.json").write_text('{"format": "other"}')
    with pytest.raises(UserInputError, match="not a sentimodal vocabulary"):
        get_text_encoder("tokens").load(tmp_path)


def test_unfitted_tokens_encoder_says_so() -> None:
    encoder = get_text_encoder("tokens")
    assert encoder.learns and encoder.needs_fit
    with pytest.raises(RuntimeError, match="call fit"):
        encoder.encode(["x"])
    assert not encoder.fit(["a b"]).needs_fit


# ---- vectors ------------------------------------------------------------------------------


def test_minilm_similarities_are_sensible() -> None:
    encoder = get_text_encoder("minilm")
    texts = [
        "I love this beautiful day",
        "what a wonderful sunny day",
        "the stock market crashed badly",
    ]
    vectors = encoder.encode(texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    labels = minilm_vectors(["positive", "negative"])
    assert labels.shape == (2, 384)
    assert encoder.identity.startswith("all-MiniLM-L6-v2:file:")


def test_mpnet_similarities_are_sensible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the split zip is unpacked once into the user's cache folder: here a fresh one
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    encoder = get_text_encoder("mpnet")
    vectors = encoder.encode(
        ["I love this beautiful day", "what a wonderful sunny day", "the stock market crashed"]
    )
    assert vectors.shape == (3, 768) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert encoder.identity.startswith("all-mpnet-base-v2:file:")
    assert [p.name for p in tmp_path.joinpath("sentimodal").iterdir()] == [
        resources.mpnet_path().name
    ]


def test_glove_mean_similarities_are_sensible() -> None:
    encoder = get_text_encoder("glove_mean")
    vectors = encoder.encode(["a happy wonderful day", "a joyful great day", "tax law court", ""])
    assert vectors.shape == (4, 50) and vectors.dtype == np.float32
    assert _cos(vectors[0], vectors[1]) > _cos(vectors[0], vectors[2]) + 0.2
    assert not vectors[3].any()  # no known word: zeros
    assert _cos(glove_vector("good"), glove_vector("great")) > _cos(
        glove_vector("good"), glove_vector("banana")
    )
    # A phrase is the mean of its words; punctuation and links do not count.
    np.testing.assert_allclose(
        glove_vector("very sad!"), (glove_vector("very") + glove_vector("sad")) / 2, rtol=1e-6
    )
    assert glove_words("I don't, http://x.org") == ["i", "do", "n't"]


def test_vader_signs() -> None:
    encoder = get_text_encoder("vader")
    scores = encoder.encode(["I love this, it is wonderful!", "This is awful, I hate it.", ""])
    assert scores.shape == (3, 4) and scores.dtype == np.float32
    neg, neu, pos, compound = scores.T
    assert compound[0] > 0.5 and pos[0] > neg[0]
    assert compound[1] < -0.5 and neg[1] > pos[1]
    assert compound[2] == 0 and neu[2] == 0
