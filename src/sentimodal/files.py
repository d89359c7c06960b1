"""Writing files so that readers see the old version or the new one, never half of either.

Every artifact the tool writes (datasets, feature shards, model directories, run metrics) goes
through :func:`write_atomic`: the bytes go to a uniquely named staging file in the same folder
(created exclusively, never through a planted symlink), are flushed to disk, and replace the
target in one rename. Two processes writing the same file cannot clobber each other's staging.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sentimodal.errors import RecordError, SentimodalError, UserInputError

#: the most bytes a small file (a config, a JSON sidecar, a post's text) may hold by default
SMALL_FILE_LIMIT = 1 << 20

_READ_CHUNK = 1 << 20

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


def check_regular(path: str | Path, error: type[SentimodalError] = RecordError) -> None:
    """Refuse anything but a regular file (a FIFO would block a reader, a device never ends)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise error(f"file not found: {path}") from None
    except OSError as exc:
        raise error(f"unreadable file {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise error(f"not a regular file: {path} ({_kind(mode)})")


def check_inside(
    path: str | Path, root: str | Path, error: type[SentimodalError] = RecordError
) -> None:
    """Refuse a path whose real location (symlinks followed) is outside ``root``: a link in a
    dataset folder to /etc/passwd must not become a post's text or image."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    if os.path.commonpath([real, top]) != top:
        raise error(f"{path} is a link that leaves the dataset folder {root} (to {real})")


def read_regular(
    path: str | Path,
    limit: int = SMALL_FILE_LIMIT,
    error: type[SentimodalError] = RecordError,
) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, else ``error`` saying why.

    The file is opened without blocking (a FIFO planted between a check and the open cannot
    hang the reader) and checked on the open descriptor, so what is read is what was checked.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise error(f"file not found: {path}") from None
    except OSError as exc:
        raise error(f"unreadable file {path}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"not a regular file: {path} ({_kind(mode)})")
        if os.fstat(fd).st_size > limit:
            raise error(f"{path} is larger than {limit:,} bytes")
        chunks, size = [], 0
        # in pieces: one read(limit) would allocate the whole cap up front, for any file
        while size <= limit and (chunk := os.read(fd, min(_READ_CHUNK, limit + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:  # the file grew while it was read
        raise error(f"{path} is larger than {limit:,} bytes")
    return b"".join(chunks)


def read_user_text(path: str | Path, limit: int, what: str) -> str:
    """A small text file the user gave (a config, a score table): a regular file of at most
    ``limit`` bytes, UTF-8 with or without a BOM; anything else is one line naming ``what``."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"{what} not found: {path}")
    raw = read_regular(path, limit, error=UserInputError)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserInputError(
            f"{what} {path} is not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None


def read_tagged_json(path: Path, tag: str, what: str, limit: int = 16 * 1024 * 1024) -> dict:
    """A JSON object this project wrote, known by its ``format`` tag (a manifest, a progress
    file): anything else, or a file that cannot be read, is one line naming ``what``."""
    raw = read_regular(path, limit, error=UserInputError)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        message = " ".join(str(exc).split())
        raise UserInputError(f"{path}: unreadable {what} ({message})") from None
    if not isinstance(data, dict) or data.get("format") != tag:
        raise UserInputError(f"{path}: not a sentimodal {what}")
    return data


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"


def check_output_folder(path: str | Path) -> Path:
    """Refuse, before any long work, an output folder that cannot be written: an empty name,
    an existing file, or a folder (or its nearest existing parent) without write access."""
    if not str(path).strip():
        raise UserInputError("the output folder name is empty")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserInputError(f"output {path} exists and is not a folder")
    _check_parent_writable(path)
    return path


def check_writable(path: str | Path) -> Path:
    """Refuse, before any long work, an output file that cannot be written: a folder, a
    device or FIFO (``/dev/full``), or a path in a folder without write access."""
    if not str(path).strip():
        raise UserInputError("the output file name is empty")
    path = Path(path)
    if path.exists() and not path.is_file():
        raise UserInputError(
            f"output {path} is not a regular file ({_kind(os.stat(path).st_mode)})"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise UserInputError(f"output {path} is not writable")
    _check_parent_writable(path.parent)
    return path


def _check_parent_writable(path: Path) -> None:
    """The folder itself when it exists, else its nearest existing ancestor, must be writable."""
    existing = Path(os.path.abspath(path))
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserInputError(f"cannot create {path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserInputError(f"cannot write into {existing}: permission denied")


#: the lock file a writer holds in an output folder while it works there
LOCK_FILE = ".sentimodal.lock"


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """Hold the output ``folder`` exclusively while a writer works in it (created if needed).

    A second writer fails at once with "in use by pid N". The lock is an advisory POSIX lock
    (``lockf``) on ``folder/.sentimodal.lock``: the kernel releases it when its process dies,
    so the lock of a killed run is stale and simply taken over, and unlike ``flock`` it is not
    inherited by forked workers that may outlive a killed parent. The file is removed on
    release; a writer that locked a file which was removed meanwhile tries again on the new one.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    key = (os.getpid(), str(folder.resolve()))  # a forked child holds nothing
    if key in _HELD:  # this process holds it already (a save inside a locked run): releasing
        yield path  # an inner lockf would release the outer one too
        return
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    while True:
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise UserInputError(f"cannot lock {folder}: {exc.strerror or exc}") from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                os.close(fd)
                raise UserInputError(f"cannot lock {folder}: {exc.strerror or exc}") from None
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise UserInputError(
                f"{folder} is in use by pid {holder} (another sentimodal run writes there); "
                "wait for it to finish or choose another folder"
            ) from None
        if _same_file(path, fd):
            break
        os.close(fd)  # the file was removed by its last holder between our open and lock
    _HELD.add(key)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        _HELD.discard(key)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)


#: folders whose lock this process holds (POSIX locks belong to the process, not the fd)
_HELD: set[tuple[int, str]] = set()


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def claim_folder(folder: str | Path, marker: str, owner: dict[str, Any]) -> None:
    """Make sure an output ``folder`` is empty or already ``owner``'s: a rerun resumes its own
    output, but never writes over unrelated data. ``folder/marker`` (JSON) names the owner;
    an empty folder (its lock file aside) is claimed by writing it."""
    folder = Path(folder)
    path = folder / marker
    if path.is_file():
        try:
            found = json.loads(read_regular(path, 1024 * 1024, UserInputError))
        except ValueError:
            found = None
        if found == owner:
            return
        raise UserInputError(
            f"{folder} holds the output of another run ({path.name} differs): choose another "
            "folder or remove it"
        )
    if any(entry.name != LOCK_FILE for entry in folder.iterdir()):
        raise UserInputError(
            f"{folder} is not empty and was not written by this command: choose a new folder"
        )
    write_json_atomic(path, owner)
