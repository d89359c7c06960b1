"""Does batch prediction run at the feature store's speed?

On the same real MVSA-Single posts (text + image), measures in one run:

- the feature store: ``extract_features`` with the model's own image and text encoders on a
  fresh dataset of these posts (nothing cached), exactly as ``sentimodal features`` runs;
- streaming prediction: ``predict_table`` (what ``sentimodal predict --input --output`` runs)
  over a CSV of the same posts, JSONL out, same batch size and workers;
- with ``--onnx EXPORT``, the same streaming prediction on the onnxruntime export.

Prints posts/s of each and the ratios prediction / feature store (target >= 0.8) and
onnx / torch. Legs alternate over ``--rounds`` so that other load hits them alike.

    python benchmarks/bench_predict.py MODEL_DIR --posts 2000 [--onnx EXPORT_DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from sentimodal.features.engine import LocalEngine
from sentimodal.features.store import extract_features
from sentimodal.inference.posts import PostBatchWork
from sentimodal.inference.stream import predict_table
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.sources.mvsa import read_mvsa
from sentimodal.training.estimator import SentimentModel

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mvsa_single"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a model directory (e.g. the default model)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MVSA-Single folder")
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--onnx", type=Path, default=None, help="an ONNX export of the model")
    return parser.parse_args()


def real_posts(root: Path, n: int) -> pd.DataFrame:
    """The first ``n`` MVSA-Single posts that have a text and an image file."""
    rows = []
    for record in read_mvsa(root):
        post = getattr(record, "image", None)
        if post is None or not getattr(record, "text", ""):
            continue
        rows.append({"id": record.id, "text": record.text, "image": str(post)})
        if len(rows) == n:
            break
    if len(rows) < n:
        raise SystemExit(f"only {len(rows)} usable posts in {root}")
    return pd.DataFrame(rows)


def feature_store_rate(model: SentimentModel, posts: pd.DataFrame, args, work: Path) -> float:
    root = Path(tempfile.mkdtemp(dir=work))
    dataset = PreparedDataset.from_dataframe(
        posts, image_column="image", label_column=None, id_column="id", root=root
    )
    started = time.perf_counter()
    extract_features(
        dataset,
        image=model.image_encoder_ if model.run_.uses_image else None,
        text=model.text_encoder_ if model.run_.uses_text else None,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=False,
    )
    return len(posts) / (time.perf_counter() - started)


def predict_rate(work_: PostBatchWork, table: Path, args, work: Path) -> tuple[float, int]:
    out = Path(tempfile.mkdtemp(dir=work)) / "out.jsonl"
    started = time.perf_counter()
    summary = predict_table(
        work_, table, out, model_name="bench", batch_size=args.batch_size,
        engine=LocalEngine(args.workers), progress=False,
    )  # fmt: skip
    return summary.rows / (time.perf_counter() - started), summary.errors


def main() -> None:
    args = parse_args()
    model = SentimentModel.load(args.model)
    posts = real_posts(args.data, args.posts)
    onnx_work = None
    if args.onnx is not None:
        from sentimodal.inference.onnx_runtime import OnnxModel

        onnx_work = OnnxModel.load(args.onnx).work
    print(f"{len(posts)} real posts, model {args.model} ({model.run_.model}), batch "
          f"{args.batch_size}, {args.workers} workers, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    rates: dict[str, list[float]] = {"features": [], "predict": [], "onnx": []}
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        work = Path(tmp)
        table = work / "posts.csv"
        posts.to_csv(table, index=False)
        for round_ in range(args.rounds):
            rates["features"].append(feature_store_rate(model, posts, args, work))
            rate, errors = predict_rate(model.post_work(), table, args, work)
            rates["predict"].append(rate)
            line = (
                f"round {round_}: feature store {rates['features'][-1]:.1f} posts/s, "
                f"predict {rate:.1f} posts/s ({errors} errors)"
            )
            if onnx_work is not None:
                rate, errors = predict_rate(onnx_work, table, args, work)
                rates["onnx"].append(rate)
                line += f", predict onnx {rate:.1f} posts/s ({errors} errors)"
            print(line, flush=True)
    features = statistics.median(rates["features"])
    predict = statistics.median(rates["predict"])
    print(f"feature store {features:.1f} posts/s, predict {predict:.1f} posts/s: "
          f"ratio {predict / features:.2f} (target >= 0.8)")  # fmt: skip
    if rates["onnx"]:
        onnx = statistics.median(rates["onnx"])
        print(f"predict onnxruntime {onnx:.1f} posts/s: onnx / torch {onnx / predict:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
