"""Writing files so that readers see the old version or the new one, never half of either.

Every artifact the tool writes (datasets, feature shards, model directories, run metrics) goes
through :func:`write_atomic`: the bytes go to a uniquely named staging file in the same folder
(created exclusively, never through a planted symlink), are flushed to disk, and replace the
target in one rename. Two processes writing the same file cannot clobber each other's staging.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

#: staging files start with this, so a cleanup can find what a killed writer left behind
STAGING_PREFIX = ".staging-"


def staging_path(path: Path) -> Path:
    """A fresh, unique name beside ``path`` for bytes on their way to it."""
    return path.with_name(f"{STAGING_PREFIX}{path.name}.{os.getpid()}.{secrets.token_hex(4)}")


def open_staging(path: Path) -> tuple[Path, int]:
    """Create a staging file for ``path`` exclusively (no symlink followed); returns its fd."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    staged = staging_path(path)
    return staged, os.open(staged, flags, 0o644)


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically and durably (fsync before the rename)."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    staged, fd = open_staging(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staged, path)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """JSON (UTF-8, indented, non-ASCII kept) written with :func:`write_atomic`."""
    return write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=float) + "\n")


def remove_staging(folder: Path) -> None:
    """Delete staging files a killed writer left in ``folder``."""
    for leftover in folder.glob(f"{STAGING_PREFIX}*"):
        leftover.unlink(missing_ok=True)
