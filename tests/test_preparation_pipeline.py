"""End-to-end preparation: every source through labelling, filters, balancing and splits, the
files it writes, reruns, and the done-means numbers on the full MVSA-Single."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

import sentimodal
from sentimodal.errors import UserInputError
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.pipeline import PrepareConfig, make_config, prepare
from sentimodal.sample import sample_path
from sentimodal.sources.mvsa import read_mvsa
from sentimodal.sources.record import Post
from test_sources_mvso import build_corpus  # the crafted MVSO corpus (tests/ is on sys.path)

FRACTIONS = {"train": 0.7, "val": 0.2, "test": 0.1}


def assert_splits_within_one_post(dataset: PreparedDataset, fractions: dict[str, float]) -> None:
    per_label = dataset.examples.groupby("label")["split"].value_counts().unstack(fill_value=0)
    for label, row in per_label.iterrows():
        total = row.sum()
        for split, fraction in fractions.items():
            assert abs(row.get(split, 0) - total * fraction) < 1, (label, split)


def test_sample_with_merged_labels(tmp_path: Path) -> None:
    dataset = sentimodal.prepare("mvsa", sample_path(), tmp_path / "out", progress=False)
    assert isinstance(dataset, PreparedDataset) and dataset.root == tmp_path / "out"
    examples = dataset.examples
    assert Counter(examples["label"]) == {"positive": 200, "negative": 200, "neutral": 150}
    assert dataset.info["n_rejects"] == 50
    assert dataset.info["provenance"]["reject_reasons"] == {"conflicting labels": 50}
    assert dataset.labels == ["negative", "neutral", "positive"]
    assert list(dataset.info["counts"]) == ["train", "val", "test"]
    assert_splits_within_one_post(dataset, FRACTIONS)
    assert examples["id"].is_unique
    assert examples["image"].map(lambda p: Path(p).is_absolute() and Path(p).is_file()).all()
    # The sample keeps the original bytes: some tweets are GB18030 and were re-decoded.
    redecoded = dataset.info["provenance"]["redecoded_texts"]
    assert redecoded["count"] > 50 and set(redecoded["encodings"]) == {"gb18030"}
    rejects = pd.read_csv(tmp_path / "out" / "rejects.csv", dtype=str)
    assert list(rejects.columns) == ["id", "location", "reason"] and len(rejects) == 50
    assert rejects["reason"].str.startswith("conflicting labels: text ").all()
    # The config in dataset.json is the full, reloadable config.
    config = PrepareConfig.model_validate(dataset.info["config"])
    assert config.labels == "source" and config.split == [0.7, 0.2, 0.1]


def test_rerun_replaces_outputs_without_duplicates(tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare("mvsa", sample_path(), out, progress=False, split="none", classes=2)
    first = {name: (out / name).read_bytes() for name in ("dataset.json", "rejects.csv")}
    examples_first = pd.read_parquet(out / "examples.parquet")
    prepare("mvsa", sample_path(), out, progress=False, split="none", classes=2)
    assert {name: (out / name).read_bytes() for name in first} == first
    pd.testing.assert_frame_equal(pd.read_parquet(out / "examples.parquet"), examples_first)
    assert set(examples_first["split"]) == {"all"} and len(examples_first) == 400
    assert sorted(p.name for p in out.iterdir()) == [
        "dataset.json",
        "examples.parquet",
        "rejects.csv",
    ]


def test_label_modes_and_balance(tmp_path: Path) -> None:
    dataset = prepare(
        "mvsa", sample_path(), tmp_path / "out", progress=False, label_mode="image", balance=True
    )
    counts = Counter(dataset.examples["label"])
    assert len(set(counts.values())) == 1 and len(counts) == 3
    assert (dataset.examples["label"] == dataset.examples["image_label"]).all()
    reasons = dataset.info["provenance"]["reject_reasons"]
    assert set(reasons) == {"class balancing"}
    assert dataset.info["n_examples"] + dataset.info["n_rejects"] == 600
    assert_splits_within_one_post(dataset, FRACTIONS)


def test_vader_labels_with_text_filters(tmp_path: Path) -> None:
    dataset = prepare(
        "mvsa",
        sample_path(),
        tmp_path / "out",
        progress=False,
        labels="vader",
        filters=["min-words=12", "english"],
        classes=2,
        vader_margin=0.3,
    )
    groups = set(dataset.info["provenance"]["reject_reasons"])
    assert {"too few words", "not English", "neutral score in 2-class mode"} <= groups
    assert "low-confidence VADER score" in groups and "conflicting labels" in groups
    assert set(dataset.labels) == {"negative", "positive"}
    assert 50 < dataset.info["n_examples"] < 400


def _broken_mvsa(tmp_path: Path) -> Path:
    """Real sample posts with a truncated image, a non-image, a missing image and a duplicate."""
    source = sample_path()
    posts = [r for r in read_mvsa(source) if isinstance(r, Post)][:6]
    root = tmp_path / "broken"
    (root / "data").mkdir(parents=True)
    rows = ["ID\ttext,image"]
    for post in posts:
        shutil.copyfile(source / "data" / f"{post.id}.txt", root / "data" / f"{post.id}.txt")
        shutil.copyfile(post.image, root / "data" / f"{post.id}.jpg")
        rows.append(f"{post.id}\t{post.text_label},{post.image_label}")
    rows.append(rows[1])  # the first post again
    (root / "labelResultAll.txt").write_text("\n".join(rows) + "\n")
    truncated = root / "data" / f"{posts[0].id}.jpg"
    truncated.write_bytes(truncated.read_bytes()[:600])
    (root / "data" / f"{posts[1].id}.jpg").write_text("<html>not a picture</html>")
    (root / "data" / f"{posts[2].id}.jpg").unlink()
    return root


def test_bad_images_and_duplicates_become_rejects(tmp_path: Path) -> None:
    dataset = prepare("mvsa", _broken_mvsa(tmp_path), tmp_path / "out", progress=False)
    rejects = dataset.rejects()
    reasons = dict(zip(rejects["id"], rejects["reason"], strict=False))
    assert len(rejects) == 4 and dataset.info["n_examples"] == 3
    ids = rejects["id"].tolist()
    assert reasons[ids[0]].startswith("image file not found")
    groups = Counter(r.split(":")[0] for r in rejects["reason"])
    assert groups == {
        "image does not decode": 2,
        "image file not found": 1,
        "duplicate id": 1,
    }
    assert rejects["location"].str.contains("labelResultAll.txt:").all()


def test_mvso_with_anp_labels(tmp_path: Path, shared_data: Path) -> None:
    scores = shared_data / "ontologies" / "mvso_english_anp_sentiment.csv"
    root = build_corpus(tmp_path / "mvso")
    dataset = prepare(
        "mvso", root, tmp_path / "out", progress=False, anp_scores=str(scores), split="none"
    )
    examples = dataset.examples.set_index("id")
    assert examples.loc["101", "label"] == "positive" and examples.loc["201", "label"] == "negative"
    assert examples.loc["101", "tags"] == "Happy Kid smile"
    assert examples.loc["101", "anp_score"] == pytest.approx(2.019)
    assert dataset.info["n_rejects"] == 5
    assert len(dataset.info["provenance"]["anp_scores_sha256"]) == 64
    # With the study's preset, the URL check runs: these made-up Flickr URLs are unreachable
    # offline and the one local image is a blank square, so nothing is kept: an empty dataset
    # is an error, and nothing is written.
    with pytest.raises(UserInputError, match="every one of the 8 records was rejected"):
        prepare(
            "mvso",
            root,
            tmp_path / "strict",
            progress=False,
            anp_scores=str(scores),
            preset="study",
            url_timeout=0.5,
            split="none",
        )
    assert list((tmp_path / "strict").iterdir()) == []


def test_table_with_vader_and_images(tmp_path: Path) -> None:
    Image.new("RGB", (16, 16), "blue").save(tmp_path / "ok.png")
    pd.DataFrame(
        {
            "caption": [
                "I love this beautiful day",
                "Horrible, awful service",
                "A red chair",
                "Fine",
            ],
            "file": ["ok.png", "missing.png", "", "ok.png"],
        }
    ).to_csv(tmp_path / "posts.csv", index=False)
    dataset = prepare(
        "table",
        tmp_path / "posts.csv",
        tmp_path / "out",
        progress=False,
        text_columns=["caption"],
        image_column="file",
        labels="vader",
        split="none",
    )
    by_id = dataset.examples.set_index("id")
    assert by_id.loc["1", "label"] == "positive" and by_id.loc["3", "label"] == "neutral"
    assert pd.isna(by_id.loc["3", "image"])
    assert dataset.rejects()["reason"].tolist() == [f"image not found: {tmp_path / 'missing.png'}"]


@pytest.mark.parametrize(
    ("source", "options", "message"),
    [
        ("mvsa", {"split": "0.6,0.6"}, "invalid prepare option split"),
        ("mvsa", {"filters": ["colour"]}, "unknown filter"),
        ("mvsa", {"classes": 4}, "invalid prepare option classes"),
        ("mvsa", {"bogus": 1}, "invalid prepare option bogus: unknown setting"),
        ("mvsa", {"text_columns": ["t"]}, "table source only"),
        ("mvsa", {"labels": "anp"}, "ANP labels need the mvso source"),
        ("mvso", {}, "ANP labels need an ANP score table"),
        ("mvso", {"labels": "source"}, "MVSO has no source labels"),
        ("table", {"text_columns": ["t"]}, "need a label column"),
        ("mvsa", {"anp_negative": 0.5}, "anp_negative must not exceed"),
        ("mvsa", {"text_encodings": ["klingon"]}, "unknown text encoding"),
    ],
)
def test_broken_options_are_user_errors(source: str, options: dict, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        make_config(source, **options)


def test_missing_input_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="input not found"):
        prepare("mvsa", tmp_path / "absent", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_config_round_trips_and_preset_merges(tmp_path: Path) -> None:
    config = make_config("mvsa", preset="study", filters=["spelling=0.6"], split="0.8,0.2")
    assert config.effective_filters() == [
        "min-words=10",
        "english",
        "spelling=0.6",
        "image-reachable",
    ]
    for suffix in (".yaml", ".json"):
        assert PrepareConfig.load(config.save(tmp_path / f"c{suffix}")) == config


def test_full_mvsa_done_means(tmp_path: Path, mvsa_root: Path) -> None:
    """The issue's numbers: 3,835 kept (2,281 / 1,154 / 400), 304 conflicting, 70/20/10."""
    dataset = prepare("mvsa", mvsa_root, tmp_path / "out", progress=False)
    assert dataset.info["n_examples"] == 3835
    assert Counter(dataset.examples["label"]) == {
        "positive": 2281,
        "negative": 1154,
        "neutral": 400,
    }
    assert dataset.info["n_rejects"] == 304
    assert dataset.info["provenance"]["reject_reasons"] == {"conflicting labels": 304}
    assert dataset.info["provenance"]["n_read"] == 4139
    assert_splits_within_one_post(dataset, FRACTIONS)
    assert json.loads((tmp_path / "out" / "dataset.json").read_text())["counts"]["test"] == {
        "negative": 115,
        "neutral": 40,
        "positive": 228,
    }
