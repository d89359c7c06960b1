"""Does `prepare mvso` scale to MVSO's size? Files/s, peak memory, cores used.

Generates N Flickr ``getInfo`` XML files (default 200,000; ``--files``) spread over ANP
folders named after real ANPs of the MVSO English sentiment table, then runs ``prepare mvso``
(the pipeline function the command calls, in a child process, with ``--workers`` parsing
processes: default the machine's cores) on a subset (``--subset``, default 50,000: a folder
of links to the first ANP folders) and on all of them. For each run it prints files/s, peak
memory of the child and its pool workers, and CPU time / wall time over all of them (about
1.0: one core busy; about 2.0: both cores of the reference machine). Peak memory is given
twice: the largest peak RSS of any one process (wait4, exact) and the peak of the summed RSS
of the whole process tree (sampled 10 times a second; pages shared between processes are
counted in each).

    python benchmarks/bench_mvso_prepare.py --files 200000 --subset 50000 [--workers N] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
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
    parser.add_argument("--subset", type=int, default=50_000, help="0: no subset run")
    parser.add_argument("--per-anp", type=int, default=1000, help="files per ANP folder")
    parser.add_argument("--scores", type=Path, default=SCORES)
    parser.add_argument("--work", type=Path, default=None, help="folder to generate into")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--workers", type=int, default=None, help="parsing processes")
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


def run_prepare(root: Path, out: Path, scores: Path, workers: int | None) -> dict[str, float]:
    """``prepare("mvso", ...)`` (what the CLI command calls) in a child process, measured
    alone: wait4 gives the CPU time of the child and its (reaped) pool workers and the largest
    peak RSS among them; a sampler adds up the tree's RSS."""
    code = (
        "import sys\n"
        "from sentimodal.preparation.pipeline import prepare\n"
        "workers = int(sys.argv[4]) if sys.argv[4] != 'auto' else None\n"
        "prepare('mvso', sys.argv[1], sys.argv[2], anp_scores=sys.argv[3], progress=False,\n"
        "        parse_workers=workers)\n"
    )
    start = time.perf_counter()
    argv = [sys.executable, "-c", code, str(root), str(out), str(scores), str(workers or "auto")]
    child = subprocess.Popen(argv)
    sampler = TreeRss(child.pid)
    sampler.start()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    sampler.stop()
    if status != 0:
        raise SystemExit(f"prepare failed (status {status})")
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "wall": wall,
        "cpu": cpu,
        "max_rss_mib": usage.ru_maxrss / 1024,
        "tree_rss_mib": sampler.peak / 2**20,
        "processes": sampler.most_processes,
    }


class TreeRss(threading.Thread):
    """Samples the summed RSS of a process and all its descendants, keeping the peak."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.most_processes = 0
        self._done = threading.Event()

    def run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._done.wait(self.interval):
            pids = _tree(self.pid)
            total = 0
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/statm") as handle:
                        total += int(handle.read().split()[1]) * page
                except (OSError, IndexError, ValueError):
                    pass  # the process ended between listing and reading
            self.peak = max(self.peak, total)
            self.most_processes = max(self.most_processes, len(pids))

    def stop(self) -> None:
        self._done.set()
        self.join()


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (via /proc/PID/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo.extend(int(child) for child in handle.read().split())
        except OSError:
            continue  # it ended meanwhile
    return found


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
        runs = [(root, args.files)]
        if 0 < args.subset < args.files:
            subset = work / "subset"
            subset.mkdir(exist_ok=True)
            for folder in folders[: max(1, args.subset // args.per_anp)]:
                os.symlink(folder, subset / folder.name)
            runs.insert(0, (subset, args.subset))
        for folder, n in runs:
            load = os.getloadavg()[0]
            result = run_prepare(folder, work / f"out-{n}", args.scores, args.workers)
            print(
                f"prepare mvso, {n:>9,} files: {result['wall']:7.1f} s, "
                f"{n / result['wall']:8,.0f} files/s, peak RSS max {result['max_rss_mib']:4.0f} "
                f"MiB / tree sum {result['tree_rss_mib']:4.0f} MiB "
                f"({result['processes']} processes), CPU/wall "
                f"{result['cpu'] / result['wall']:.2f} (load average before: {load:.2f})",
                flush=True,
            )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
