"""PreparedDataset: loading, splits, texts, and building one from a pandas DataFrame."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sentimodal.errors import UserInputError
from sentimodal.preparation.dataset import EXAMPLE_COLUMNS, PreparedDataset


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "key": [f"k{i}" for i in range(20)],
            "head": ["Title"] * 10 + [""] * 10,
            "body": [f"body {i}" for i in range(20)],
            "picture": ["img/a.jpg", "https://x.org/b.jpg", None, ""] * 5,
            "mood": ["joy", "anger"] * 10,
        }
    )


def test_from_dataframe_in_memory(tmp_path: Path) -> None:
    dataset = PreparedDataset.from_dataframe(
        frame(),
        text_columns=["head", "body"],
        image_column="picture",
        label_column="mood",
        id_column="key",
        split=[0.5, 0.5],
        base_dir=tmp_path,
    )
    examples = dataset.examples
    assert dataset.root is None
    assert list(examples.columns) == list(EXAMPLE_COLUMNS)
    assert dataset.labels == ["anger", "joy"]  # any label set, sorted
    assert examples["text"][0] == "Title\nbody 0" and examples["text"][10] == "body 10"
    assert examples["image"][0] == str(tmp_path / "img" / "a.jpg")
    assert examples["image"][1] == "https://x.org/b.jpg"
    assert pd.isna(examples["image"][2]) and pd.isna(examples["image"][3])
    assert dataset.info["counts"] == {
        "train": {"anger": 5, "joy": 5},
        "val": {"anger": 5, "joy": 5},
    }
    assert len(dataset.split("train")) == 10
    assert dataset.texts(dataset.examples.head(2)) == ["Title\nbody 0", "Title\nbody 1"]
    with pytest.raises(UserInputError, match="no split 'test'"):
        dataset.split("test")


def test_from_dataframe_saved_and_loaded(tmp_path: Path) -> None:
    df = frame().assign(part=["train"] * 15 + ["test"] * 5)
    saved = PreparedDataset.from_dataframe(
        df, text_columns=["body"], label_column=None, split_column="part", root=tmp_path / "ds"
    )
    loaded = PreparedDataset.load(tmp_path / "ds")
    assert saved.root == loaded.root == tmp_path / "ds"
    assert loaded.splits == ["train", "test"]
    assert loaded.labels == [] and loaded.examples["label"].isna().all()
    assert loaded.info["n_examples"] == 20
    assert list(loaded.examples["id"]) == [str(i) for i in range(20)]
    assert loaded.rejects().empty


def test_from_dataframe_problems() -> None:
    with pytest.raises(UserInputError, match="column 'nope' not in the DataFrame"):
        PreparedDataset.from_dataframe(frame(), text_columns=["nope"])
    duplicated = frame().assign(key="same")
    with pytest.raises(UserInputError, match="duplicate ids"):
        PreparedDataset.from_dataframe(
            duplicated, text_columns=["body"], id_column="key", label_column=None
        )


def test_texts_rebuild_full_text() -> None:
    dataset = PreparedDataset(
        pd.DataFrame(
            {"title": ["A title", None], "description": ["", "desc"], "text": ["body", ""]}
        ),
        {"labels": []},
    )
    assert dataset.texts() == ["A title. body", "desc"]


def test_load_refuses_other_folders(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="not a prepared dataset"):
        PreparedDataset.load(tmp_path)
    (tmp_path / "examples.parquet").write_bytes(b"")
    (tmp_path / "dataset.json").write_text("{broken")
    with pytest.raises(UserInputError, match="corrupted"):
        PreparedDataset.load(tmp_path)
