"""How much do images add: numbers on a hand-made example whose answers are worked out by
hand, and the agreement categories on the real MVSA-Single annotations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentimodal.analysis.modality import (
    AGREE,
    ALL_DISAGREEING,
    IMAGE_BROKE,
    IMAGE_FIXED,
    IMAGE_POLAR,
    OPPOSITE,
    STILL_WRONG,
    TEXT_POLAR,
    UNKNOWN,
    add_modality_analysis,
    agreement_category,
    analyse_modalities,
)
from sentimodal.analysis.report import Report

LABELS = ["negative", "neutral", "positive"]
NEG, NEU, POS = LABELS
# id, truth, text annotation, image annotation, text-only, image-only, fused prediction
POSTS = [
    ("p0", POS, POS, POS, POS, POS, POS),
    ("p1", POS, POS, POS, POS, NEG, POS),
    ("p2", NEG, NEG, NEG, NEU, NEG, NEG),  # image fixed it
    ("p3", POS, POS, NEU, POS, NEU, POS),  # text polar, fused follows text
    ("p4", NEG, NEG, NEU, NEG, NEU, NEU),  # text polar, follows image: image broke it
    ("p5", POS, NEU, POS, NEU, POS, POS),  # image polar, follows image: fixed
    ("p6", NEG, NEU, NEG, NEU, NEG, NEG),  # image polar, follows image: fixed
    ("p7", POS, NEU, POS, NEU, NEU, NEU),  # image polar, follows text, unchanged
    ("p8", NEU, NEU, NEU, POS, NEU, NEG),  # agree, changed but still wrong
    ("p9", POS, POS, NEG, POS, NEG, POS),  # opposite annotations, follows text
]
COLUMNS = ["id", "label", "text_label", "image_label", "text_only", "image_only", "fused"]


@pytest.fixture
def posts() -> pd.DataFrame:
    frame = pd.DataFrame(POSTS, columns=COLUMNS)
    frame["text"] = "post " + frame["id"]
    frame["image"] = None
    return frame


def analyse(frame: pd.DataFrame, columns: dict[str, str] | None = None):
    return analyse_modalities(
        frame["label"],
        frame["text_only"],
        frame["image_only"],
        frame["fused"],
        LABELS,
        text_label=frame["text_label"],
        image_label=frame["image_label"],
        ids=frame["id"],
        texts=frame["text"],
        images=frame["image"],
    )


def test_accuracy_of_each_modality(posts: pd.DataFrame) -> None:
    result = analyse(posts).accuracy.set_index("model")
    assert result.loc["text only", "accuracy"] == pytest.approx(0.5)
    assert result.loc["image only", "accuracy"] == pytest.approx(0.5)
    assert result.loc["fused", "accuracy"] == pytest.approx(0.7)
    # fused: F1 positive 10/11, negative 2/3, neutral 0
    assert result.loc["fused", "macro_f1"] == pytest.approx((10 / 11 + 2 / 3) / 3)


def test_class_indices_give_the_same_answers(posts: pd.DataFrame) -> None:
    coded = posts.copy()
    for column in ["label", "text_label", "image_label", "text_only", "image_only", "fused"]:
        coded[column] = coded[column].map(LABELS.index)
    by_index, by_name = analyse(coded), analyse(posts)
    pd.testing.assert_frame_equal(by_index.accuracy, by_name.accuracy)
    pd.testing.assert_frame_equal(by_index.following, by_name.following)


def test_accuracy_by_agreement(posts: pd.DataFrame) -> None:
    table = analyse(posts).by_agreement.set_index("agreement")
    assert list(table.index) == [AGREE, TEXT_POLAR, IMAGE_POLAR, OPPOSITE]
    assert table["posts"].tolist() == [4, 2, 3, 1]
    assert table["fused"].tolist() == pytest.approx([0.75, 0.5, 2 / 3, 1.0])
    assert table["text only"].tolist() == pytest.approx([0.5, 1.0, 0.0, 1.0])


def test_who_is_right_and_who_is_followed(posts: pd.DataFrame) -> None:
    analysis = analyse(posts)
    truth = analysis.truth.set_index("agreement")
    assert truth.loc[TEXT_POLAR, "label = text label"] == 1.0
    assert truth.loc[IMAGE_POLAR, "label = image label"] == 1.0
    assert truth.loc[ALL_DISAGREEING, "label = text label"] == pytest.approx(0.5)
    fused = analysis.following[analysis.following["model"] == "fused"].set_index("agreement")
    assert fused.loc[TEXT_POLAR, ["follows text", "follows image"]].tolist() == [0.5, 0.5]
    assert fused.loc[IMAGE_POLAR, "follows image"] == pytest.approx(2 / 3)
    assert fused.loc[OPPOSITE, "follows text"] == 1.0
    assert fused.loc[ALL_DISAGREEING, "posts"] == 6
    assert fused.loc[ALL_DISAGREEING, "follows neither"] == 0.0


def test_posts_the_image_changed(posts: pd.DataFrame) -> None:
    analysis = analyse(posts)
    outcome = dict(zip(analysis.changed["id"], analysis.changed["outcome"], strict=True))
    assert outcome == {
        "p2": IMAGE_FIXED,
        "p4": IMAGE_BROKE,
        "p5": IMAGE_FIXED,
        "p6": IMAGE_FIXED,
        "p8": STILL_WRONG,
    }
    assert analysis.summary[IMAGE_FIXED] == 3 and analysis.summary[IMAGE_BROKE] == 1
    assert analysis.summary["fused minus text only"] == pytest.approx(0.2)
    row = analysis.changed.set_index("id").loc["p4"]
    assert (row["text"], row["text only"], row["fused"]) == ("post p4", NEG, NEU)


def test_unknown_labels_are_refused(posts: pd.DataFrame) -> None:
    posts.loc[0, "fused"] = "joy"
    with pytest.raises(ValueError, match="joy"):
        analyse(posts)


def test_report_section_shows_examples(posts: pd.DataFrame, tmp_path: Path) -> None:
    report = add_modality_analysis(Report("modality"), analyse(posts), gates={"text": [0.2, 0.9]})
    text = report.write(tmp_path).markdown.read_text(encoding="utf-8")
    assert "image only **0.500**, and the fused model **0.700**" in text
    assert "3 fixed, 1 broken, 1 changed but still wrong" in text
    assert "Posts where the image fixed it (3 of 3)" in text
    assert "| (no image) | p4 | post p4 | negative | negative | neutral |" in text
    assert len(list((tmp_path / "report_files").glob("*.png"))) == 2  # agreement + gates


def test_agreement_categories_on_real_mvsa(mvsa_root: Path) -> None:
    """The README's counts of MVSA-Single label pairs, grouped by agreement."""
    table = pd.read_csv(mvsa_root / "labelResultAll.txt", sep="\t")
    pairs = table["text,image"].str.split(",", expand=True)
    counts = pd.Series(agreement_category(pairs[0], pairs[1])).value_counts().to_dict()
    assert counts == {
        AGREE: 1188 + 615 + 400,
        IMAGE_POLAR: 876 + 358,
        TEXT_POLAR: 217 + 181,
        OPPOSITE: 238 + 66,
    }


def test_missing_annotations_are_their_own_category() -> None:
    categories = agreement_category(["positive", None, "neutral"], ["positive", "neutral", np.nan])
    assert categories.tolist() == [AGREE, UNKNOWN, UNKNOWN]
