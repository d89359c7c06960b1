"""Labels under abuse (issue 25, item 8): missing labels, numbers in many spellings, label maps
that cannot mean anything, keep lists that name nothing, and label sets too large for their
posts are refused (or warned of) in one line before the work."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from hardening import assert_user_error, invoke
from sentimodal.errors import UserInputError
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.label_set import canonical_label, parse_label_list, parse_label_map
from sentimodal.preparation.splits import check_class_sizes
from sentimodal.training.estimator import SentimentModel

CHEAP = {"model": "text", "text_encoder": "glove_mean", "feature_workers": 0}


def table(path: Path, labels: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label"])
        writer.writerows((f"p{i}", f"post number {i}", label) for i, label in enumerate(labels))
    return path


def prepare_table(path: Path, out: Path, *extra: str):
    return invoke(
        "prepare", "table", path, "--out", out, "--text-column", "text",
        "--label-column", "label", "--id-column", "id", "--quiet", *extra,
    )  # fmt: skip


# ---------------------------------------------------------------- numbers are one class by value


@pytest.mark.parametrize("spelling", [1, 1.0, "1", "1.0", "1e0", "01", "+1", " 1 "])
def test_numeric_spellings_are_one_label(spelling: object) -> None:
    assert canonical_label(spelling) == "1"


def test_numeric_canonical_form_keeps_values_apart() -> None:
    assert canonical_label("0.50") == canonical_label(5e-1) == "0.5"
    assert canonical_label("-0") == "0"
    assert canonical_label("10") != canonical_label("1")
    assert canonical_label("1e999999") == "1e999999"  # no huge expansion: kept as written
    assert canonical_label("nan") == "nan"  # a word, not a missing cell


def test_prepare_reads_1_10_1e0_01_as_one_class_and_warns(tmp_path: Path) -> None:
    path = table(tmp_path / "t.csv", [["1", "1.0", "1e0", "01", "2"][i % 5] for i in range(40)])
    result = prepare_table(path, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert PreparedDataset.load(tmp_path / "out").labels == ["1", "2"]
    assert "numeric labels are read by value: '01' and '1' and '1.0' and '1e0' as '1'" in (
        result.output
    )


def test_dataframe_numbers_are_one_class_with_a_warning() -> None:
    frame = pd.DataFrame({"text": ["a", "b", "c", "d"], "label": [1, 1.0, "01", "2"]})
    with pytest.warns(UserWarning, match="read by value"):
        dataset = PreparedDataset.from_dataframe(frame)
    assert dataset.labels == ["1", "2"]


# ---------------------------------------------------------------- missing labels in fit


@pytest.mark.parametrize("missing", [None, float("nan"), "  "])
def test_fit_refuses_rows_without_a_label_naming_them(missing: object) -> None:
    labels: list[object] = ["positive", "negative"] * 20
    labels[3] = labels[7] = missing
    texts = [f"post {i}" for i in range(40)]
    with pytest.raises(UserInputError, match=r"2 of 40 rows have no label .*rows 3, 7"):
        SentimentModel(**CHEAP).fit(texts, labels, progress=False)
    frame = pd.DataFrame({"text": texts, "label": labels})
    with pytest.raises(UserInputError, match="rows 3, 7"):
        SentimentModel(**CHEAP).fit(frame, progress=False)


def test_prepare_rejects_rows_without_a_label(tmp_path: Path) -> None:
    path = table(tmp_path / "t.csv", ["a", "b", "", "a", "b"] * 8)
    assert prepare_table(path, tmp_path / "out").exit_code == 0
    rejects = pd.read_csv(tmp_path / "out" / "rejects.csv")
    assert set(rejects["reason"]) == {"empty label: column 'label'"}
    assert PreparedDataset.load(tmp_path / "out").labels == ["a", "b"]


# ---------------------------------------------------------------- label maps and keep lists


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("glad=joy=x", "'glad=joy=x' is not OLD=NEW"),
        ("glad=joy,glad=sad", "renames 'glad' twice"),
        ("glad=joy,joy=bliss", "chains 'joy'"),
        ("1=one,01=uno", "renames '1' twice"),
    ],
)
def test_label_maps_that_cannot_mean_one_thing_are_refused(spec: str, needle: str) -> None:
    with pytest.raises(UserInputError, match=needle):
        parse_label_map(spec)


@pytest.mark.parametrize("spec", [",", " , ,", ""])
def test_a_keep_list_naming_no_label_is_refused(spec: str) -> None:
    with pytest.raises(UserInputError, match="name no label"):
        parse_label_list(spec)


def test_cli_refuses_bad_maps_and_empty_keep_lists_before_reading(tmp_path: Path) -> None:
    missing = tmp_path / "never-read.csv"  # refused before the input is even looked at
    assert_user_error(
        prepare_table(missing, tmp_path / "o", "--label-map", "glad=joy=x"), "OLD=NEW"
    )
    assert_user_error(prepare_table(missing, tmp_path / "o", "--labels-keep", ","), "no label")


@pytest.mark.parametrize(
    ("option", "value", "stale"),
    [("--label-map", "a=x,zzz=y", "zzz=y"), ("--labels-keep", "a,zzz", "zzz")],
)
def test_rules_naming_labels_the_data_lacks_are_refused(
    tmp_path: Path, option: str, value: str, stale: str
) -> None:
    path = table(tmp_path / "t.csv", ["a", "b"] * 20)
    line = assert_user_error(prepare_table(path, tmp_path / "out", option, value), stale)
    assert "the data does not have" in line
    assert not (tmp_path / "out" / "dataset.json").exists()


def test_rules_naming_labels_a_tool_never_makes_are_refused_before_reading(tmp_path: Path) -> None:
    result = invoke(
        "prepare", "table", tmp_path / "never-read.csv", "--out", tmp_path / "o",
        "--text-column", "text", "--labels", "vader", "--label-map", "postive=good",
    )  # fmt: skip
    assert_user_error(result, "postive=good", "does not have")


# ---------------------------------------------------------------- too many classes for the data


def test_ten_thousand_labels_stop_the_read_at_the_class_bound(tmp_path: Path) -> None:
    path = table(tmp_path / "t.csv", [f"label {i}" for i in range(10_000)])
    line = assert_user_error(prepare_table(path, tmp_path / "out"), "more than 1,000 distinct")
    assert "--max-classes" in line
    assert not (tmp_path / "out" / "dataset.json").exists()


def test_classes_too_many_for_the_posts_leave_a_split_empty_and_are_refused(tmp_path: Path) -> None:
    path = table(tmp_path / "t.csv", [f"label {i % 400}" for i in range(800)])
    line = assert_user_error(
        prepare_table(path, tmp_path / "out"), "would be empty", "--split none"
    )
    assert "400 classes" in line
    result = prepare_table(path, tmp_path / "out", "--split", "none")
    assert result.exit_code == 0, result.output


def test_a_few_thin_classes_are_a_warning() -> None:
    warning = check_class_sizes({"big": 100, "rare": 2}, [0.7, 0.2, 0.1])
    assert warning is not None and "'rare': 2, none in test" in warning
    assert check_class_sizes({"a": 100, "b": 100}, [0.7, 0.2, 0.1]) is None
    assert check_class_sizes({"a": 3}, [0.7, 0.2, 0.1]) is None  # too few posts at all


def test_max_classes_is_a_setting(tmp_path: Path) -> None:
    path = table(tmp_path / "t.csv", ["a", "b", "c"] * 20)
    result = prepare_table(path, tmp_path / "out", "--max-classes", "2")
    assert_user_error(result, "more than 2 distinct labels")


def test_distribution_columns_keep_the_labels_their_names_spell(tmp_path: Path) -> None:
    path = tmp_path / "soft.csv"
    rows = "".join(f"p{i},post {i},{i % 2},{1 - i % 2}\n" for i in range(40))
    path.write_text("id,text,01,2\n" + rows)
    result = invoke(
        "prepare", "table", path, "--out", tmp_path / "out", "--text-column", "text",
        "--id-column", "id", "--label-distribution-columns", "01,2", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    dataset = PreparedDataset.load(tmp_path / "out")
    assert dataset.labels == ["01", "2"]
    assert set(dataset.examples["label"]) == {"01", "2"}
