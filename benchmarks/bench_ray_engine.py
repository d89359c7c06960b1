"""The Ray engine against the local engine on the same machine (2 cores here).

Extracts image features of N MVSA-Single posts twice into fresh copies of one prepared
dataset: ``--engine local`` (DataLoader worker processes) and ``--engine ray`` (a local Ray
instance, Ray Data actors), with the same encoder, batch size and worker count. Prints both
times and their ratio, with and without Ray's start-up. On one small machine Ray can only
add overhead (start-up, object store, scheduling): its point is correctness and a path to a
cluster (``--ray-address``), and this says what it costs.

    python benchmarks/bench_ray_engine.py --images 256 --encoder efficientnet_lite0
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from sentimodal.features.store import extract_features
from sentimodal.pool import available_cores
from sentimodal.preparation.dataset import PreparedDataset

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mvsa_single" / "data"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--encoder", default="efficientnet_lite0")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    return parser.parse_args()


def dataset(root: Path, images: list[Path]) -> Path:
    frame = pd.DataFrame(
        {
            "id": [p.stem for p in images],
            "text": ["" for _ in images],
            "image": [str(p) for p in images],
            "label": ["positive" for _ in images],
        }
    )
    PreparedDataset.from_dataframe(frame, id_column="id", image_column="image", root=root)
    return root


def timed_extraction(root: Path, engine: str, args: argparse.Namespace) -> float:
    start = time.perf_counter()
    extract_features(
        root,
        image=args.encoder,
        text=None,
        batch_size=args.batch_size,
        workers=args.workers,
        engine=engine,
        progress=False,
    )
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    import ray

    images = sorted(args.data.glob("*.jpg"))[: args.images]
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local instance
    try:
        local = timed_extraction(dataset(work / "local", images), "local", args)
        start = time.perf_counter()
        ray.init(num_cpus=available_cores(), include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - start
        on_ray = timed_extraction(dataset(work / "ray", images), "ray", args)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    n = len(images)
    print(
        f"{n} images, {args.encoder}, batch {args.batch_size}, {args.workers} workers, "
        f"{available_cores()} cores"
    )
    print(f"local engine: {local:6.1f} s  ({n / local:5.1f} images/s)")
    print(f"ray engine:   {on_ray:6.1f} s  ({n / on_ray:5.1f} images/s) + {startup:.1f} s start-up")
    print(
        f"ray / local time: {on_ray / local:.2f} (with start-up {(on_ray + startup) / local:.2f})"
    )


if __name__ == "__main__":
    main()
