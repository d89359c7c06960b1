"""Training time of the default models against the ones they replaced, measured in one run.

On MVSA-Single (prepared once into ``--work``, merged labels, 70/20/10), each leg trains a
model from the stored features for ``--epochs`` epochs and is timed from the model's own
per-epoch history. Features are extracted (and cached) before any leg is timed, so every leg
measures training alone; the first extraction's time is printed separately.

Legs (``--legs`` picks some):

- ``late``: ``sentimodal train``'s default now (fine-tuned MiniLM on tweet-normalised text +
  MLP on frozen EfficientNet-Lite0, late fusion);
- ``late-before``: the same before issue 15 (raw text: ``normalize: none``);
- ``image``: ``train --model image``'s default now (the cross-validated linear head);
- ``image-before``: the MLP head it replaced (``--model image_mlp``);
- ``cross``: token-level fusion (``--model cross``), compared with ``late``, the default it
  extends (it reads a 7x7 grid of image regions instead of the pooled vector).

Legs alternate over ``--rounds`` so that machine load hits them alike. Prints seconds per
epoch, training posts per second and each leg's ratio to the leg it replaced or extends.

    python benchmarks/bench_train.py --epochs 1 --rounds 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

from sentimodal.preparation.dataset import INFO_FILE, PreparedDataset
from sentimodal.preparation.pipeline import prepare
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.inputs import extract_run_features
from sentimodal.training.run_config import RunConfig

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mvsa_single"

#: leg -> (what it is, run-config overrides of the default, the leg it replaced or extends)
LEGS: dict[str, tuple[str, dict[str, Any], str | None]] = {
    "late": ("default train (late, tweet-normalised text)", {}, "late-before"),
    "late-before": (
        "default train before issue 15 (raw text)",
        {"text_encoder_config": {"normalize": "none"}},
        None,
    ),
    "image": ("train --model image (linear head)", {"model": "image"}, "image-before"),
    "image-before": ("train --model image_mlp (MLP head)", {"model": "image_mlp"}, None),
    "cross": ("train --model cross (token-level fusion)", {"model": "cross"}, "late"),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MVSA-Single folder")
    parser.add_argument(
        "--work", type=Path, default=REPO / "runs" / "bench-train",
        help="where the prepared dataset and its feature cache are kept between runs",
    )  # fmt: skip
    parser.add_argument("--legs", default=",".join(LEGS), help="comma-separated legs")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of each fine-tuned leg")
    parser.add_argument("--rounds", type=int, default=1)
    return parser.parse_args()


def prepared(data: Path, work: Path) -> PreparedDataset:
    """MVSA-Single prepared once (the default 70/20/10 split), reused by later runs."""
    folder = work / "mvsa"
    if not (folder / INFO_FILE).exists():
        prepare("mvsa", data, folder, progress=False)
    return PreparedDataset.load(folder)


def model_for(leg: str, epochs: int) -> SentimentModel:
    overrides = LEGS[leg][1]
    if RunConfig.model_validate(overrides).fine_tunes:
        # a shorter schedule of the same shape: the per-epoch cost is what is compared
        overrides = {**overrides, "train": {"epochs": epochs}}
    return SentimentModel(overrides)


def timed_fit(leg: str, dataset: PreparedDataset, epochs: int) -> dict[str, float]:
    """One leg's fit; per-epoch figures from the model's history (a closed-form head such as
    ``linear`` records its whole solve as one epoch)."""
    model = model_for(leg, epochs)
    started = time.perf_counter()
    model.fit(dataset, progress=False)
    total = time.perf_counter() - started
    epoch_seconds = [row["seconds"] for row in model.history_]
    return {
        "fit_s": total,
        "epochs": len(epoch_seconds),
        "s_per_epoch": statistics.mean(epoch_seconds),
        "posts_per_s": len(dataset.split("train")) * len(epoch_seconds) / sum(epoch_seconds),
    }


def warm_features(legs: list[str], dataset: PreparedDataset) -> None:
    """Extract every leg's features once, untimed by the legs; print what it cost."""
    for leg in legs:
        run = model_for(leg, 1).run_config()
        started = time.perf_counter()
        extract_run_features(run, dataset, progress=False)
        seconds = time.perf_counter() - started
        encoders = ", ".join(
            str(name)
            for name, used in (
                (run.text_encoder, run.uses_text),
                (run.image_encoder, run.uses_image),
            )
            if used
        )
        print(f"features of {leg} ({encoders}): {seconds:.1f} s (about 0 when cached)", flush=True)


def main() -> None:
    args = parse_args()
    legs = [leg.strip() for leg in args.legs.split(",") if leg.strip()]
    unknown = sorted(set(legs) - set(LEGS))
    if unknown:
        raise SystemExit(f"unknown legs {unknown}; choose from {', '.join(LEGS)}")
    dataset = prepared(args.data, args.work)
    print(f"MVSA-Single: {len(dataset.split('train'))} train posts, {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    warm_features(legs, dataset)
    results: dict[str, list[dict[str, float]]] = {leg: [] for leg in legs}
    for round_ in range(args.rounds):
        for leg in legs:
            result = timed_fit(leg, dataset, args.epochs)
            results[leg].append(result)
            print(f"round {round_} {leg}: {result['s_per_epoch']:.1f} s/epoch over "
                  f"{result['epochs']:.0f} epochs, {result['posts_per_s']:.1f} posts/s, "
                  f"fit {result['fit_s']:.1f} s", flush=True)  # fmt: skip
    print()
    print("| leg | what | s per epoch | train posts/s | whole fit s |")
    print("| --- | --- | ---: | ---: | ---: |")
    medians = {}
    for leg in legs:
        medians[leg] = {key: statistics.median(r[key] for r in results[leg]) for key in
                        ("s_per_epoch", "posts_per_s", "fit_s")}  # fmt: skip
        m = medians[leg]
        print(f"| {leg} | {LEGS[leg][0]} | {m['s_per_epoch']:.1f} | {m['posts_per_s']:.1f} "
              f"| {m['fit_s']:.1f} |")  # fmt: skip
    print()
    for leg in legs:
        before = LEGS[leg][2]
        if before in medians:
            now, then = medians[leg], medians[before]
            epoch = now["s_per_epoch"] / then["s_per_epoch"]
            whole = now["fit_s"] / then["fit_s"]
            print(f"{leg} / {before}: time per epoch x{epoch:.2f}, whole fit x{whole:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
