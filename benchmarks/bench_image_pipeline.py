"""How close does feature extraction from JPEG files get to the backbone's own speed?

Measures, in one run and in alternating rounds (so that other load on the machine hits both
legs alike), two throughputs of an image encoder (default efficientnet_lite0, batch 32):

- forward only: ``encoder.encode`` on preloaded, already transformed tensors, with torch's
  default threads (every core), channels-last, inference mode;
- full pipeline: read + decode + resize + forward through ``LocalEngine`` with the feature
  store's per-batch work, exactly as ``sentimodal features`` runs it (``--workers`` processes,
  each running whole batches on one core).

Prints the per-round figures, the medians and their ratio (target: >= 0.85), and the load
average before and after: on a shared machine other processes slow the 2-thread forward-only
leg far more than the one-thread-per-worker pipeline, so compare rounds run without load.

    python benchmarks/bench_image_pipeline.py --images 512 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from sentimodal.errors import RecordError
from sentimodal.features.batch_work import ImageBatchWork
from sentimodal.features.engine import LocalEngine, reuse_freed_memory
from sentimodal.features.image_encoders import ImageEncoder, get_image_encoder
from sentimodal.pool import available_cores

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mvsa_single" / "data"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of JPEG files")
    parser.add_argument("--encoder", default="efficientnet_lite0")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="as `sentimodal features`")
    return parser.parse_args()


def image_paths(folder: Path, n: int) -> list[str]:
    """The first ``n`` JPEGs in numeric id order (MVSA names them <id>.jpg)."""
    paths = sorted(folder.glob("*.jpg"), key=lambda p: (len(p.stem), p.stem))
    if len(paths) < n:
        raise SystemExit(f"need {n} JPEGs in {folder}, found {len(paths)}")
    return [str(p) for p in paths[:n]]


def forward_only(encoder: ImageEncoder, batches: list[torch.Tensor]) -> float:
    started = time.perf_counter()
    for batch in batches:
        encoder.encode(batch)
    return sum(len(b) for b in batches) / (time.perf_counter() - started)


def full_pipeline(engine: LocalEngine, work: ImageBatchWork, rows: list[list[dict]]) -> float:
    started = time.perf_counter()
    n = sum(result.n_items for result in engine.run(work, rows))
    return n / (time.perf_counter() - started)


def main() -> None:
    args = parse_args()
    encoder = get_image_encoder(args.encoder)
    paths = image_paths(args.data, args.images)
    engine = LocalEngine(workers=args.workers)
    work = ImageBatchWork(encoder)

    tensors = []
    for path in paths:  # also brings the files into the page cache for both legs
        try:
            tensors.append(encoder.read(path))
        except RecordError as exc:
            print(f"skipped: {exc}")
    size = args.batch_size
    batches = [
        torch.stack(tensors[i : i + size]).contiguous(memory_format=torch.channels_last)
        for i in range(0, len(tensors), size)
    ]
    records = [{"position": i, "id": str(i), "image": p} for i, p in enumerate(paths)]
    rows = [records[j : j + size] for j in range(0, len(records), size)]
    forward_threads = torch.get_num_threads()
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(
        f"{args.encoder}: {len(paths)} images, batch {size}, {available_cores()} cores; "
        f"forward-only with {forward_threads} threads; pipeline with {engine.workers} workers"
    )
    forward, pipeline = [], []
    # both legs with the allocator setting the engine uses, so only decoding differs
    with reuse_freed_memory():
        encoder.encode(batches[0])  # warm-up: weights, kernel selection
        for round_ in range(1, args.rounds + 1):
            forward.append(forward_only(encoder, batches))
            pipeline.append(full_pipeline(engine, work, rows))
            print(
                f"round {round_}: forward-only {forward[-1]:6.1f} img/s   "
                f"full pipeline {pipeline[-1]:6.1f} img/s   "
                f"ratio {pipeline[-1] / forward[-1]:.3f}"
            )
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    fwd, pipe = statistics.median(forward), statistics.median(pipeline)
    print(f"median: forward-only {fwd:.1f} img/s, full pipeline {pipe:.1f} img/s")
    print(f"ratio full/forward: {pipe / fwd:.3f} (target >= 0.85)")


if __name__ == "__main__":
    main()
