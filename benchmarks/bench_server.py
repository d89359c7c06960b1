"""The model behind `sentimodal serve`: cold start, latency, throughput under load.

Starts the real server (``sentimodal serve``, 127.0.0.1, a free port) on a model and
measures, with real MVSA-Single posts (text + JPEG bytes, base64 JSON):

- cold start: process start until ``/ready`` answers 200;
- one client, warm: ``--single`` requests one after the other, latency p50 / p99;
- ``--clients`` concurrent clients: ``--requests`` requests in all, posts/s and errors;
- the batch rate of the same server: ``/v1/predict/batch`` with 32 posts a request from one
  client, before and after the load leg (the served throughput's target is >= 0.7x of it).

With ``--onnx EXPORT`` every leg also runs on the onnxruntime export and the ratios
onnx / torch are printed. A bounded number of requests, 127.0.0.1 only.

    python benchmarks/bench_server.py MODEL_DIR [--onnx EXPORT_DIR]
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from sentimodal.sources.mvsa import read_mvsa

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mvsa_single"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--onnx", type=Path, default=None, help="an ONNX export of the model")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MVSA-Single folder")
    parser.add_argument("--posts", type=int, default=64, help="distinct posts sent round-robin")
    parser.add_argument("--single", type=int, default=200, help="requests from one client")
    parser.add_argument("--requests", type=int, default=400, help="requests from all clients")
    parser.add_argument("--clients", type=int, default=8)
    return parser.parse_args()


def payloads(root: Path, n: int) -> list[dict]:
    out = []
    for record in read_mvsa(root):
        image = getattr(record, "image", None)
        if image is None or not getattr(record, "text", ""):
            continue
        data = base64.b64encode(Path(image).read_bytes()).decode()
        out.append({"id": record.id, "text": record.text, "image_base64": data})
        if len(out) == n:
            return out
    raise SystemExit(f"only {len(out)} usable posts in {root}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def serve_and_measure(model: Path, runtime: str, posts: list[dict], args) -> dict[str, float]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "sentimodal", "serve", str(model), "--port", str(port),
               "--runtime", runtime]  # fmt: skip
    started = time.perf_counter()
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.perf_counter() - started > 300:
                raise SystemExit(f"the {runtime} server did not become ready")
            time.sleep(0.05)
        cold = time.perf_counter() - started
        url = f"{base}/v1/predict"
        with httpx.Client(timeout=30) as client:
            for post in posts[:10]:  # warm
                client.post(url, json=post).raise_for_status()
            latencies = []
            for i in range(args.single):
                sent = time.perf_counter()
                client.post(url, json=posts[i % len(posts)]).raise_for_status()
                latencies.append((time.perf_counter() - sent) * 1000)

        def client_run(k: int) -> int:
            errors = 0
            with httpx.Client(timeout=30) as client:
                for i in range(k, args.requests, args.clients):
                    if client.post(url, json=posts[i % len(posts)]).status_code != 200:
                        errors += 1
            return errors

        def batch_leg() -> float:
            """Posts/s of /v1/predict/batch, 32 posts a request, one client: the model's
            batch rate in the same process, with the same decoding and HTTP costs."""
            with httpx.Client(timeout=60) as client:
                sent = time.perf_counter()
                for start in range(0, len(posts), 32):
                    answer = client.post(f"{base}/v1/predict/batch",
                                         json={"posts": posts[start : start + 32]})  # fmt: skip
                    answer.raise_for_status()
                return len(posts) / (time.perf_counter() - sent)

        batch_before = batch_leg()
        sent = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            errors = sum(pool.map(client_run, range(args.clients)))
        throughput = args.requests / (time.perf_counter() - sent)
        batch = (batch_before + batch_leg()) / 2  # around the load leg, as load drifts
    finally:
        server.terminate()
        server.wait(30)
    return {
        "cold": cold,
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 0.99),
        "throughput": throughput,
        "errors": errors,
        "batch": batch,
    }


def main() -> None:
    args = parse_args()
    posts = payloads(args.data, args.posts)
    legs = [("torch", args.model)] + ([("onnx", args.onnx)] if args.onnx else [])
    print(f"{len(posts)} real posts, {args.single} single-client requests, {args.requests} "
          f"requests from {args.clients} clients, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    results = {}
    for runtime, model in legs:
        served = serve_and_measure(model, runtime, posts, args)
        results[runtime] = served
        ratio = served["throughput"] / served["batch"]
        print(
            f"{runtime}: cold start to /ready {served['cold']:.1f} s; 1 client p50 "
            f"{served['p50']:.1f} ms, p99 {served['p99']:.1f} ms; {args.clients} clients "
            f"{served['throughput']:.1f} posts/s ({served['errors']} errors); batch rate "
            f"{served['batch']:.1f} posts/s: served / batch {ratio:.2f}",
            flush=True,
        )
    if "onnx" in results:
        t, o = results["torch"], results["onnx"]
        print(
            f"onnx / torch: p50 latency {o['p50'] / t['p50']:.2f}, throughput "
            f"{o['throughput'] / t['throughput']:.2f}, batch rate {o['batch'] / t['batch']:.2f}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
