"""Explanations on MVSA-Single: are they faithful, and what do they cost?

Trains the ``gated`` fusion (frozen MiniLM + EfficientNet-Lite0 vectors, read from the
dataset's feature cache) on the prepared dataset, or loads ``--model``, then on ``--posts``
test posts that have text and an image:

- faithfulness (:mod:`sentimodal.analysis.faithfulness`): removing the ``--k`` top-scored
  words (greying the ``--k`` top-scored cells of the 4x4 grid) lowers the label's score
  more than removing ``--k`` random ones (mean of ``--draws`` draws), averaged over posts;
- cost: seconds per post of the plain prediction and of each explanation: words (the
  posts' texts alone), regions (their images alone), everything (both).

Writes the figures as JSON (``--out``) and a bar chart (``--figure``); docs/results/
explanations.md reports them.

    python benchmarks/bench_explanations.py --dataset /work/wt-protocols/runs/mvsa --posts 60
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from matplotlib.figure import Figure

from sentimodal.analysis.faithfulness import faithfulness
from sentimodal.features.engine import LocalEngine
from sentimodal.inference.explanations import explain_predictions, picture_of
from sentimodal.inference.posts import post_rows, predict_rows
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.training.estimator import SentimentModel


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True, help="prepared MVSA dataset")
    parser.add_argument("--model", type=Path, default=None, help="a model directory to explain")
    parser.add_argument("--posts", type=int, default=60)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the figures here (JSON)")
    parser.add_argument("--figure", type=Path, default=None, help="write the chart here (PNG)")
    return parser.parse_args()


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def chart(results: dict, k: int) -> Figure:
    figure = Figure(figsize=(6, 3.4))
    axes = figure.add_subplot()
    parts = [p for p in ("words", "regions") if results[p]["posts"]]
    x = range(len(parts))
    top = [results[p]["fall_top"] for p in parts]
    rand = [results[p]["fall_random"] for p in parts]
    axes.bar([i - 0.2 for i in x], top, 0.4, label=f"top {k} removed", color="#D55E00")
    axes.bar([i + 0.2 for i in x], rand, 0.4, label=f"{k} random removed", color="#8C8C8C")
    axes.set_xticks(list(x), [f"{p} (n={results[p]['posts']})" for p in parts])
    axes.set_ylabel("fall of the label's score")
    axes.set_title("Faithfulness of explanations, MVSA-Single test posts")
    axes.axhline(0, color="#444", lw=0.8)
    axes.legend(frameon=False)
    figure.tight_layout()
    return figure


def main() -> None:
    args = parse_args()
    dataset = PreparedDataset.load(args.dataset)
    if args.model is not None:
        model = SentimentModel.load(args.model)
        trained = str(args.model)
    else:
        model = SentimentModel(model="gated", feature_workers=0)
        with tempfile.TemporaryDirectory() as work:
            model.fit(dataset, work_dir=work, progress=False)
        trained = "gated (frozen minilm + efficientnet_lite0), trained on train, val for stopping"
    test = dataset.split("test")
    test = test[test["image"].notna().to_numpy() & [bool(t) for t in dataset.texts(test)]]
    test = test.sample(n=min(args.posts, len(test)), random_state=args.seed)
    texts = list(dataset.texts(test))
    work = model.post_work()
    pictures = [picture_of(path, work) for path in test["image"]]
    ids = test["id"].astype(str).tolist()
    both = post_rows(
        [{"id": i, "text": t, "image": p} for i, t, p in zip(ids, texts, pictures, strict=True)]
    )
    only_text = post_rows([{"id": i, "text": t} for i, t in zip(ids, texts, strict=True)])
    only_image = post_rows([{"id": i, "image": p} for i, p in zip(ids, pictures, strict=True)])
    engine = LocalEngine(workers=0)
    predict_rows(work, both[:2], engine=engine)  # warm up: encoders loaded, pools started
    n = len(both)
    cost = {}
    for name, rows in (("words", only_text), ("regions", only_image), ("everything", both)):
        predicted, plain = timed(lambda rows=rows: predict_rows(work, rows, engine=engine))
        explained, spent = timed(
            lambda rows=rows, predicted=predicted: explain_predictions(
                work, rows, predicted, engine=engine
            )
        )
        cost[name] = {"predict_s_per_post": plain / n, "explain_s_per_post": spent / n}
        if name == "everything":
            full = explained
    scores = faithfulness(
        work, both, full, dict(enumerate(pictures)), k=args.k, draws=args.draws, seed=args.seed,
        engine=engine,
    )  # fmt: skip
    results = {
        "model": trained,
        "dataset": str(args.dataset),
        "posts": n,
        "k": args.k,
        "draws": args.draws,
        "test_accuracy": model.evaluate(dataset, "test")["accuracy"],
        **scores,
        "cost": cost,
    }
    print(json.dumps(results, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.figure is not None:
        chart(results, args.k).savefig(args.figure, dpi=130)


if __name__ == "__main__":
    main()
