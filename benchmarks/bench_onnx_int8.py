"""What does int8 quantisation of the text transformer cost in accuracy, and gain in speed?

Predicts one split of a prepared dataset (default: MVSA-Single's test split) with a float
ONNX export and its ``--int8`` twin, both through the same streaming prediction, and prints
accuracy and macro-F1 of each, how many labels changed, the largest score difference, and
posts/s. ``--exclude DATASET`` leaves out posts whose id is in that dataset's train split
(e.g. a model trained on the embedded sample, whose posts are MVSA-Single posts too).

    python benchmarks/bench_onnx_int8.py runs/mvsa models/default-onnx models/default-int8
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from sentimodal.evaluation.metrics import classification_report
from sentimodal.features.engine import LocalEngine
from sentimodal.inference.onnx_runtime import OnnxModel
from sentimodal.inference.stream import predict_table
from sentimodal.preparation.dataset import PreparedDataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("float_export", type=Path)
    parser.add_argument("int8_export", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--exclude", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    dataset = PreparedDataset.load(args.dataset)
    frame = dataset.split(args.split).copy()
    frame["text"] = dataset.texts(frame)
    if args.exclude is not None:
        seen = set(PreparedDataset.load(args.exclude).split("train")["id"].astype(str))
        frame = frame[~frame["id"].astype(str).isin(seen)]
    truth = dict(zip(frame["id"].astype(str), frame["label"].astype(str), strict=True))
    print(f"{len(frame)} posts of {args.dataset} split {args.split}, load "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "posts.parquet"
        frame[["id", "text", "image"]].to_parquet(table)
        for name, export in (("float", args.float_export), ("int8", args.int8_export)):
            model = OnnxModel.load(export)
            out = Path(tmp) / f"{name}.jsonl"
            started = time.perf_counter()
            predict_table(model.work, table, out, model_name=name,
                          engine=LocalEngine(args.workers), progress=False)  # fmt: skip
            rate = len(frame) / (time.perf_counter() - started)
            rows = [json.loads(line) for line in out.read_text().splitlines()]
            ok = [r for r in rows if r["error"] is None]
            y_true = np.array([truth[r["id"]] for r in ok])
            y_pred = np.array([r["label"] for r in ok])
            report = classification_report(y_true, y_pred, model.classes)
            results[name] = (rows, report)
            print(
                f"{name}: accuracy {report['accuracy']:.4f}, macro-F1 "
                f"{report['macro_f1']:.4f} on {len(ok)} posts ({len(rows) - len(ok)} errors), "
                f"{rate:.1f} posts/s"
            )
    (a_rows, a), (b_rows, b) = results["float"], results["int8"]
    changed = sum(x["label"] != y["label"] for x, y in zip(a_rows, b_rows, strict=True))
    diff = max(
        abs(x["scores"][c] - y["scores"][c])
        for x, y in zip(a_rows, b_rows, strict=True)
        if x["scores"] and y["scores"]
        for c in x["scores"]
    )
    print(f"int8 - float: accuracy {b['accuracy'] - a['accuracy']:+.4f}, macro-F1 "
          f"{b['macro_f1'] - a['macro_f1']:+.4f}; {changed} labels changed; max score "
          f"difference {diff:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
