"""Numbers that would silently poison results (NaN, inf, conflicting duplicates) are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardening import assert_user_error, invoke
from sentimodal.analysis.label_space_check import read_anp_scores
from sentimodal.config import load_data
from sentimodal.errors import UserInputError
from sentimodal.sources.mvso import load_anp_scores
from sentimodal.training.train_config import TrainConfig


def scores_file(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "anp.csv"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_anp_scores_are_refused(tmp_path: Path, bad: str) -> None:
    path = scores_file(tmp_path, f"happy_dog,1.5\nsad_cat,{bad}\n")
    with pytest.raises(UserInputError, match=":2: score .* is not finite"):
        load_anp_scores(path)
    with pytest.raises(UserInputError, match="not finite"):
        read_anp_scores(path)


def test_duplicate_anp_with_another_score_is_refused(tmp_path: Path) -> None:
    path = scores_file(tmp_path, "happy_dog,1.5\nsad_cat,-1\nHappy Dog,0.2\n")
    with pytest.raises(UserInputError, match=r":3: ANP 'Happy Dog' is listed again"):
        load_anp_scores(path)


def test_duplicate_anp_with_the_same_score_is_kept_once(tmp_path: Path) -> None:
    path = scores_file(tmp_path, "happy_dog,1.5\nhappy_dog,1.5\nsad_cat,-1\n")
    assert load_anp_scores(path) == {"happy_dog": 1.5, "sad_cat": -1.0}
    assert len(read_anp_scores(path)) == 2


def test_bom_in_the_scores_csv_keeps_the_first_anp(tmp_path: Path) -> None:
    path = scores_file(tmp_path, "\ufeffhappy_dog,1.5\nsad_cat,-1\n".encode())
    assert load_anp_scores(path) == {"happy_dog": 1.5, "sad_cat": -1.0}
    assert read_anp_scores(path)["anp"].tolist() == ["happy_dog", "sad_cat"]


def test_latin1_scores_csv_is_one_line(tmp_path: Path) -> None:
    path = scores_file(tmp_path, "caf\xe9_noir,1.5\n".encode("latin-1"))
    with pytest.raises(UserInputError, match="not UTF-8"):
        load_anp_scores(path)
    result = invoke("zeroshot", "anp", "--anp-scores", path, "--out", tmp_path / "z")
    assert_user_error(result, "not UTF-8")


@pytest.mark.parametrize("text", ["lr: .inf", "lr: .nan", "momentum: -.inf"])
def test_non_finite_config_numbers_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text + "\n")
    with pytest.raises(UserInputError, match="finite"):
        load_data(path)
    with pytest.raises(ValueError, match="finite"):
        TrainConfig(lr=float("inf"))


def test_anp_thresholds_must_be_finite(tmp_path: Path) -> None:
    path = scores_file(tmp_path, "happy_dog,1.5\n")
    result = invoke(
        "prepare", "mvso", tmp_path, "--out", tmp_path / "d", "--anp-scores", path,
        "--anp-positive", "nan", "--quiet",
    )  # fmt: skip
    assert_user_error(result, "anp_positive")
