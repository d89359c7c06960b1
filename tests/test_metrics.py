"""Metrics on hand-computed examples, and against scikit-learn on random ones."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from sentimodal.errors import UserInputError
from sentimodal.evaluation import (
    accuracy,
    classification_report,
    confusion_matrix,
    macro_f1,
    majority_baseline,
    per_class_accuracy,
    weighted_f1,
)

LABELS = ["negative", "neutral", "positive"]
TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
PRED = [0, 0, 1, 1, 2, 2, 2, 2, 0, 1]


def test_hand_computed_example():
    # rows = true, columns = predicted
    expected = [[2, 1, 0], [0, 1, 1], [1, 1, 3]]
    assert confusion_matrix(TRUE, PRED, LABELS).tolist() == expected
    assert accuracy(TRUE, PRED, LABELS) == pytest.approx(6 / 10)
    assert per_class_accuracy(TRUE, PRED, LABELS) == pytest.approx(
        {"negative": 2 / 3, "neutral": 1 / 2, "positive": 3 / 5}
    )
    # precision: 2/3, 1/3, 3/4; recall: 2/3, 1/2, 3/5
    f1 = [2 / 3, 2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2), 2 * (3 / 4) * (3 / 5) / (3 / 4 + 3 / 5)]
    assert macro_f1(TRUE, PRED, LABELS) == pytest.approx(sum(f1) / 3)
    assert weighted_f1(TRUE, PRED, LABELS) == pytest.approx(
        (3 * f1[0] + 2 * f1[1] + 5 * f1[2]) / 10
    )


def test_report_is_json_ready_and_accepts_label_names():
    names_true = [LABELS[i] for i in TRUE]
    names_pred = [LABELS[i] for i in PRED]
    report = classification_report(names_true, names_pred, LABELS, y_train=[0, 1, 1, 1])
    assert json.loads(json.dumps(report)) == report
    assert report["labels"] == LABELS
    assert report["confusion"] == [[2, 1, 0], [0, 1, 1], [1, 1, 3]]
    assert report["accuracy"] == pytest.approx(0.6)
    assert report["macro_f1"] == pytest.approx(macro_f1(TRUE, PRED, LABELS))
    assert report["weighted_f1"] == pytest.approx(weighted_f1(TRUE, PRED, LABELS))
    assert report["per_class"]["neutral"] == pytest.approx(0.5)
    assert report["support"] == {"negative": 3, "neutral": 2, "positive": 5}
    assert report["n"] == 10
    # the majority label of the *training* labels, scored on these true labels
    assert report["majority_baseline"] == {"label": "neutral", "accuracy": pytest.approx(0.2)}


def test_agrees_with_scikit_learn():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, 500)
    pred = np.where(rng.random(500) < 0.6, true, rng.integers(0, 4, 500))
    labels = ["a", "b", "c", "d"]
    report = classification_report(true, pred, labels)
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(true, pred))
    assert report["macro_f1"] == pytest.approx(skm.f1_score(true, pred, average="macro"))
    assert report["weighted_f1"] == pytest.approx(skm.f1_score(true, pred, average="weighted"))
    assert report["confusion"] == skm.confusion_matrix(true, pred).tolist()
    recall = skm.recall_score(true, pred, average=None)
    assert list(report["per_class"].values()) == pytest.approx(list(recall))


def test_labels_absent_from_the_split():
    labels = ["a", "b", "c"]
    true, pred = ["a", "a", "b", "b"], ["a", "b", "b", "b"]
    report = classification_report(true, pred, labels)
    assert report["per_class"]["c"] is None
    # undefined figures are null, never a made-up 0, and they survive JSON
    assert report["per_class_f1"]["c"] is None and report["per_class_precision"]["c"] is None
    assert json.loads(json.dumps(report))["per_class_f1"]["c"] is None
    # macro-F1 averages the labels that occur (as scikit-learn does without labels=)
    assert report["macro_f1"] == pytest.approx(skm.f1_score(true, pred, average="macro"))
    assert report["confusion"][2] == [0, 0, 0]


def test_majority_baseline_and_bad_inputs():
    assert majority_baseline(TRUE, LABELS) == {"label": "positive", "accuracy": 0.5}
    with pytest.raises(UserInputError, match="not among"):
        accuracy(["negative", "happy"], ["negative", "neutral"], LABELS)
    with pytest.raises(UserInputError, match="predictions"):
        accuracy([0, 1], [0, 1, 2], LABELS)
    with pytest.raises(UserInputError, match=r"\[0, 3\)"):
        accuracy([0, 3], [0, 1], LABELS)
    with pytest.raises(UserInputError, match="no examples"):
        accuracy([], [], LABELS)
