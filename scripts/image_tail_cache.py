"""Cache what one frozen forward pass of EfficientNet-Lite0 gives per image, for the two image
levers of issue 15 measured by ``scripts/image_tail_cv.py``:

- ``pre11`` / ``pre15``: the activation entering block 11 (the first of the 192-channel stage,
  112 x 14 x 14) and block 15 (the last block, 192 x 7 x 7), float16: the input of a trainable
  last stage / last block;
- ``mean_s`` / ``std_s``: each stage's output (7 stages: 16, 24, 40, 80, 112, 192, 320
  channels) pooled by spatial mean and standard deviation, and ``mean_h`` / ``std_h`` the same of
  the 1280-channel head (``mean_h`` is the stored default feature vector).

Images go through the encoder's own ``read`` (the same resize / crop / normalisation as the
feature store). Writes ``OUT.npz`` with ``ids`` and the arrays.

    python scripts/image_tail_cache.py runs/e6-folder runs/tail/e6.npz
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from sentimodal.errors import RecordError
from sentimodal.features.image_encoders import get_image_encoder
from sentimodal.preparation.dataset import PreparedDataset

#: index of each stage's last block in Lite0's 16 blocks
STAGE_ENDS = (0, 2, 4, 7, 10, 14, 15)


class Images(Dataset):
    def __init__(self, encoder, rows: list[tuple[str, str]]) -> None:
        self.encoder, self.rows = encoder, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, n: int):
        post_id, path = self.rows[n]
        try:
            return post_id, self.encoder.read(path)
        except RecordError:
            return post_id, None


def collate(items):
    kept = [(i, x) for i, x in items if x is not None]
    return [i for i, _ in kept], torch.stack([x for _, x in kept]) if kept else None


def stats(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    flat = x.float().flatten(2)
    return flat.mean(2).numpy(), flat.std(2, unbiased=False).numpy()


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = PreparedDataset.load(args.dataset)
    frame = data.examples[data.examples["image"].notna()]
    rows = list(zip(frame["id"].astype(str), frame["image"].astype(str), strict=True))
    encoder = get_image_encoder("efficientnet_lite0")
    net = encoder.module().net
    loader = DataLoader(
        Images(encoder, rows), batch_size=args.batch, num_workers=1, collate_fn=collate
    )
    out: dict[str, list] = {k: [] for k in ("ids", "pre11", "pre15", "mean_s", "std_s")}
    out |= {"mean_h": [], "std_h": []}
    start = time.perf_counter()
    for ids, batch in loader:
        if batch is None:
            continue
        x = net._swish(net._bn0(net._conv_stem(batch)))
        means, stds = [], []
        for idx, block in enumerate(net._blocks):
            if idx == 11:
                out["pre11"].append(x.half().numpy())
            if idx == 15:
                out["pre15"].append(x.half().numpy())
            x = block(x)
            if idx in STAGE_ENDS:
                m, s = stats(x)
                means.append(m)
                stds.append(s)
        head = net._swish(net._bn1(net._conv_head(x)))
        m, s = stats(head)
        out["ids"].extend(ids)
        out["mean_s"].append(np.hstack(means))
        out["std_s"].append(np.hstack(stds))
        out["mean_h"].append(m)
        out["std_h"].append(s)
        print(f"{len(out['ids'])}/{len(rows)} {time.perf_counter() - start:.0f}s", flush=True)
    seconds = time.perf_counter() - start
    arrays = {k: np.asarray(v) if k == "ids" else np.concatenate(v) for k, v in out.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **arrays)
    print(f"{len(arrays['ids'])} images in {seconds:.0f}s ({len(arrays['ids']) / seconds:.1f}/s)")


if __name__ == "__main__":
    main()
