"""Reading stored features back: the folder extracted from these very examples, by split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sentimodal.errors import UserInputError
from sentimodal.features.folder import FEATURES_DIR, KINDS, META_FILE, FeatureFolder, FeatureSet
from sentimodal.features.keys import examples_fingerprint
from sentimodal.preparation.dataset import PreparedDataset, as_dataset, image_or_none


def find_feature_folder(
    data: PreparedDataset,
    kind: str,
    name: str,
    config: dict[str, Any] | None = None,
    stored_dtype: str | None = None,
) -> FeatureFolder:
    """The complete folder of ``kind``/``name`` extracted from these very examples.

    ``config`` narrows the choice to folders whose encoder config contains those items; when
    several folders still match, the caller must say which.
    """
    if kind not in KINDS:
        raise UserInputError(f"unknown feature kind {kind!r}: choose one of {', '.join(KINDS)}")
    if data.root is None:
        raise UserInputError("the dataset has no directory, so it has no stored features")
    ids = data.examples["id"].astype(str).tolist()
    if kind == "image":
        contents: list[str | None] = [image_or_none(v) for v in data.examples["image"].tolist()]
    else:
        contents = list(data.texts())
    fingerprint = examples_fingerprint(ids, contents)
    found = [
        FeatureFolder(p)
        for p in sorted((Path(data.root) / FEATURES_DIR / kind).glob(f"{name}-*"))
        if (p / META_FILE).is_file()
    ]
    found = [f for f in found if f.complete and f.meta.get("name") == name]
    current = [f for f in found if f.meta.get("examples_fingerprint") == fingerprint]
    wanted = [
        f
        for f in current
        if all(f.meta["config"].get(k) == v for k, v in (config or {}).items())
        and (stored_dtype is None or f.meta["dtype"] == stored_dtype)
    ]
    command = f"sentimodal features {data.root} --{kind} {name}"
    if not wanted:
        if found and not current:
            raise UserInputError(
                f"the {kind} features {name!r} were extracted from other examples; run: {command}"
            )
        raise UserInputError(f"no {kind} features {name!r} with these settings; run: {command}")
    if len(wanted) > 1:
        choices = "; ".join(
            f"{f.path.name}: config={f.meta['config']} dtype={f.meta['dtype']}" for f in wanted
        )
        raise UserInputError(f"several {kind} features {name!r} match, pass config= ({choices})")
    return wanted[0]


def load_features(
    dataset_dir: PreparedDataset | str | Path,
    kind: str,
    name: str,
    split: str | None = None,
    config: dict[str, Any] | None = None,
    *,
    dtype: str | None = None,
    stored_dtype: str | None = None,
) -> FeatureSet:
    """Stored features of one split (or all examples), ordered as in examples.parquet.

    Examples without features (no image, empty text, rejected image) are absent from ``ids``.
    Float features come back as float32 whatever the storage, unless ``dtype`` is given.
    """
    data = as_dataset(dataset_dir)
    features = find_feature_folder(data, kind, name, config, stored_dtype).read(dtype)
    if split is None:
        return features
    wanted = set(data.split(split)["id"].astype(str))
    return features.select([id_ for id_ in features.ids if id_ in wanted])


def aligned(
    dataset_dir: PreparedDataset | str | Path,
    image: str,
    text: str,
    split: str | None = None,
    image_config: dict[str, Any] | None = None,
    text_config: dict[str, Any] | None = None,
    *,
    dtype: str | None = None,
) -> tuple[FeatureSet, FeatureSet]:
    """Image and text features of the examples that have both, row for row (for fusion)."""
    data = as_dataset(dataset_dir)
    images = load_features(data, "image", image, split, image_config, dtype=dtype)
    texts = load_features(data, "text", text, split, text_config, dtype=dtype)
    in_text = set(texts.ids)
    common = [i for i in images.ids if i in in_text]
    return images.select(common), texts.select(common)
