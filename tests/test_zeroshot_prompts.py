"""Zero-shot protocols scoring labels by prompt in a clip: model's joint space."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import hub_models
from sentimodal.analysis.zeroshot import run_generalised_zero_shot
from sentimodal.analysis.zeroshot.unseen_class import UnseenClassConfig, run_unseen_class
from sentimodal.errors import UserInputError
from sentimodal.interfaces.cli import app
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.run_config import RunConfig

TEMPLATE = "a post that feels {label}"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hub_models.tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    """A few posts of each label in each split of the embedded MVSA sample."""
    sample = prepare("mvsa", sample_path(), tmp_path_factory.mktemp("sample"), progress=False)
    small = sample.examples.groupby(["split", "label"], group_keys=False).head(8)
    return PreparedDataset.from_examples(small, tmp_path_factory.mktemp("small"))


def clip_run(clip_dir: Path) -> RunConfig:
    return RunConfig(
        model="text",
        head="embedding",
        text_encoder=f"clip:{clip_dir}",
        train={"epochs": 2, "patience": None, "seed": 0},
        feature_workers=0,
    )


def _prompt_labels(clip_dir: Path, dataset: PreparedDataset, split: str) -> np.ndarray:
    """What the prompts say, from a model trained on every label: prompt scores do not
    depend on the labels a model was trained on."""
    model = SentimentModel(clip_run(clip_dir)).fit(dataset, progress=False)
    model.set_labels(dataset.labels, template=TEMPLATE)
    return np.asarray(model.classes_, dtype=object)[model.predict_proba(dataset, split).argmax(1)]


def test_the_unseen_class_protocol_scores_labels_by_prompt(clip_dir, dataset) -> None:
    config = UnseenClassConfig(
        run=clip_run(clip_dir),
        label_sources=["glove_6b_50d"],
        losses=["cosine"],
        supervised=False,
        prompts=TEMPLATE,
    )
    result = run_unseen_class(dataset, config, progress=False)
    rows = result.table[result.table["label_source"] == f"prompts: {TEMPLATE}"]
    assert len(rows) == 4  # the four decision rules on prompt scores
    plain = rows[rows["method"] == "zero-shot, no calibration"].iloc[0]
    predicted = _prompt_labels(clip_dir, dataset, "test")
    truth = dataset.split("test")["label"].astype(str).to_numpy()
    assert plain["accuracy"] == pytest.approx(float((predicted == truth).mean()))
    unseen = truth == config.unseen
    assert plain["unseen_accuracy"] == pytest.approx(float((predicted[unseen] == "neutral").mean()))


def test_the_generalised_protocol_adds_prompts_as_a_source(clip_dir, dataset) -> None:
    result = run_generalised_zero_shot(
        dataset, [["neutral"]], clip_run(clip_dir), ["glove_6b_50d"], prompts=TEMPLATE
    )
    sources = set(result.rows["label_source"])
    assert f"prompts: {TEMPLATE}" in sources
    prompt_rows = result.rows[result.rows["label_source"] == f"prompts: {TEMPLATE}"]
    # no supervised reference: a prompt's score does not depend on the labels trained on
    assert set(prompt_rows["method"]) == {"zero-shot", "zero-shot, calibrated stacking"}


def test_prompts_need_clip_encoders_and_a_label_slot(clip_dir, dataset, tmp_path) -> None:
    glove = clip_run(clip_dir).model_copy(update={"text_encoder": "glove_mean"})
    with pytest.raises(UserInputError, match="clip: encoders"):
        run_generalised_zero_shot(
            dataset, [["neutral"]], glove, ["glove_6b_50d"], prompts="{label}"
        )
    with pytest.raises(ValueError, match="has no \\{label\\}"):
        UnseenClassConfig(run=clip_run(clip_dir), prompts="a photo")
    result = CliRunner().invoke(
        app,
        ["zeroshot", "unseen", str(dataset.root), "--out", str(tmp_path / "z"),
         "--text-encoder", "glove_mean", "--prompts", "a {label} post"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "clip: encoders" in result.output and "Traceback" not in result.output
