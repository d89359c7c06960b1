"""How fast does `sentimodal download` fetch, check and store images?

A local HTTP server (a separate process on 127.0.0.1, so its CPU is not counted) serves N
distinct JPEGs taken from MVSA-Single (or generated ones), adding ``--latency`` seconds (20 ms
by default) to every response, as a remote server would. The downloader runs in this process
with ``--threads`` threads, through the same fetcher, decode check and shard writer as the
command. Prints wall-clock images/s, this process's CPU seconds, and images per CPU-second:
the throughput of one fully used core (img2dataset publishes ~100 samples/s per core).

    python benchmarks/bench_download.py --images 2000 --threads 32 [--resize 256]
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fault_server import FaultServer, jpeg_bytes, ok  # noqa: E402
from sentimodal.download import download  # noqa: E402
from sentimodal.pool import available_cores  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mvsa_single" / "data"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added per response")
    parser.add_argument("--resize", type=int, default=None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of JPEGs")
    return parser.parse_args()


def photos(folder: Path, n: int) -> list[bytes]:
    files = sorted(folder.glob("*.jpg"))[:n] if folder.is_dir() else []
    if files:
        return [path.read_bytes() for path in files]
    return [jpeg_bytes(480, 360, (i % 256, 90, 30)) for i in range(min(n, 256))]


def serve(port_queue: multiprocessing.Queue, bodies: list[bytes], n: int, latency: float) -> None:
    server = FaultServer()
    server.latency = latency
    for i in range(n):
        server.routes[f"/{i}.jpg"] = ok(bodies[i % len(bodies)])
    port_queue.put(server.server_address[1])
    server.serve_forever(poll_interval=0.05)


def main() -> None:
    args = parse_args()
    bodies = photos(args.data, args.images)
    context = multiprocessing.get_context("fork")
    ports: multiprocessing.Queue = context.Queue()
    server = context.Process(
        target=serve, args=(ports, bodies, args.images, args.latency), daemon=True
    )
    server.start()
    port = ports.get(timeout=30)
    work = Path(tempfile.mkdtemp(prefix="bench-download-"))
    try:
        table = work / "urls.csv"
        with table.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "url"])
            for i in range(args.images):
                writer.writerow([i, f"http://127.0.0.1:{port}/{i}.jpg"])
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        result = download(
            table,
            work / "out",
            image_column="url",
            id_column="id",
            workers=args.threads,
            per_host=args.threads,
            resize=args.resize,
            allow_private_addresses=True,
            progress=False,
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        server.terminate()
        shutil.rmtree(work, ignore_errors=True)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stats = result.stats
    done = stats["successes"]
    mean_kb = sum(len(b) for b in bodies) / len(bodies) / 1024
    latency_ms = args.latency * 1000
    cores = available_cores()
    print(f"images: {args.images} distinct JPEGs (mean {mean_kb:.0f} KiB), +{latency_ms:.0f} ms")
    print(f"threads: {args.threads}, resize: {args.resize}, cores: {cores}")
    print(f"downloaded: {done}, failed: {stats['failures']} {stats['failures_by_reason']}")
    print(f"wall: {wall:.2f} s -> {done / wall:.1f} images/s ({done / wall / cores:.1f} per core)")
    print(f"CPU (downloader process): {cpu:.2f} s -> {done / cpu:.1f} images per CPU-second")


if __name__ == "__main__":
    main()
