"""How a trained late fusion's branches are best combined, by 5-fold CV over its val posts.

The default model's branches (fine-tuned MiniLM, MLP on EfficientNet-Lite0) are trained once;
their class log-probabilities on val, posts they did not train on, are then combined in three
ways and compared on held-out folds of val: the mean of the probabilities (the old default),
a logistic regression on both branches' log-probabilities (``combine: stacked``, the new
default, fit on all of val by ``train``), and that regression with class-prior multipliers
chosen on the training folds for macro-F1. The test split is not read.

    sentimodal train /tmp/tweet/mvsa --out /tmp/tweet/default
    python scripts/late_stack_val_cv.py /tmp/tweet/default /tmp/tweet/mvsa
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, str(Path(__file__).parent))
from tweet_text_cv import FOLDS, SEED, metrics, prior_weights  # noqa: E402

from sentimodal.training.batches import as_tensors  # noqa: E402
from sentimodal.training.estimator import SentimentModel  # noqa: E402
from sentimodal.training.inference import run_batched  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("dataset", type=Path)
    args = parser.parse_args()

    model = SentimentModel.load(args.model)
    inputs = model._inputs(model._dataset(args.dataset), "val", progress=False)
    net = model.model_
    logp = run_batched(net, as_tensors(inputs.data), net.branch_log_probs).numpy()
    labels = model._dataset(args.dataset).examples.set_index("id").loc[inputs.ids, "label"]
    classes = list(model.classes_)
    names = np.array(classes)
    y = labels.astype(str).to_numpy()
    n = len(classes)
    text, image = np.exp(logp[:, :n]), np.exp(logp[:, n:])

    rows: dict[str, list[dict[str, float]]] = {}
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(logp, y)
    for train, test in folds:

        def add(name: str, pred: np.ndarray, test: np.ndarray = test) -> None:
            rows.setdefault(name, []).append(metrics(y[test], pred, classes))

        add("text branch alone", names[text[test].argmax(1)])
        add("image branch alone", names[image[test].argmax(1)])
        add("mean of probabilities (old default)", names[(text + image)[test].argmax(1)])
        stacker = LogisticRegression(max_iter=2000).fit(logp[train], y[train])
        p = stacker.predict_proba(logp[test])
        add("stacked (new default)", stacker.classes_[p.argmax(1)])
        w = prior_weights(stacker.predict_proba(logp[train]), y[train], list(stacker.classes_))
        add("stacked + prior adjustment", stacker.classes_[(p * w).argmax(1)])

    keys = ["accuracy", "weighted_f1", "macro_f1"] + [f"f1_{c}" for c in classes]
    print(f"{len(y)} val posts, {FOLDS} folds")
    print("| combination | " + " | ".join(keys) + " |")
    print("| --- |" + " ---: |" * len(keys))
    for name, runs in rows.items():
        cells = " | ".join(
            f"{np.mean([r[k] for r in runs]):.3f} ± {np.std([r[k] for r in runs], ddof=1):.3f}"
            for k in keys
        )
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
