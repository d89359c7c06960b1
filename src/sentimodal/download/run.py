"""``download(INPUT, OUT)``: fetch every image URL of a table or prepared dataset into local
files, and write a prepared dataset whose images are those files.

A pool of threads fetches through :func:`sentimodal.net.fetch` (address rules, deadlines,
retries with backoff, byte caps) under per-host limits; each body must decode under the
feature extractor's rules. Results land in resumable shards (see :mod:`.shards`); the output
folder is then a prepared dataset (examples.parquet, dataset.json, rejects.csv) plus
``images/``, ``shards/`` and ``stats.json`` (successes, failures by reason, bytes, images/s).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from sentimodal.config import validation_message
from sentimodal.download.config import DownloadConfig
from sentimodal.download.images import check_image
from sentimodal.download.inputs import Source, open_source
from sentimodal.download.limits import HostLimiter
from sentimodal.download.shards import Outcome, ShardBook, UrlRow, store_file
from sentimodal.errors import RecordError, UserInputError
from sentimodal.files import claim_folder, folder_lock, write_json_atomic
from sentimodal.net import FetchError, FetchPolicy, fetch, parse_url
from sentimodal.preparation.dataset import (
    PreparedDataset,
    count_by_split,
)
from sentimodal.progress import progress_bar
from sentimodal.sources.table import cell_text

STATS_FILE = "stats.json"
CAP_REACHED = "total byte cap reached"
#: the marker naming the download an output folder belongs to (a rerun resumes only its own)
OWNER_FILE = ".sentimodal-download.json"
OWNER_FORMAT = "sentimodal-download-output"


@dataclass
class DownloadResult:
    out: Path
    dataset: PreparedDataset
    stats: dict[str, Any]


def download(
    source: str | Path,
    out: str | Path,
    config: DownloadConfig | None = None,
    *,
    progress: bool = True,
    **options: Any,
) -> DownloadResult:
    """Download the images of ``source`` into ``out``; a rerun resumes (see module doc).

    ``options`` override fields of ``config``, e.g. ``download(csv, out, resize=256)``.
    """
    try:
        config = DownloadConfig.model_validate(
            {**(config or DownloadConfig()).to_dict(), **options}
        )
    except ValidationError as exc:
        raise UserInputError(validation_message(exc, "invalid download setting ")) from None
    out = Path(out)
    data = open_source(source, config)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"output {out} exists and is not a folder")
    if data.dataset is not None and out.resolve() == Path(source).resolve():
        raise UserInputError("--out must be a new folder, not the input dataset")
    # one run at a time per folder, and only into an empty folder or this download's own
    with folder_lock(out):
        owner = {"format": OWNER_FORMAT, "source": str(Path(source).resolve())}
        claim_folder(out, OWNER_FILE, owner)
        return _download_into(data, out, config, progress)


def _download_into(
    data: Source, out: Path, config: DownloadConfig, progress: bool
) -> DownloadResult:
    rows = data.urls()
    settings = {
        "allow_private_addresses": config.allow_private_addresses,
        "max_bytes": config.max_bytes,
        "resize": config.resize,
    }
    book = ShardBook(out, rows, config.shard_size, settings)
    started = time.monotonic()
    run = _Run(book, config)
    run.execute(progress)
    seconds = time.monotonic() - started
    outcomes = run.outcomes
    dataset = _write_dataset(data, out, rows, outcomes, config)
    stats = _stats(data, rows, outcomes, run, config, seconds)
    write_json_atomic(out / STATS_FILE, stats)
    return DownloadResult(out, dataset, stats)


class _Run:
    """One pass over the shards that still have work."""

    def __init__(self, book: ShardBook, config: DownloadConfig) -> None:
        self.book = book
        self.config = config
        self.policy: FetchPolicy = config.fetch_policy()
        self.limiter = HostLimiter(config.per_host, config.host_rate)
        self.outcomes: dict[int, Outcome] = {}
        self.shard_of: dict[int, int] = {}
        self.pending: dict[int, int] = {}
        self.fetched_bytes = 0
        self.fetches = 0
        self.fetched_ok = 0
        self.reused = 0
        self.capped = False
        self._bytes_lock = threading.Lock()

    def execute(self, progress: bool) -> None:
        by_url: dict[str, list[UrlRow]] = defaultdict(list)
        settled: dict[str, Outcome] = {}
        for shard in range(self.book.n_shards):
            known = self.book.known(shard)
            todo = 0
            for row, row_id, url in self.book.shard_rows(shard):
                self.shard_of[row] = shard
                if row in known:
                    self.outcomes[row] = known[row]
                    if known[row].ok:
                        settled.setdefault(url, known[row])
                else:
                    by_url[url].append((row, row_id, url))
                    todo += 1
            self.pending[shard] = todo
        total = sum(len(v) for v in by_url.values())
        with progress_bar(progress, unit="images") as bar:
            task = bar.add_task("download", total=total)

            def settle(url: str, outcome: Outcome) -> None:
                for index, (row, _, _) in enumerate(by_url[url]):
                    # the bytes arrived once, for the first row
                    self._settle(row, outcome if index == 0 else _reused(outcome))
                bar.advance(task, len(by_url[url]))

            for url in [u for u in by_url if u in settled]:
                self.reused += len(by_url[url])
                settle(url, _reused(settled[url]))
            self._fetch_all([u for u in by_url if u not in settled], by_url, settle)

    def _fetch_all(
        self,
        urls: list[str],
        by_url: dict[str, list[UrlRow]],
        settle: Callable[[str, Outcome], None],
    ) -> None:
        limit = 2 * self.config.workers
        queue = iter(urls)
        pool = ThreadPoolExecutor(self.config.workers, thread_name_prefix="download")
        in_flight: dict[Future[Outcome], str] = {}
        try:
            while True:
                while len(in_flight) < limit:
                    url = next(queue, None)
                    if url is None:
                        break
                    if self._over_cap():
                        self.capped = True
                        settle(url, _capped())
                        continue
                    row = by_url[url][0][0]
                    in_flight[pool.submit(self._fetch_one, url, row)] = url
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    settle(in_flight.pop(future), future.result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _over_cap(self) -> bool:
        cap = self.config.max_total_bytes
        with self._bytes_lock:
            return cap is not None and self.fetched_bytes >= cap

    def _fetch_one(self, url: str, row: int) -> Outcome:
        """Fetch, check and store one URL (runs in a pool thread; never raises RecordError)."""
        try:
            target = parse_url(url)
            with self.limiter.slot(target.host):
                response = fetch(url, self.policy)
        except FetchError as exc:
            with self._bytes_lock:
                self.fetches += 1
            reason = f"image download failed: {exc}"
            return Outcome(reason=reason, category=exc.category, retryable=exc.retryable)
        with self._bytes_lock:
            self.fetches += 1
            self.fetched_bytes += len(response.body)
        try:
            checked = check_image(
                response.body, url, self.config.resize, self.config.pixel_budget()
            )
        except RecordError as exc:
            reason = str(exc)
            category = reason.split(":", 1)[0].split(" (", 1)[0].strip()
            return Outcome(reason=reason, category=category, fetched=len(response.body))
        path = self.book.image_path(self.shard_of[row], row, checked.suffix)
        store_file(path, checked.data)
        with self._bytes_lock:
            self.fetched_ok += 1
        return Outcome(
            path=str(path.relative_to(self.book.out)),
            bytes=len(checked.data),
            width=checked.width,
            height=checked.height,
            fetched=len(response.body),
        )

    def _settle(self, row: int, outcome: Outcome) -> None:
        self.outcomes[row] = outcome
        shard = self.shard_of[row]
        self.pending[shard] -= 1
        if self.pending[shard] == 0:
            mine = {r: self.outcomes[r] for r, _, _ in self.book.shard_rows(shard)}
            self.book.write(shard, mine)


def _reused(outcome: Outcome) -> Outcome:
    return Outcome(**{**outcome.__dict__, "fetched": 0})


def _capped() -> Outcome:
    return Outcome(reason=f"not downloaded: {CAP_REACHED}", category=CAP_REACHED, retryable=True)


def _write_dataset(
    data: Source,
    out: Path,
    rows: list[UrlRow],
    outcomes: dict[int, Outcome],
    config: DownloadConfig,
) -> PreparedDataset:
    """The output as a prepared dataset: URL rows that worked point at their files, those that
    failed become rejects (with the URL as location), every other row stays as it was."""
    root = out.resolve()
    frame = data.frame.copy()
    failed: list[int] = []
    rejects: list[dict[str, str]] = []
    images = frame[data.image_column].astype(object).tolist()
    for row, row_id, url in rows:
        outcome = outcomes[row]
        if outcome.ok:
            images[row] = str(root / str(outcome.path))
        else:
            failed.append(row)
            rejects.append({"id": row_id, "location": url, "reason": str(outcome.reason)})
    frame[data.image_column] = images
    frame = frame.drop(index=failed).reset_index(drop=True)
    provenance = {
        "input": str(data.path.resolve()),
        "downloaded": sum(1 for r, _, _ in rows if outcomes[r].ok),
        "failed": len(failed),
        "config": config.to_dict(),
    }
    if data.dataset is not None:
        info = dict(data.dataset.info)
        old_rejects = data.dataset.rejects().to_dict("records")
        labels = list(info["labels"])
        counts = count_by_split(
            frame["split"].astype(str).tolist(), frame["label"].tolist(), labels
        )
        order = [s for s in info.get("counts", {}) if s in counts]
        order += [s for s in counts if s not in order]
        info["counts"] = {name: counts[name] for name in order}
        info["n_examples"] = len(frame)
        info["n_rejects"] = len(old_rejects) + len(rejects)
        info["provenance"] = {**info.get("provenance", {}), "download": provenance}
        rejects = old_rejects + rejects
        PreparedDataset(frame, info).save(out, pd.DataFrame(rejects))
    else:
        # the label set of the whole table: a class whose every image failed is still a class
        label_names = None
        if config.label_column:
            values = (cell_text(v).strip() for v in data.frame[config.label_column].tolist())
            label_names = sorted({v for v in values if v})
        dataset = PreparedDataset.from_dataframe(
            frame,
            text_columns=config.text_columns,
            image_column=data.image_column,
            label_column=config.label_column,
            id_column="__id__",
            split=config.split,
            labels=label_names,
            base_dir=data.path.parent,
        )
        dataset.info["config"]["source"] = "download"
        dataset.info["config"]["id_column"] = config.id_column
        dataset.info["n_rejects"] = len(rejects)
        dataset.info["provenance"] = {**dataset.info["provenance"], "download": provenance}
        dataset.save(out, pd.DataFrame(rejects))
    return PreparedDataset.load(out)


def _stats(
    data: Source,
    rows: list[UrlRow],
    outcomes: dict[int, Outcome],
    run: _Run,
    config: DownloadConfig,
    seconds: float,
) -> dict[str, Any]:
    ok_rows = [outcomes[r] for r, _, _ in rows if outcomes[r].ok]
    failures = Counter(str(outcomes[r].category) for r, _, _ in rows if not outcomes[r].ok)
    stored = {o.path: o.bytes for o in ok_rows}
    return {
        "input": str(data.path),
        "rows": len(data.frame),
        "url_rows": len(rows),
        "unique_urls": len({url for _, _, url in rows}),
        "successes": len(ok_rows),
        "failures": sum(failures.values()),
        "failures_by_reason": dict(sorted(failures.items(), key=lambda kv: (-kv[1], kv[0]))),
        "retryable_failures": sum(
            1 for r, _, _ in rows if not outcomes[r].ok and outcomes[r].retryable
        ),
        "files": len(stored),
        "bytes_stored": sum(stored.values()),
        "this_run": {
            "fetches": run.fetches,
            "fetched_ok": run.fetched_ok,
            "reused": run.reused,
            "bytes_received": run.fetched_bytes,
            "seconds": round(seconds, 3),
            "images_per_second": round(run.fetched_ok / seconds, 2) if seconds > 0 else 0.0,
            "stopped_at_total_byte_cap": run.capped,
        },
        "config": config.to_dict(),
    }
