"""Emotion6 (Peng et al., CVPR 2015) as a table `sentimodal prepare table` reads.

One row per image listed in ground_truth.txt: ``id`` (folder/n), ``image`` (the absolute path
of the image in the Emotion6 folder: nothing is copied; the images are for academic research
use only and stay where they are), ``folder`` (the Flickr search keyword, the usual 6-class
label), ``valence`` and ``arousal`` (1-9), and the 7-way emotion distribution of the user study
in columns named by the emotion (anger, disgust, fear, joy, sadness, surprise, neutral).

    python tools/emotion6_table.py ../shared/data/emotion6 runs/emotion6.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

EMOTIONS = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")


def emotion6_rows(root: Path) -> list[dict[str, str]]:
    """The rows of ground_truth.txt whose image is present under ``root/images``."""
    rows = []
    with open(root / "ground_truth.txt", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        next(reader)  # header: [image_filename] [valence] [arousal] [prob. anger] ...
        for line, cells in enumerate(reader, start=2):
            if not cells or not cells[0].strip():
                continue
            if len(cells) != 3 + len(EMOTIONS):
                sys.exit(f"{root / 'ground_truth.txt'}:{line}: expected 10 tab-separated cells")
            name = cells[0].strip()
            image = (root / "images" / name).resolve()
            if not image.is_file():
                continue  # the part of Emotion6 kept back is listed but not present
            row = {"id": name, "image": str(image), "folder": name.split("/")[0]}
            row.update(valence=cells[1].strip(), arousal=cells[2].strip())
            row.update(zip(EMOTIONS, (c.strip() for c in cells[3:]), strict=True))
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the Emotion6 folder (images/, ground_truth.txt)")
    parser.add_argument("out", type=Path, help="the CSV to write")
    args = parser.parse_args()
    rows = emotion6_rows(args.root)
    if not rows:
        sys.exit(f"no Emotion6 image found under {args.root / 'images'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} images -> {args.out}")


if __name__ == "__main__":
    main()
