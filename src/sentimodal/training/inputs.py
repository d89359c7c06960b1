"""What the estimator's methods read: a dataset from whatever they were given, its features,
and the model inputs of one split.

``fit`` and ``predict`` take a prepared dataset, its folder, a DataFrame or scikit-learn's lists
of posts; all become a :class:`PreparedDataset`, whose features the store extracts once and
caches, and whose rows become the modality-keyed arrays a network reads.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentimodal.devices import resolve_device
from sentimodal.errors import RecordError, UserInputError
from sentimodal.features.folder import FeatureFolder, FeatureSet
from sentimodal.features.image_encoders import get_image_encoder
from sentimodal.features.image_encoders.base import ImageEncoder
from sentimodal.features.model_inputs import Scaler, model_inputs
from sentimodal.features.store import ExtractionResult, extract_features
from sentimodal.features.text_encoders import get_text_encoder
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.label_set import canonical_label, is_missing
from sentimodal.sources.table import cell_text
from sentimodal.training.run_config import RunConfig

DatasetLike = PreparedDataset | str | Path | pd.DataFrame
#: scikit-learn style inputs: texts (or image paths) one per post
PostsLike = Sequence[str] | np.ndarray | pd.Series
#: the split name meaning every example of a dataset
ALL = "all"
#: temporary folders of DataFrames given to fit/predict, kept until the process ends (the
#: datasets made in them are read again by later calls)
_WORK_FOLDERS: list[tempfile.TemporaryDirectory[str]] = []


@dataclass
class SplitInputs:
    """Model inputs of the examples that have every needed modality, in dataset order."""

    ids: list[str]
    data: dict[str, np.ndarray]
    #: every asked-for id, in order (``ids`` and the missing ones)
    wanted: list[str]
    #: id -> why it has no input: a needed modality has no features (no image, empty text,
    #: an image rejected at extraction)
    missing: dict[str, str]
    #: id -> the modalities its prediction reads ("text+image", or the one a fusion fell
    #: back to)
    modalities: dict[str, str]


def posts_table(
    data: DatasetLike | PostsLike, y: Sequence[Any] | None, label_column: str, run: RunConfig
) -> DatasetLike:
    """scikit-learn's (X, y): a DataFrame or a list of texts (image paths for an image
    model), with the labels as a column; a dataset given as such is kept. Anything else (a
    feature matrix, numbers where texts belong) is refused, saying what was given."""
    if isinstance(data, PreparedDataset | str | Path) and y is None:
        return data
    if isinstance(data, pd.DataFrame):
        table = data.copy()
    elif isinstance(data, list | tuple | np.ndarray | pd.Series):
        if run.uses_text and run.uses_image:
            raise UserInputError(
                f"the {run.model} model reads texts and images: give a DataFrame with "
                "'text' and 'image' columns, not a list"
            )
        kind = "text" if run.uses_text else "image"
        table = pd.DataFrame({kind: _post_list(data, kind)})
    else:
        raise UserInputError(
            "expected a prepared dataset, its directory, a DataFrame or a list of posts, "
            f"got {type(data).__name__}"
        )
    if y is not None:
        if len(y) != len(table):
            raise UserInputError(f"{len(table)} posts but {len(y)} labels")
        # labels as given: the dataset reads them (numbers by value, missing ones as none)
        table[label_column] = list(y)
    return table


def _post_list(data: Sequence[Any] | np.ndarray | pd.Series, kind: str) -> list[Any]:
    """A list of texts (or image paths) as the column it becomes: a 2-D array is a feature
    matrix, not posts, and an item that is not text is refused by position."""
    shape = getattr(data, "shape", None)
    if shape is not None and len(shape) != 1:
        raise UserInputError(
            f"expected a DataFrame of posts or a list of {kind}s, got an array of shape "
            f"{tuple(shape)}: sentimodal reads raw posts and extracts its own features"
        )
    items = list(data)
    for position, item in enumerate(items):
        if not (item is None or isinstance(item, str | bytes) or is_missing(item)):
            raise UserInputError(
                f"post {position} is not a {kind}: got {type(item).__name__} {_shown(item)}"
            )
    return items


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


#: the columns whose cells become text (the post's text, image reference, label)
CELL_COLUMNS = ("text", "image", "label")


def unreadable_rows(table: pd.DataFrame, columns: Sequence[str]) -> dict[int, str]:
    """{row position: why} for rows with a cell that is not text (bytes that are not UTF-8,
    a list or dict): the rows ``fit`` refuses and ``predict`` answers with an error."""
    bad: dict[int, str] = {}
    for column in columns:
        if column not in table.columns:
            continue
        for position, value in enumerate(table[column].tolist()):
            if position in bad:
                continue
            try:
                cell_text(value)
            except RecordError as exc:
                bad[position] = f"column {column!r}: {exc}"
    return bad


def blank_rows(
    table: pd.DataFrame, rows: Mapping[int, str], columns: Sequence[str]
) -> pd.DataFrame:
    """``table`` with the cells of ``rows`` emptied, so the others can be predicted."""
    table = table.copy()
    for column in columns:
        if column in table.columns:
            values = table[column].astype(object).tolist()
            for position in rows:
                values[position] = None
            table[column] = values
    return table


def screen_posts(posts: Iterable[Any]) -> list[Mapping[str, Any]]:
    """Raw posts as the records ``predict_posts`` reads: a string is a text-only post, and
    what is no post (a number, a list) or holds a cell that is not text becomes a record
    whose ``reject`` is the error of its prediction, so the others go on."""
    if isinstance(posts, str | bytes | Mapping):
        raise UserInputError(
            f"expected a list (or DataFrame) of posts, got one {type(posts).__name__}: "
            "wrap it in a list"
        )
    records: list[Mapping[str, Any]] = []
    for position, post in enumerate(posts):
        if isinstance(post, str):
            post = {"text": post}
        if not isinstance(post, Mapping):
            reason = (
                f"post {position} is not a post (a mapping with text and/or image, or a "
                f"text): got {type(post).__name__} {_shown(post)}"
            )
            records.append({"reject": reason})
            continue
        problems = []
        for column in ("id", "text", "image"):
            value = post.get(column)
            if column == "image" and not isinstance(value, str | bytes | type(None)):
                continue  # a decoded image (PIL) is read as it is
            try:
                cell_text(value)
            except RecordError as exc:
                problems.append(f"column {column!r}: {exc}")
        if problems:
            post_id = post.get("id") if isinstance(post.get("id"), str) else None
            records.append({"id": post_id, "reject": f"post {position}: {problems[0]}"})
            continue
        records.append({k: _decoded(v) for k, v in post.items()})
    return records


def _decoded(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def check_fit_rows(table: pd.DataFrame, columns: Sequence[str], label_column: str) -> None:
    """Refuse, before any work, a DataFrame ``fit`` cannot learn from as given: a row with an
    unreadable cell, or without a label (None, NaN, blank). One line names the rows; scikit-
    learn refuses missing targets too, and silently training on fewer rows would hide it."""
    bad = unreadable_rows(table, [*columns, label_column])
    if bad:
        position, reason = next(iter(bad.items()))
        raise UserInputError(
            f"fit: {len(bad):,} row(s) cannot be read, e.g. row {position} ({reason}); "
            "fix or drop them"
        )
    if label_column not in table.columns:
        return
    missing = [i for i, v in enumerate(table[label_column].tolist()) if not canonical_label(v)]
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise UserInputError(
            f"fit: {len(missing):,} of {len(table):,} rows have no label (None, NaN or blank): "
            f"rows {shown}; label them or drop them"
        )


def as_dataset(
    data: DatasetLike,
    text_columns: Sequence[str] = ("text",),
    image_column: str | None = "image",
    label_column: str | None = "label",
    work_dir: str | Path | None = None,
    split: tuple[float, ...] | None = None,
) -> PreparedDataset:
    """A prepared dataset from what ``fit``/``predict`` were given: kept as it is, loaded from its
    folder, or a DataFrame stored under ``work_dir`` (a temporary folder by default) so that its
    features are cached like any dataset's."""
    if isinstance(data, PreparedDataset):
        if data.root is None:
            return data.save(work_folder(work_dir))
        return data
    if isinstance(data, str | Path):
        return PreparedDataset.load(data)
    if isinstance(data, pd.DataFrame):
        has_label = label_column is not None and label_column in data.columns
        return PreparedDataset.from_dataframe(
            data,
            text_columns=[c for c in text_columns if c in data.columns],
            image_column=image_column if image_column in data.columns else None,
            label_column=label_column if has_label else None,
            split=split if has_label else None,
            root=work_folder(work_dir),
        )
    raise UserInputError(
        f"expected a prepared dataset, its directory or a DataFrame, got {type(data).__name__}"
    )


def work_folder(work_dir: str | Path | None) -> Path:
    if work_dir is not None:
        return Path(work_dir)
    folder = tempfile.TemporaryDirectory(prefix="sentimodal-")
    _WORK_FOLDERS.append(folder)
    return Path(folder.name)


def extract_run_features(
    run: RunConfig, dataset: PreparedDataset, *, progress: bool = True
) -> dict[str, ExtractionResult]:
    """Extract (or find in the cache) the features a run reads, with its encoders, their
    settings and its batch size and workers: what ``fit`` trains from."""
    return extract_features(
        dataset,
        image=run.image_encoder if run.uses_image else None,
        text=run.text_encoder if run.uses_text else None,
        image_config=run.image_encoder_config,
        text_config=run.text_encoder_config,
        batch_size=run.feature_batch_size,
        workers=run.feature_workers,
        progress=progress,
        engine=run.engine,
        ray_address=run.ray_address,
        device=run.device,
    )


def read_features(results: Mapping[str, ExtractionResult]) -> dict[str, FeatureSet]:
    return {kind: FeatureFolder(r.directory).read() for kind, r in results.items()}


def fit_encoders(
    run: RunConfig, dataset: PreparedDataset, progress: bool
) -> tuple[ImageEncoder | None, TextEncoder | None, dict[str, ExtractionResult]]:
    """Extract (or find) the dataset's features and keep the encoders that made them.

    A text encoder that learns (``tokens``) is fit on the train split by the store; the
    fitted state is read back from its feature folder so predictions use the same vocab.
    """
    results = extract_run_features(run, dataset, progress=progress)
    image = text = None
    device = resolve_device(run.device)
    if run.uses_image:
        image = get_image_encoder(run.image_encoder, **run.image_encoder_config).to(device)
    if run.uses_text:
        text = get_text_encoder(run.text_encoder, **run.text_encoder_config).to(device)
        if text.learns:
            text.load(results["text"].directory)
    return image, text, results


def prediction_inputs(
    dataset: PreparedDataset,
    split: str | None,
    run: RunConfig,
    image_encoder: ImageEncoder | None,
    text_encoder: TextEncoder | None,
    scaler: Scaler,
    progress: bool,
) -> SplitInputs:
    """Features of one split (None or "all": every example) with a fitted model's encoders,
    for the examples that have what it reads (a fusion: one of its modalities at least)."""
    results = extract_features(
        dataset,
        image=image_encoder if run.uses_image else None,
        text=text_encoder if run.uses_text else None,
        batch_size=run.feature_batch_size,
        workers=run.feature_workers,
        progress=progress,
    )
    return split_inputs(dataset, read_features(results), split, scaler, require=False, partial=True)


def split_inputs(
    dataset: PreparedDataset,
    sets: Mapping[str, FeatureSet],
    split: str | Sequence[str] | None,
    scaler: Scaler | None,
    *,
    require: bool = True,
    partial: bool = False,
) -> SplitInputs:
    """The rows of one split (or several, in order) from features already read, scaled by
    ``scaler`` when given. With ``require``, a split where no example has every input is
    an error (nothing to train or validate on). With ``partial`` (prediction), a fusion
    also takes the rows that have one of its modalities: it falls back to that one."""
    splits = [split] if split is None or isinstance(split, str) else list(split)
    wanted = [
        str(i)
        for name in splits
        for i in (dataset.examples if name in (None, ALL) else dataset.split(name))["id"]
    ]
    known = {kind: set(features.ids) for kind, features in sets.items()}
    # a fusion predicting falls back to one modality; training needs them all
    enough = len(sets) - 1 if partial and len(sets) > 1 else 0
    missing = {
        i: "no " + " and no ".join(f"{kind} input" for kind in lacking)
        for i in wanted
        if len(lacking := [kind for kind, have in known.items() if i not in have]) > enough
    }
    ids = [i for i in wanted if i not in missing]
    if require and not ids:
        name = "+".join(name or ALL for name in splits)
        raise UserInputError(
            f"{dataset.root}: no example of split {name!r} has every input "
            f"this model needs ({', '.join(sets)})"
        )
    parts = {
        kind: (features.ids, features.values, features.lengths) for kind, features in sets.items()
    }
    order = [kind for kind in ("text", "image") if kind in sets]
    modalities = {i: "+".join(kind for kind in order if i in known[kind]) for i in ids}
    return SplitInputs(ids, model_inputs(parts, ids, scaler), wanted, missing, modalities)


def label_indices(
    dataset: PreparedDataset, ids: Sequence[str], classes: Sequence[str]
) -> np.ndarray:
    """The labels of ``ids`` as indices into ``classes`` (the model's labels)."""
    labels = dataset.examples.set_index(dataset.examples["id"].astype(str))["label"]
    index = {label: i for i, label in enumerate(classes)}
    values = labels.loc[list(ids)].tolist()
    unknown = sorted({str(v) for v in values if v not in index})
    if unknown:
        raise UserInputError(
            f"{dataset.root}: labels {unknown} are not among the model's labels {list(classes)}"
        )
    return np.array([index[v] for v in values], dtype=np.int64)
