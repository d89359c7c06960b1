"""The report's calibration section and the explanations beside the posts the image fixed
or broke."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentimodal.analysis.calibration_report import add_calibration_section
from sentimodal.analysis.explained_posts import SHARES, WORDS
from sentimodal.analysis.model_report import add_modality_section, model_report
from sentimodal.analysis.report import Report
from sentimodal.preparation.dataset import PreparedDataset
from test_analysis_report import check_html
from test_model_report import fit, small_dataset  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_report_shows_calibration_before_and_after(
    small_dataset: PreparedDataset,  # noqa: F811
    tmp_path: Path,
) -> None:
    model = fit(small_dataset, model="concat")
    record = model.calibration_
    assert record is not None
    paths = model_report(model, small_dataset).write(tmp_path)
    markdown = paths.markdown.read_text(encoding="utf-8")
    assert "## Calibration" in markdown and f"T = **{record.temperature:.3f}**" in markdown
    assert "val (before temperature scaling)" in markdown and "test (as served)" in markdown
    assert "reliability" in markdown
    check_html(paths.html.read_text(encoding="utf-8"))


def test_embedding_report_says_calibration_does_not_apply(
    small_dataset: PreparedDataset,  # noqa: F811
    tmp_path: Path,
) -> None:
    model = fit(small_dataset, model="text", head="embedding")
    assert model.calibration_ is None
    report = Report("r")
    markdown = add_calibration_section(report, model, {}).to_markdown()
    assert "cosine similarities" in markdown


def test_posts_the_image_fixed_or_broke_show_their_explanations(
    small_dataset: PreparedDataset,  # noqa: F811
    tmp_path: Path,
) -> None:
    text, image = fit(small_dataset, model="text"), fit(small_dataset, model="image")
    fused = fit(small_dataset, model="concat")
    report = Report("modalities")
    analysis = add_modality_section(report, text, image, fused, small_dataset, max_examples=3)
    if analysis.changed.empty:
        pytest.skip("the image changed no prediction here")
    markdown = report.write(tmp_path).markdown.read_text(encoding="utf-8")
    assert SHARES in markdown and WORDS in markdown
    assert ".png)" in markdown  # the heatmap thumbnails
