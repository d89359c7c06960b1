"""The default late fusion with its image branch on EfficientNet-Lite0's plain pooled vector
against the multi-level features (``levels: true``), over seeds: trained on train, scored on
val (the test split is not read). Writes each run's metrics as JSON and prints mean ± std.

    python scripts/late_image_levels.py runs/mvsa --seeds 0 1 2 --out runs/late-levels.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.training.estimator import SentimentModel

VARIANTS = {"plain": {}, "levels": {"levels": True}}
METRICS = ("accuracy", "weighted_f1", "macro_f1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path, help="a prepared MVSA-Single dataset")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    data = PreparedDataset.load(args.dataset)
    runs: dict[str, dict] = {}
    for seed in args.seeds:
        for name, image_config in VARIANTS.items():
            model = SentimentModel({"image_encoder_config": image_config, "train": {"seed": seed}})
            metrics = model.fit(data, progress=False).evaluate(data, "val")
            runs[f"{name}:{seed}"] = {k: metrics[k] for k in (*METRICS, "per_class_f1")}
            print(name, seed, {k: round(metrics[k], 4) for k in METRICS}, flush=True)
    args.out.write_text(json.dumps(runs, indent=1))
    for name in VARIANTS:
        rows = [runs[f"{name}:{seed}"] for seed in args.seeds]
        cells = [
            f"{np.mean([r[k] for r in rows]):.3f} ± {np.std([r[k] for r in rows], ddof=1):.3f}"
            for k in METRICS
        ]
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
