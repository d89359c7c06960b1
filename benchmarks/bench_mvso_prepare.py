"""Does `prepare mvso` scale to MVSO's size? Files/s, peak memory, cores used.

Generates N Flickr ``getInfo`` XML files (default 200,000; ``--files``) spread over ANP
folders named after real ANPs of the MVSO English sentiment table, then runs ``prepare mvso``
(the pipeline function the command calls, in a child process) on a subset (``--subset``,
default 50,000: a folder of links to the first ANP folders) and on all of them. For each
run it prints files/s, the child's peak RSS and its CPU time / wall time (about 1.0: one
core; about 2.0: both cores of the reference machine).

    python benchmarks/bench_mvso_prepare.py --files 200000 --subset 50000 [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCORES = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "ontologies"
    / "mvso_english_anp_sentiment.csv"
)
WORDS = "sun light happy sad old city night street lovely dark beautiful smile rain sky"
WORDS_LIST = WORDS.split()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--subset", type=int, default=50_000)
    parser.add_argument("--per-anp", type=int, default=1000, help="files per ANP folder")
    parser.add_argument("--scores", type=Path, default=SCORES)
    parser.add_argument("--work", type=Path, default=None, help="folder to generate into")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    return parser.parse_args()


def photo_xml(photo_id: int, rng: random.Random) -> str:
    title = " ".join(rng.choice(WORDS_LIST) for _ in range(rng.randint(1, 6)))
    description = " ".join(rng.choice(WORDS_LIST) for _ in range(rng.randint(0, 30)))
    tags = "".join(
        f'<tag id="1-{photo_id}-{k}" author="1@N00" raw="{w}">{w}</tag>'
        for k, w in enumerate(rng.sample(WORDS_LIST, rng.randint(0, 8)))
    )
    return (
        '<?xml version="1.0" encoding="utf-8" ?>\n'
        f'<rsp stat="ok"><photo id="{photo_id}" secret="{rng.getrandbits(40):010x}" '
        f'server="{rng.randint(1, 9999)}" farm="{rng.randint(1, 9)}" dateuploaded="1300000000" '
        'isfavorite="0" license="0" rotation="0" media="photo">'
        '<owner nsid="1@N00" username="u" realname="" location="" />'
        f"<title>{title}</title><description>{description}</description>"
        f'<dates posted="1300000000" taken="2011-03-13 10:00:00" /><tags>{tags}</tags>'
        f'<urls><url type="photopage">https://www.flickr.com/photos/u/{photo_id}/</url></urls>'
        "</photo></rsp>\n"
    )


def generate(root: Path, n: int, per_anp: int, anps: list[str]) -> list[Path]:
    rng = random.Random(0)
    folders: list[Path] = []
    for start in range(0, n, per_anp):
        folder = root / anps[len(folders) % len(anps)]
        folder.mkdir(parents=True, exist_ok=True)
        folders.append(folder)
        for photo_id in range(start, min(n, start + per_anp)):
            (folder / f"{10_000_000 + photo_id}.xml").write_text(photo_xml(photo_id, rng))
    return folders


def run_prepare(root: Path, out: Path, scores: Path) -> dict[str, float]:
    """``prepare("mvso", ...)`` (what the CLI command calls) in a child process, measured
    alone (wait4: this child's own peak RSS and CPU time)."""
    code = (
        "import sys\n"
        "from sentimodal.preparation.pipeline import prepare\n"
        "prepare('mvso', sys.argv[1], sys.argv[2], anp_scores=sys.argv[3], progress=False)\n"
    )
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code, str(root), str(out), str(scores)])
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"prepare failed (status {status})")
    cpu = usage.ru_utime + usage.ru_stime
    return {"wall": wall, "cpu": cpu, "peak_rss_mib": usage.ru_maxrss / 1024}


def main() -> None:
    args = parse_args()
    anps = [line.split(",")[0] for line in args.scores.read_text().splitlines() if line]
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-mvso-"))
    root = work / "all"
    try:
        start = time.perf_counter()
        folders = generate(root, args.files, args.per_anp, anps)
        print(
            f"generated {args.files:,} XML files in {len(folders)} ANP folders "
            f"({time.perf_counter() - start:.0f} s)"
        )
        subset = work / "subset"
        subset.mkdir(exist_ok=True)
        for folder in folders[: max(1, args.subset // args.per_anp)]:
            os.symlink(folder, subset / folder.name)
        runs = [(subset, min(args.subset, args.files)), (root, args.files)]
        for folder, n in runs:
            result = run_prepare(folder, work / f"out-{n}", args.scores)
            print(
                f"prepare mvso, {n:>9,} files: {result['wall']:7.1f} s, "
                f"{n / result['wall']:8,.0f} files/s, peak RSS {result['peak_rss_mib']:6.0f} MiB, "
                f"CPU/wall {result['cpu'] / result['wall']:.2f}"
            )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
