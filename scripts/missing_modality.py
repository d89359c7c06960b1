"""What each model scores on a dataset's test posts with the image removed and with the text
removed: how well a model does on real posts that lack one side.

    python scripts/missing_modality.py runs/mvsa --out docs/results/missing-modality \\
        [--with-default] [--seed 0]

Each model is trained once on the train split (val picks its epoch), then evaluated on the
test posts as they are, with every image removed, and with every text removed. A unimodal
model cannot read a post without its modality: those posts are counted as not predicted
("n predicted" column) and left out of its metrics.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pandas as pd

from sentimodal.analysis.report import markdown_table
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.run_config import RunConfig

FROZEN = {"text_encoder": "minilm"}
MODELS: dict[str, dict[str, Any]] = {
    "text only (frozen MiniLM, MLP)": {"model": "text", **FROZEN},
    "image only (frozen EfficientNet-Lite0, MLP)": {"model": "image"},
    "concatenation": {"model": "concat"},
    "gated GL2": {"model": "gated"},
    "gated GL2, modality dropout 0.2": {
        "model": "gated",
        "model_options": {"modality_dropout": 0.2},
    },
    "late fusion (frozen MiniLM)": {"model": "late", **FROZEN},
}
DEFAULT = "late fusion, MiniLM fine-tuned (the default)"


def without(test: pd.DataFrame, modality: str | None, root: Path) -> PreparedDataset:
    """The test posts as a dataset of their own, one modality removed."""
    posts = test.copy()
    if modality == "image":
        posts["image"] = None
    elif modality == "text":
        posts[["title", "description", "text", "tags"]] = ""
    return PreparedDataset.from_examples(posts, root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.md and OUT.csv")
    parser.add_argument("--with-default", action="store_true", help="also the fine-tuned default")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    dataset = PreparedDataset.load(args.dataset)
    test = dataset.split("test")
    work = args.dataset / "missing-modality"
    variants = {
        removed: without(test, removed, work / str(removed)) for removed in (None, "image", "text")
    }
    models = dict(MODELS)
    if args.with_default:
        models[DEFAULT] = {}
    rows = []
    started = time.perf_counter()
    for title, settings in models.items():
        run = RunConfig.model_validate({**settings, "train": {"seed": args.seed}})
        model = SentimentModel(run).fit(dataset, progress=False)
        row: dict[str, Any] = {"model": title}
        for removed, posts in variants.items():
            name = "both" if removed is None else f"no {removed}"
            frame = model.predict_frame(posts, "all")
            predicted = int(frame["error"].isna().sum())
            row[f"{name}: n predicted"] = predicted
            if predicted:
                metrics = model.evaluate(posts, "all")
                row[f"{name}: accuracy"] = round(metrics["accuracy"], 3)
                row[f"{name}: macro-F1"] = round(metrics["macro_f1"], 3)
            else:
                row[f"{name}: accuracy"] = row[f"{name}: macro-F1"] = None
        rows.append(row)
        print(row, flush=True)
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out.with_suffix(".csv"), index=False)
    command = " ".join(
        [
            "python scripts/missing_modality.py",
            str(args.dataset),
            "--out",
            str(args.out),
            *(["--with-default"] if args.with_default else []),
            "--seed",
            str(args.seed),
        ]
    )
    text = [
        "# Posts without an image or without a text",
        f"Each model trained once (seed {args.seed}) on `{args.dataset}`'s train split, its "
        f"epoch chosen on val, then scored on the {len(test)} test posts as they are, with "
        "every image removed, and with every text removed. Fusions fall back to the modality "
        "a post has (late fusion: that branch; concatenation and gated: the mean input, or "
        "the learned one with modality dropout). A unimodal model predicts nothing for posts "
        "without its modality (`n predicted` 0, metrics empty).",
        markdown_table(table),
        f"Command: `{command}` ({time.perf_counter() - started:.0f} s on this machine).",
    ]
    args.out.with_suffix(".md").write_text("\n\n".join(text) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
