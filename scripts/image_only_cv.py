"""Image-only classifiers on frozen CNN features, compared by k-fold cross-validation.

For each feature set (one image encoder, ``encoder@flip`` for its features averaged with the
mirror image's, ``encoder@levels`` for its multi-level features, both as
``encoder@levels@flip``, ``encoder@r320`` for another input resolution (EfficientNet-Lite),
or several joined with "+": their stored features concatenated) and each fold (stratified,
seeded, as ``sentimodal crossval`` cuts them; a stratified tenth of the training folds
validates), this fits:

- ``majority``: the most frequent training label;
- ``logreg``: the project's logistic-regression baseline (``analysis.crossval``: standardised
  features, C in 0.001 / 0.01 / 0.1 / 1 chosen on the validation tenth);
- ``linear``: the image recipe's classifier (``SentimentModel(model="image")`` on exactly the
  named features: the encoder settings are given, so not the recipe's ``levels`` default): a
  linear softmax layer, L2 chosen by 5-fold CV on the training folds; for a concatenation,
  the same solver (``training.linear_fit``) on the concatenated standardised features;
- ``mlp``: the previous default (``SentimentModel(model="image_mlp")``, one encoder only).

Features are read from each dataset's feature store (extract them first with
``sentimodal features DIR --image ENCODER --text none``). Writes one row per (model, fold)
with accuracy, macro-F1, weighted-F1, each class's F1, seconds and the chosen C, and prints
the mean ± std table. ``--splits train,val`` keeps only those posts (a prepared dataset's
test split left out).

    python scripts/image_only_cv.py runs/e6-folder --features efficientnet_lite0 \\
        --models majority,logreg,linear,mlp --out runs/image-only/e6.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sentimodal.analysis.crossval import (
    FIGURES,
    fold_dataset,
    fold_of,
    logistic_regression,
    mean_std_table,
    summarise,
)
from sentimodal.analysis.report import markdown_table
from sentimodal.evaluation.metrics import classification_report
from sentimodal.features.folder import FeatureFolder
from sentimodal.features.store import extract_features
from sentimodal.models.config import LinearConfig
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.linear_fit import fit_linear
from sentimodal.training.run_config import RunConfig

MODELS = ("majority", "logreg", "linear", "mlp")


OPTIONS = ("flip", "levels")


def encoder_of(name: str) -> tuple[str, dict[str, bool | int]]:
    """``efficientnet_lite0@flip`` / ``@levels`` / ``@levels@flip`` / ``@r320`` -> the encoder
    and its settings (flip averaging, multi-level features, input resolution)."""
    encoder, *options = name.split("@")
    config: dict[str, bool | int] = {}
    for option in options:
        if option in OPTIONS:
            config[option] = True
        elif option[:1] == "r" and option[1:].isdigit():
            config["resolution"] = int(option[1:])
        else:
            raise SystemExit(f"{name}: unknown option {option!r}; choose from {OPTIONS} or rNNN")
    return encoder, config


def stored(dataset: PreparedDataset, name: str) -> tuple[list[str], np.ndarray]:
    """The stored image features of one encoder (extracted if missing)."""
    encoder, config = encoder_of(name)
    result = extract_features(
        dataset, image=encoder, text=None, image_config=config, progress=False
    )["image"]
    features = FeatureFolder(result.directory).read()
    return features.ids, features.values.reshape(len(features.ids), -1).astype(np.float64)


def feature_set(dataset: PreparedDataset, name: str) -> tuple[list[str], np.ndarray]:
    """One encoder's features, or several encoders' concatenated on the ids all have."""
    parts = [stored(dataset, encoder) for encoder in name.split("+")]
    common = set.intersection(*(set(ids) for ids, _ in parts))
    ids = [i for i in parts[0][0] if i in common]
    blocks = []
    for part_ids, values in parts:
        position = {i: n for n, i in enumerate(part_ids)}
        blocks.append(values[[position[i] for i in ids]])
    return ids, np.hstack(blocks)


def split_arrays(
    data: PreparedDataset, ids: list[str], x: np.ndarray, split: str
) -> tuple[np.ndarray, np.ndarray]:
    position = {i: n for n, i in enumerate(ids)}
    frame = data.split(split)
    keep = [i for i in frame["id"].astype(str) if i in position]
    labels = frame.set_index(frame["id"].astype(str))["label"].astype(str)
    return x[[position[i] for i in keep]], labels.loc[keep].to_numpy()


def concat_linear(
    data: PreparedDataset, ids: list[str], x: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """The default's solver and C grid on a concatenation (train folds only)."""
    x_train, y_train = split_arrays(data, ids, x, "train")
    x_test, y_test = split_arrays(data, ids, x, "test")
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std < 1e-6] = 1.0
    labels = data.labels
    grid = LinearConfig(input_dim=x.shape[1])
    fitted = fit_linear(
        (x_train - mean) / std,
        np.array([labels.index(label) for label in y_train]),
        len(labels),
        grid.c_values,
        folds=grid.cv_folds,
        seed=seed,
        select=grid.select,
        one_se=grid.one_standard_error,
    )
    logits = torch.as_tensor((x_test - mean) / std) @ fitted.weight.double().T + fitted.bias
    return y_test, np.asarray(labels, dtype=object)[logits.argmax(1).numpy()], fitted.c


def estimator(data: PreparedDataset, recipe: str, encoder: str, seed: int) -> tuple:
    name, config = encoder_of(encoder)
    run = RunConfig(
        model=recipe,
        image_encoder=name,
        image_encoder_config=config,
        feature_workers=0,
        train={"seed": seed},
    )
    model = SentimentModel(run).fit(data, progress=False)
    frame = model.predict_frame(data, "test")
    truth = data.examples.set_index(data.examples["id"].astype(str))["label"].astype(str)
    extra = {"c": model.history_[0]["c"]} if "c" in model.history_[0] else {}
    return truth.loc[frame["id"]].to_numpy(), frame["label"].to_numpy(), extra


def load(dataset_dir: Path, splits: list[str]) -> PreparedDataset:
    """The prepared dataset, only the posts of ``splits`` when given."""
    dataset = PreparedDataset.load(dataset_dir)
    if not splits:
        return dataset
    keep = dataset.examples["split"].isin(splits)
    return PreparedDataset(
        dataset.examples[keep].reset_index(drop=True), dataset.info, dataset.root
    )


def run(
    dataset_dir: Path,
    names: list[str],
    models: list[str],
    folds: int,
    seed: int,
    splits: list[str] = (),
):
    dataset = load(dataset_dir, list(splits))
    all_ids = dataset.examples["id"].astype(str).tolist()
    fold = fold_of(all_ids, dataset.examples["label"].astype(str).tolist(), folds, seed)
    rows = []
    for name in names:
        ids, x = feature_set(dataset, name)
        for k in range(folds):
            data = fold_dataset(dataset, fold, k, 0.1, seed)
            for model in models:
                if model == "mlp" and "+" in name:
                    continue
                start = time.perf_counter()
                extra = {}
                if model == "majority":
                    train = data.split("train")["label"].astype(str)
                    counts = sorted(train.value_counts().items(), key=lambda kv: (-kv[1], kv[0]))
                    y_true = data.split("test")["label"].astype(str).to_numpy()
                    y_pred = np.full(len(y_true), counts[0][0], dtype=object)
                elif model == "logreg":
                    y_true, y_pred, extra["c"] = logistic_regression(
                        data, ids, x, [0.001, 0.01, 0.1, 1.0]
                    )
                elif model == "linear" and "+" in name:
                    y_true, y_pred, extra["c"] = concat_linear(data, ids, x, seed)
                else:
                    recipe = "image" if model == "linear" else "image_mlp"
                    y_true, y_pred, extra = estimator(data, recipe, name, seed)
                report = classification_report(y_true, y_pred, dataset.labels)
                rows.append(
                    {
                        "features": name,
                        "model": f"{model} ({name})",
                        "fold": k,
                        **{figure: report[figure] for figure in FIGURES},
                        **{f"f1:{c}": v for c, v in report["per_class_f1"].items()},
                        "seconds": time.perf_counter() - start,
                        **extra,
                    }
                )
                print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="a prepared dataset folder")
    parser.add_argument(
        "--features",
        required=True,
        help="encoders, comma-separated; a+b concatenates, name@flip averages with the mirror, "
        "name@levels adds each stage's mean and std (EfficientNet-Lite)",
    )
    parser.add_argument("--models", default=",".join(MODELS), help=",".join(MODELS))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--splits", default="", help="only posts of these splits (e.g. train,val: no test post)"
    )
    parser.add_argument("--out", type=Path, required=True, help="CSV of per-fold rows")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    torch.set_num_threads(2)
    splits = [s for s in args.splits.split(",") if s]
    rows = run(args.dataset, args.features.split(","), models, args.folds, args.seed, splits)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(args.out, index=False)
    table = mean_std_table(summarise(rows[["model", "fold", *FIGURES]]))
    seconds = rows.groupby("model", sort=False)["seconds"].mean()
    table["s/fold"] = [f"{seconds[m]:.1f}" for m in table["model"]]
    print(markdown_table(table))


if __name__ == "__main__":
    main()
