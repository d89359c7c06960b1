"""Text-side levers on MVSA-Single by 5-fold cross-validation over train + val, frozen features.

Measures, with logistic regression on frozen sentence vectors (and frozen EfficientNet-Lite0
image vectors for the fusions): tweet-aware text normalisation on / off, a stronger text
encoder, class-prior (neutral) adjustment chosen by inner cross-validation for macro-F1, and
late fusion whose branches learn MVSA's own per-modality labels (``text_label``,
``image_label``). The test split is never read: every choice is made on folds of train + val.

    sentimodal prepare mvsa ../shared/data/mvsa_single --out /tmp/tweet/mvsa
    sentimodal features /tmp/tweet/mvsa --image efficientnet_lite0 --text none
    python scripts/tweet_text_cv.py /tmp/tweet/mvsa --encoders minilm:none minilm:tweet \\
        --out docs/results/tweet-text-cv.json

Text vectors are encoded here (cached under ``DATASET/features/cv-cache``, with the seconds
the encoding took); image vectors are read from the feature store.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from sentimodal.features.reading import load_features
from sentimodal.features.text_encoders import get_text_encoder
from sentimodal.preparation.dataset import PreparedDataset

FOLDS = 5
SEED = 0
C_VALUES = (0.003, 0.01, 0.03, 0.1, 0.3)
#: multipliers of the class probabilities tried for the prior adjustment (per non-majority class)
PRIOR_WEIGHTS = (0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)


def text_vectors(dataset: PreparedDataset, spec: str, ids: list[str]) -> tuple[np.ndarray, float]:
    """(N, d) vectors of ``spec`` (``encoder:normalisation``) for ``ids``, and encoding seconds."""
    name, normalize = spec.split(":")
    cache = dataset.root / "features" / "cv-cache" / f"{name}-{normalize}.npz"
    if not cache.is_file():
        frame = dataset.examples.set_index(dataset.examples["id"].astype(str))
        texts = dataset.texts(frame.reset_index(drop=True))
        encoder = get_text_encoder(name, normalize=normalize)
        start = time.perf_counter()
        values = encoder.encode(texts)
        seconds = time.perf_counter() - start
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, ids=np.array(frame.index, dtype=str), values=values, seconds=seconds)
    data = np.load(cache)
    order = {i: n for n, i in enumerate(data["ids"].tolist())}
    return data["values"][[order[i] for i in ids]], float(data["seconds"])


def logreg(x: np.ndarray, y: np.ndarray, c: float | None = None) -> Pipeline:
    """Standardised logistic regression; C given, or chosen by inner 3-fold accuracy."""
    if c is None:
        inner = StratifiedKFold(3, shuffle=True, random_state=SEED)
        scores = {
            value: float((cross_val_predict(logreg_of(value), x, y, cv=inner) == y).mean())
            for value in C_VALUES
        }
        c = max(scores, key=lambda value: scores[value])
    return logreg_of(c).fit(x, y)


def logreg_of(c: float) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))


def chosen_c(model: Pipeline) -> float:
    return float(model[-1].C)


def oof_proba(x: np.ndarray, y: np.ndarray, c: float, classes: list[str]) -> np.ndarray:
    """Out-of-fold class probabilities of logistic regression (C fixed) by inner 3-fold CV."""
    out = np.zeros((len(y), len(classes)))
    for train, held in StratifiedKFold(3, shuffle=True, random_state=SEED + 1).split(x, y):
        out[held] = proba(logreg(x[train], y[train], c), x[held], classes)
    return out


def proba(model, x: np.ndarray, classes: list[str]) -> np.ndarray:
    """Probabilities in the order of ``classes`` (a class the model never saw gets 0)."""
    p = model.predict_proba(x)
    out = np.zeros((len(x), len(classes)))
    for j, c in enumerate(model.classes_):
        out[:, classes.index(c)] = p[:, j]
    return out


def prior_weights(p: np.ndarray, y: np.ndarray, classes: list[str]) -> np.ndarray:
    """Per-class probability multipliers maximising macro-F1 of argmax(p * w) on (p, y)."""
    majority = int(np.argmax([np.sum(y == c) for c in classes]))
    others = [j for j in range(len(classes)) if j != majority]
    best, best_score = np.ones(len(classes)), -1.0
    for a in PRIOR_WEIGHTS:
        for b in PRIOR_WEIGHTS:
            w = np.ones(len(classes))
            w[others[0]], w[others[1]] = a, b
            score = f1_score(y, np.array(classes)[np.argmax(p * w, axis=1)], average="macro")
            if score > best_score + 1e-9:
                best, best_score = w, score
    return best


def metrics(y: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict[str, float]:
    out = {
        "accuracy": accuracy_score(y, pred),
        "weighted_f1": f1_score(y, pred, average="weighted"),
        "macro_f1": f1_score(y, pred, average="macro"),
    }
    per_class = f1_score(y, pred, labels=classes, average=None)
    out.update({f"f1_{c}": float(f) for c, f in zip(classes, per_class, strict=True)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--encoders", nargs="+", default=["minilm:none", "minilm:tweet"])
    parser.add_argument("--fusion", action="store_true", help="also the image fusions")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    dataset = PreparedDataset.load(args.dataset)
    pool = dataset.examples[dataset.examples["split"].isin(["train", "val"])]
    ids = pool["id"].astype(str).tolist()
    y = pool["label"].astype(str).to_numpy()
    y_text = pool["text_label"].astype(str).to_numpy()
    y_image = pool["image_label"].astype(str).to_numpy()
    classes = sorted(set(y))
    names = np.array(classes)
    image = None
    if args.fusion:
        stored = load_features(dataset, "image", "efficientnet_lite0")
        image = stored.select(ids).values.astype(np.float64)

    texts = {}
    seconds = {}
    for spec in args.encoders:
        texts[spec], seconds[spec] = text_vectors(dataset, spec, ids)

    rows: dict[str, list[dict[str, float]]] = {}

    def add(name: str, pred: np.ndarray, truth: np.ndarray | None = None) -> None:
        truth = y[test] if truth is None else truth  # the current fold's held-out posts
        rows.setdefault(name, []).append(metrics(truth, pred, classes))

    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(ids, y)
    for fold, (train, test) in enumerate(folds):
        started = time.perf_counter()
        majority = max(classes, key=lambda c: np.sum(y[train] == c))
        add("majority class", np.full(len(test), majority))
        if image is not None:
            image_model = logreg(image[train], y[train])
            pi = proba(image_model, image[test], classes)
            oof_im = oof_proba(image[train], y[train], chosen_c(image_model), classes)
            add("logreg image", names[pi.argmax(1)])
            # the image branch on the image annotator's label (MVSA's image_label)
            own_image = logreg(image[train], y_image[train])
            pio = proba(own_image, image[test], classes)
            oof_io = oof_proba(image[train], y_image[train], chosen_c(own_image), classes)
            add("logreg image on image_label", names[pio.argmax(1)])
            add(
                "logreg image on image_label, scored on image_label",
                names[pio.argmax(1)],
                y_image[test],
            )
        for spec, x in texts.items():
            model = logreg(x[train], y[train])
            p = proba(model, x[test], classes)
            oof_t = oof_proba(x[train], y[train], chosen_c(model), classes)
            add(f"logreg text {spec}", names[p.argmax(1)])
            w = prior_weights(oof_t, y[train], classes)
            add(f"logreg text {spec} + prior adjustment", names[(p * w).argmax(1)])
            if image is None:
                continue
            fused_x = np.hstack([x, image])
            concat = logreg(fused_x[train], y[train])
            pc = proba(concat, fused_x[test], classes)
            add(f"logreg concat {spec} + image", names[pc.argmax(1)])
            oof_c = oof_proba(fused_x[train], y[train], chosen_c(concat), classes)
            wc = prior_weights(oof_c, y[train], classes)
            add(f"logreg concat {spec} + image + prior adjustment", names[(pc * wc).argmax(1)])
            add(f"late mean {spec} + image", names[(p + pi).argmax(1)])
            # a stacker learns the merged label from the branches' out-of-fold probabilities
            stacker_m = LogisticRegression(max_iter=3000).fit(np.hstack([oof_t, oof_im]), y[train])
            pm = proba(stacker_m, np.hstack([p, pi]), classes)
            add(f"late stacked {spec} + image", names[pm.argmax(1)])
            wm = prior_weights(
                proba(stacker_m, np.hstack([oof_t, oof_im]), classes), y[train], classes
            )
            add(f"late stacked {spec} + image + prior adjustment", names[(pm * wm).argmax(1)])
            # each branch on its own annotator's label (text_label, image_label)
            own_text = logreg(x[train], y_text[train])
            pto = proba(own_text, x[test], classes)
            oof_to = oof_proba(x[train], y_text[train], chosen_c(own_text), classes)
            add(
                f"logreg text {spec} on text_label, scored on text_label",
                names[pto.argmax(1)],
                y_text[test],
            )
            stack_in = np.hstack([oof_to, oof_io])
            stacker = LogisticRegression(max_iter=3000).fit(stack_in, y[train])
            ps = proba(stacker, np.hstack([pto, pio]), classes)
            add(f"late stacked, own labels {spec} + image", names[ps.argmax(1)])
            ws = prior_weights(proba(stacker, stack_in, classes), y[train], classes)
            add(
                f"late stacked, own labels {spec} + image + prior adjustment",
                names[(ps * ws).argmax(1)],
            )
            # both: the merged-label and own-label branches' probabilities stacked together
            both_in = np.hstack([oof_t, oof_im, oof_to, oof_io])
            stacker_b = LogisticRegression(max_iter=3000).fit(both_in, y[train])
            pb = proba(stacker_b, np.hstack([p, pi, pto, pio]), classes)
            add(f"late stacked, merged + own labels {spec} + image", names[pb.argmax(1)])
            wb = prior_weights(proba(stacker_b, both_in, classes), y[train], classes)
            add(
                f"late stacked, merged + own labels {spec} + image + prior adjustment",
                names[(pb * wb).argmax(1)],
            )
        print(f"fold {fold}: {time.perf_counter() - started:.0f} s", flush=True)

    summary = {
        name: {
            key: [
                float(np.mean([r[key] for r in runs])),
                float(np.std([r[key] for r in runs], ddof=1)),
            ]
            for key in runs[0]
        }
        for name, runs in rows.items()
    }
    result = {
        "dataset": str(args.dataset),
        "posts": len(ids),
        "folds": FOLDS,
        "encoding_seconds": seconds,
        "results": summary,
        "per_fold": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    keys = ["accuracy", "weighted_f1", "macro_f1"] + [f"f1_{c}" for c in classes]
    print("| model | " + " | ".join(keys) + " |")
    print("| --- |" + " ---: |" * len(keys))
    for name, values in summary.items():
        cells = " | ".join(f"{values[k][0]:.3f} ± {values[k][1]:.3f}" for k in keys)
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
