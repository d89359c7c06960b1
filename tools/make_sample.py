"""Rebuild the embedded MVSA-Single sample (src/sentimodal/sample/mvsa_single) from ../shared.

The sample keeps the native layout (labelResultAll.txt + data/<ID>.jpg|.txt) so the mvsa
reader reads it like the full set. Posts are drawn per label pair with a fixed seed; the
per-pair counts below are chosen so that merged labels give a usable demo (about 200
positive, 200 negative, 150 neutral) plus some conflicting pairs for the reject path. Tweets
keep their original bytes (non-UTF-8 ones included); images are downscaled to at most 256 px
on the long side and re-encoded as progressive JPEG, quality 80 (about 6 MB in all).

    .venv/bin/python tools/make_sample.py [--source ../shared/data/mvsa_single]
"""

from __future__ import annotations

import argparse
import random
import shutil
from collections import defaultdict
from pathlib import Path

from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "mvsa_single"
TARGET = REPO_ROOT / "src" / "sentimodal" / "sample" / "mvsa_single"
SEED = 2016
MAX_SIDE = 256
JPEG_QUALITY = 80
#: posts drawn per (text label, image label) pair
PAIR_COUNTS: dict[tuple[str, str], int] = {
    ("positive", "positive"): 100,
    ("neutral", "positive"): 70,
    ("positive", "neutral"): 30,
    ("negative", "negative"): 100,
    ("neutral", "negative"): 60,
    ("negative", "neutral"): 40,
    ("neutral", "neutral"): 150,
    ("negative", "positive"): 35,
    ("positive", "negative"): 15,
}


def read_pairs(source: Path) -> dict[tuple[str, str], list[str]]:
    """Post ids by label pair, in label-file order."""
    by_pair: dict[tuple[str, str], list[str]] = defaultdict(list)
    lines = (source / "labelResultAll.txt").read_text(encoding="utf-8").splitlines()
    for line in lines[1:]:
        post_id, labels = line.split("\t")
        text_label, image_label = labels.split(",")
        by_pair[(text_label, image_label)].append(post_id)
    return by_pair


def draw(by_pair: dict[tuple[str, str], list[str]]) -> list[tuple[str, tuple[str, str]]]:
    """The sampled (id, pair) list in numeric id order; one seeded generator for all pairs."""
    rng = random.Random(SEED)
    chosen = []
    for pair, count in PAIR_COUNTS.items():
        chosen += [(post_id, pair) for post_id in rng.sample(by_pair[pair], count)]
    return sorted(chosen, key=lambda item: int(item[0]))


def shrink_image(source: Path, target: Path) -> None:
    with Image.open(source) as image:
        image = image.convert("RGB")
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        image.save(target, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    source = parser.parse_args().source
    chosen = draw(read_pairs(source))
    if TARGET.exists():
        shutil.rmtree(TARGET)  # rebuilt from scratch so no stale post survives
    (TARGET / "data").mkdir(parents=True)
    rows = ["ID\ttext,image"]
    for post_id, (text_label, image_label) in chosen:
        shutil.copyfile(source / "data" / f"{post_id}.txt", TARGET / "data" / f"{post_id}.txt")
        shrink_image(source / "data" / f"{post_id}.jpg", TARGET / "data" / f"{post_id}.jpg")
        rows.append(f"{post_id}\t{text_label},{image_label}")
    (TARGET / "labelResultAll.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    size = sum(p.stat().st_size for p in TARGET.rglob("*") if p.is_file())
    print(f"wrote {len(chosen)} posts to {TARGET} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
