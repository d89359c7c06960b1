"""The downloader's resumable state: one manifest per shard of URL rows, written atomically
once every row of the shard has an outcome. A rerun trusts a manifest's successes whose file
is still there with its size, retries its failures that can succeed later (timeouts, 429,
5xx, connection errors, an exhausted byte budget) and keeps the others."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sentimodal.files import open_staging, write_json_atomic

SHARDS_DIR = "shards"
IMAGES_DIR = "images"
MANIFEST_FORMAT = "sentimodal-download-shard"


@dataclass
class Outcome:
    """What became of one URL: a stored file (``path`` relative to the output folder) or a
    failure with its reason, statistics category and whether a retry can succeed."""

    path: str | None = None
    bytes: int = 0
    width: int = 0
    height: int = 0
    reason: str | None = None
    category: str | None = None
    retryable: bool = False
    #: bytes received over the network for it in this run (0 when reused)
    fetched: int = 0

    @property
    def ok(self) -> bool:
        return self.path is not None


#: (row in the input, id, url)
UrlRow = tuple[int, str, str]


class ShardBook:
    """Shard i holds URL rows ``[i * size, (i + 1) * size)`` of the input, in input order."""

    def __init__(
        self, out: Path, rows: list[UrlRow], size: int, settings: dict[str, Any] | None = None
    ) -> None:
        self.out = out
        self.rows = rows
        self.size = size
        #: what decides an outcome (address rules, caps, resizing): a shard settled under other
        #: settings is done again
        self.settings = settings or {}
        (out / SHARDS_DIR).mkdir(parents=True, exist_ok=True)

    @property
    def n_shards(self) -> int:
        return (len(self.rows) + self.size - 1) // self.size

    def shard_rows(self, shard: int) -> list[UrlRow]:
        return self.rows[shard * self.size : (shard + 1) * self.size]

    def manifest_path(self, shard: int) -> Path:
        return self.out / SHARDS_DIR / f"shard-{shard:05d}.json"

    def image_path(self, shard: int, row: int, suffix: str) -> Path:
        return self.out / IMAGES_DIR / f"{shard:05d}" / f"{row:09d}.{suffix}"

    def known(self, shard: int) -> dict[int, Outcome]:
        """Outcomes an earlier run settled for this shard's rows (retryable failures and
        vanished files are left out, so they are done again)."""
        path = self.manifest_path(shard)
        if not path.is_file():
            return {}
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            return {}
        expected = [[row, url] for row, _, url in self.shard_rows(shard)]
        if (
            manifest.get("format") != MANIFEST_FORMAT
            or manifest.get("rows") != expected
            or manifest.get("settings") != self.settings
        ):
            return {}  # the input or the settings changed: this shard is redone
        known: dict[int, Outcome] = {}
        for (row, _), fields in zip(expected, manifest["outcomes"], strict=True):
            outcome = Outcome(**{k: v for k, v in fields.items() if k != "fetched"})
            if outcome.ok and not self._intact(outcome):
                continue
            if not outcome.ok and outcome.retryable:
                continue
            known[row] = outcome
        return known

    def _intact(self, outcome: Outcome) -> bool:
        assert outcome.path is not None
        try:
            return (self.out / outcome.path).stat().st_size == outcome.bytes
        except OSError:
            return False

    def write(self, shard: int, outcomes: dict[int, Outcome]) -> None:
        rows = self.shard_rows(shard)
        fields: list[dict[str, Any]] = []
        for row, _, _ in rows:
            entry = asdict(outcomes[row])
            entry.pop("fetched")
            fields.append(entry)
        write_json_atomic(
            self.manifest_path(shard),
            {
                "format": MANIFEST_FORMAT,
                "settings": self.settings,
                "rows": [[row, url] for row, _, url in rows],
                "outcomes": fields,
            },
        )


def store_file(path: Path, data: bytes) -> None:
    """Write an image under a staging name and rename it (no fsync: the shard manifest, which
    is synced, records the size, and a rerun redoes a file that does not match it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged, fd = open_staging(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(staged, path)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
