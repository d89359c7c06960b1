"""What do EfficientNet-Lite0's multi-level features (``levels=True``, the image default's
input) cost over the plain pooled vector?

Measured in one run, in alternating rounds (so other load on the machine hits both alike), on
preloaded, already transformed MVSA-Single images: the forward pass of the plain encoder and
of the levels encoder (images/s, batch 32, torch's default threads), and the ratio. Both run
the same network once; the levels encoder adds each stage's spatial mean and std.

    python benchmarks/bench_image_levels.py --images 256 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from sentimodal.errors import RecordError
from sentimodal.features.image_encoders import ImageEncoder, get_image_encoder

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mvsa_single" / "data"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of JPEG files")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args()


def images_per_second(encoder: ImageEncoder, batches: list[torch.Tensor]) -> float:
    started = time.perf_counter()
    for batch in batches:
        encoder.encode(batch)
    return sum(len(b) for b in batches) / (time.perf_counter() - started)


def main() -> None:
    args = parse_args()
    plain = get_image_encoder("efficientnet_lite0")
    levels = get_image_encoder("efficientnet_lite0", levels=True)
    paths = sorted(args.data.glob("*.jpg"), key=lambda p: (len(p.stem), p.stem))[: args.images]
    tensors = []
    for path in paths:
        try:
            tensors.append(plain.read(path))
        except RecordError as exc:
            print(f"skipped: {exc}")
    size = args.batch_size
    batches = [torch.stack(tensors[i : i + size]) for i in range(0, len(tensors), size)]
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(
        f"efficientnet_lite0: {len(tensors)} images, batch {size}, "
        f"{torch.get_num_threads()} threads; dims {plain.dim} / {levels.dim}"
    )
    plain.encode(batches[0])  # warm-up: weights, kernel selection
    levels.encode(batches[0])
    ours, theirs = [], []
    for round_ in range(1, args.rounds + 1):
        theirs.append(images_per_second(plain, batches))
        ours.append(images_per_second(levels, batches))
        print(
            f"round {round_}: plain {theirs[-1]:6.1f} img/s   levels {ours[-1]:6.1f} img/s   "
            f"ratio {ours[-1] / theirs[-1]:.3f}"
        )
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    a, b = statistics.median(theirs), statistics.median(ours)
    print(f"median: plain {a:.1f} img/s, levels {b:.1f} img/s; ratio levels/plain {b / a:.3f}")


if __name__ == "__main__":
    main()
