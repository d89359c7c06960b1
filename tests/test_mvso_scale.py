"""MVSO at scale: XML parsed in a process pool gives exactly what one process gives, and the
on-disk balancing and splitting give exactly the splits, ids, labels and rejects that the
in-memory implementation gave (digests recorded from it on the corpus built here)."""

from __future__ import annotations

import csv
import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentimodal.pool import ordered_map
from sentimodal.preparation.balancing import downsample_to_smallest
from sentimodal.preparation.pipeline import prepare
from sentimodal.preparation.splits import assign_splits
from sentimodal.sources.mvso import load_anp_scores, read_mvso
from test_sources_mvso import photo_xml

#: positive, negative and (within +-0.035) neutral ANPs of the real table, one unknown ANP
FOLDERS = ("nice_smile", "infinite_sadness", "old_books", "zzz_not_an_anp")
WEIGHTS = (5, 3, 2, 0.2)


def build_scale_corpus(root: Path, n: int = 400, seed: int = 1) -> Path:
    """``n`` photo XML files in ANP folders, ids shuffled against file order, with broken
    files, failed responses and ids repeated in a later folder (duplicates)."""
    rng = random.Random(seed)
    ids = rng.sample(range(10**6, 10**7), n)
    for folder in FOLDERS:
        (root / folder).mkdir(parents=True)
    for i, photo_id in enumerate(ids):
        folder = root / rng.choices(FOLDERS, WEIGHTS)[0]
        if i % 37 == 5:
            text = f'<rsp stat="ok"><photo id="{photo_id}"><title>cut off'
        elif i % 53 == 7:
            text = '<rsp stat="fail"><err code="1" msg="Photo not found"/></rsp>'
        else:
            words = " ".join(rng.choice(["sun", "rain", "old", "book"]) for _ in range(4))
            text = photo_xml(str(photo_id), words, f"about {words}", (("Tag A", "taga"),))
        (folder / f"{photo_id}.xml").write_text(text)
    # the same photo ids again, in a folder read after the others: the second ones are rejected
    (root / "sunny_day").mkdir()
    for photo_id in ids[:: max(1, n // 10)]:
        (root / "sunny_day" / f"dup{photo_id}.xml").write_text(photo_xml(str(photo_id), "again"))
    return root


def dataset_digest(out: Path, root: Path) -> str:
    """What a prepared dataset says, independent of the folder it was built from: sorted
    (id, label, split) rows, sorted rejects, and the counts of dataset.json."""
    examples = pd.read_parquet(out / "examples.parquet", columns=["id", "label", "split"])
    rows = sorted(map(tuple, examples.to_numpy().tolist()))
    with open(out / "rejects.csv", newline="", encoding="utf-8") as handle:
        rejects = sorted(
            (r["id"], r["location"].replace(str(root), "ROOT"), r["reason"])
            for r in csv.DictReader(handle)
        )
    info = json.loads((out / "dataset.json").read_text())
    summary = [info["labels"], info["counts"], info["n_examples"], info["n_rejects"]]
    text = json.dumps([rows, rejects, summary])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_scale_corpus(tmp_path_factory.mktemp("mvso-scale") / "root")


@pytest.fixture(scope="module")
def scores(shared_data: Path) -> Path:
    return shared_data / "ontologies" / "mvso_english_anp_sentiment.csv"


#: digests of the outputs of the in-memory implementation (commit 75d5e28) on this corpus
KNOWN = [
    ({"balance": False, "seed": 0, "parse_workers": 1}, "ac6b9987243129ee"),
    ({"balance": False, "seed": 0, "parse_workers": 2}, "ac6b9987243129ee"),
    ({"balance": True, "seed": 0, "parse_workers": 2}, "3f8016bd242138e2"),
    ({"balance": True, "seed": 5, "split": "0.6,0.4", "parse_workers": 1}, "be13032eef57fb4a"),
    ({"balance": False, "seed": 3, "split": "none", "parse_workers": 2}, "b002c4340780a9ed"),
]


@pytest.mark.parametrize(("options", "digest"), KNOWN)
def test_splits_ids_labels_rejects_as_known(
    corpus: Path, scores: Path, tmp_path: Path, options: dict, digest: str
) -> None:
    out = tmp_path / "out"
    prepare("mvso", corpus, out, anp_scores=str(scores), progress=False, **options)
    assert dataset_digest(out, corpus) == digest
    assert not list(out.glob(".staging-*"))  # the ids table and row spill are gone


def test_parsing_in_processes_gives_the_same_records_in_the_same_order(
    corpus: Path, scores: Path
) -> None:
    table = load_anp_scores(scores)
    one = list(read_mvso(corpus, table, workers=1))
    two = list(read_mvso(corpus, table, workers=2))
    assert len(one) == 410 and two == one
    assert {type(r).__name__ for r in one} == {"Post", "Reject"}


def _square_all(chunk: list[int]) -> list[int]:
    if 13 in chunk:
        raise ValueError("13 is not welcome")
    return [x * x for x in chunk]


def test_ordered_map_keeps_order_with_a_small_window_and_stops_cleanly() -> None:
    items = [x for x in range(1000) if x != 13]
    squares = ordered_map(_square_all, items, workers=2, chunk_size=7, window=2)
    assert list(squares) == [x * x for x in items]
    partial = ordered_map(_square_all, items, workers=2, chunk_size=3, window=3)
    assert [next(partial) for _ in range(5)] == [0, 1, 4, 9, 16]
    partial.close()  # cancels what has not started, waits for the rest
    with pytest.raises(ValueError, match="13 is not welcome"):
        list(ordered_map(_square_all, range(100), workers=2, chunk_size=4))


@pytest.mark.parametrize("balance", [False, True])
def test_on_disk_balancing_and_splits_equal_the_in_memory_functions(
    tmp_path: Path, balance: bool
) -> None:
    """Ids whose byte order could differ from string order if it were done wrong: prefixes,
    accents, CJK, emoji, digits of different lengths."""
    rng = random.Random(4)
    stems = ["a", "ab", "Ab", "b", "é", "é", "中文", "😀", "z", "10", "9", "-", "ÿ", "Ā"]
    ids = [f"{rng.choice(stems)}{rng.choice(stems)}{i}" for i in range(600)]
    labels = [rng.choice("ppppnnu") for _ in ids]
    path = tmp_path / "posts.csv"
    pd.DataFrame({"id": ids, "text": ["some words"] * len(ids), "label": labels}).to_csv(
        path, index=False
    )
    out = tmp_path / "out"
    options = {"text_columns": ["text"], "label_column": "label", "id_column": "id"}
    prepare("table", path, out, progress=False, balance=balance, seed=11, **options)
    examples = pd.read_parquet(out / "examples.parquet").set_index("id")
    keep = np.ones(len(ids), dtype=bool)
    if balance:
        keep = downsample_to_smallest(ids, labels, seed=11)
    kept_ids = [x for x, k in zip(ids, keep, strict=True) if k]
    assert sorted(examples.index) == sorted(kept_ids)
    expected = assign_splits(kept_ids, list(np.asarray(labels)[keep]), seed=11)
    assert examples.loc[kept_ids, "split"].tolist() == expected.tolist()
