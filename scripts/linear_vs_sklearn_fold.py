"""Where the image default and the logistic-regression baseline disagree on one fold, say
whether that is a different model or the baseline's solver tolerance.

On the fold's training part (standardised as both models do) at one C, fits scikit-learn's
``LogisticRegression`` as the baseline does (``max_iter=2000``, default ``tol``), the same to
convergence (``tol=1e-10``) and the default's solver (``training.linear_fit.solve``), then
prints each one's test accuracy, the posts on which they differ with their probabilities, and
how far each solution is from the converged one. Same folds as ``scripts/image_only_cv.py``.

    python scripts/linear_vs_sklearn_fold.py runs/mvsa-img2 efficientnet_lite0@levels --fold 0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from image_only_cv import feature_set, split_arrays
from sklearn.linear_model import LogisticRegression

from sentimodal.analysis.crossval import fold_dataset, fold_of
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.training.linear_fit import solve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("features", help="as image_only_cv.py's --features (one set)")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--c", type=float, default=0.001)
    args = parser.parse_args()
    dataset = PreparedDataset.load(args.dataset)
    ids_all = dataset.examples["id"].astype(str).tolist()
    labels_all = dataset.examples["label"].astype(str).tolist()
    fold = fold_of(ids_all, labels_all, args.folds, args.seed)
    data = fold_dataset(dataset, fold, args.fold, 0.1, args.seed)
    ids, x = feature_set(dataset, args.features)
    x_train, y_train = split_arrays(data, ids, x, "train")
    x_test, y_test = split_arrays(data, ids, x, "test")
    mean, std = x_train.mean(0), x_train.std(0)
    std[std < 1e-6] = 1.0
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    classes = dataset.labels
    baseline = LogisticRegression(C=args.c, max_iter=2000).fit(x_train, y_train)
    converged = LogisticRegression(C=args.c, max_iter=20000, tol=1e-10).fit(x_train, y_train)
    codes = np.array([classes.index(v) for v in y_train])
    weight, bias = solve(torch.tensor(x_train), torch.tensor(codes), len(classes), args.c)
    ours_p = torch.softmax(torch.tensor(x_test) @ weight.T + bias, dim=1).numpy()
    predictions = {
        "baseline (tol 1e-4)": baseline.predict(x_test),
        "scikit-learn converged (tol 1e-10)": converged.predict(x_test),
        "the default's solver": np.asarray(classes, dtype=object)[ours_p.argmax(1)],
    }
    for name, predicted in predictions.items():
        differ = int((predicted != predictions["baseline (tol 1e-4)"]).sum())
        print(f"{name}: accuracy {(predicted == y_test).mean():.4f}, {differ} differ from baseline")
    differ = np.flatnonzero(
        predictions["baseline (tol 1e-4)"] != predictions["the default's solver"]
    )
    baseline_p, converged_p = baseline.predict_proba(x_test), converged.predict_proba(x_test)
    for i in differ:
        print(
            f"test post {i} (truth {y_test[i]}), probabilities of {classes}: baseline "
            f"{baseline_p[i].round(5)}, converged {converged_p[i].round(5)}, "
            f"default {ours_p[i].round(5)}"
        )
    # scikit-learn keeps one log-odds vector for two classes, one row per class otherwise
    ours_coef = (weight[1:] - weight[:1]).numpy() if len(classes) == 2 else weight.numpy()
    print(
        f"max |weight - converged|: baseline "
        f"{np.abs(baseline.coef_ - converged.coef_).max():.2e}, default "
        f"{np.abs(ours_coef - converged.coef_).max():.2e}"
    )


if __name__ == "__main__":
    main()
