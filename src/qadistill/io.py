"""Atomic file writes: a reader never sees a half-written result, checkpoint or split file.

Also what every command that writes a folder shares: failures of the file system as one line naming the path
(`WriteError`), an exclusive lock on an output folder (`run_lock`), and removal of what killed writes left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qadistill.errors import QADistillError


class WriteError(QADistillError, OSError):
    """An output file or folder cannot be written (not a folder, no permission, disk full): one line naming it.

    Still an `OSError`, so callers that tolerate unwritable caches keep catching it.
    """


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp / mkdtemp create 0600 / 0700 entries; outputs should be as readable as anything else the user writes
# (0644 / 0755 with the usual umask 022). Read once: changing the umask is process-wide.
_UMASK = _umask()
_FILE_MODE, _DIR_MODE = 0o666 & ~_UMASK, 0o777 & ~_UMASK


def _write_error(path: Path, exc: OSError) -> WriteError:
    return WriteError(f"cannot write {path}: {exc.strerror or exc}")


# Libraries that write files natively report the OS error in their own exception type: safetensors (Rust) as
# "... No space left on device (os error 28)"; torch's zip writer as a RuntimeError raised while the OSError of
# the file object it writes to is being handled.
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def os_error_of(exc: BaseException) -> OSError | None:
    """The file system error behind `exc` (itself, its cause or context, or a native library's message)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            return current
        match = _RUST_OS_ERROR.search(str(current))
        if match:
            code = int(match.group(1))
            return OSError(code, os.strerror(code))
        current = current.__cause__ or current.__context__
    return None


def _full(folder: Path) -> bool:
    """No space left for an unprivileged writer on `folder`'s file system (a native writer that hid the error)."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < 64 * 1024


def ensure_dir(path: str | Path) -> Path:
    """Create folder `path` (and its parents) or fail with one line naming it, e.g. when a file has its name."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise WriteError(f"cannot create folder {path}: a file is in the way") from None
    except OSError as exc:
        raise WriteError(f"cannot create folder {path}: {exc.strerror or exc}") from None
    return path


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    ensure_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), _FILE_MODE)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _write_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented UTF-8 JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `path` in one rename.

    Used for model folders and checkpoints: either the old complete folder or the new complete one exists.
    """
    path = Path(path)
    ensure_dir(path.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise _write_error(path, exc) from None
    tmp.chmod(_DIR_MODE)
    try:
        try:
            yield tmp
            _usual_modes(tmp)
        except QADistillError:
            raise
        except Exception as exc:  # what the writers raised: a full disk is one line naming the folder
            cause = os_error_of(exc) or (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) if _full(tmp) else None)
            if cause is None:
                raise
            raise _write_error(path, cause) from None
        if path.exists():
            # One atomic swap where the OS has it: two renames would leave a moment with no `path` at all, and a
            # kill in that moment would make a resumed run find no checkpoint and silently start over.
            if _exchange(tmp, path):
                shutil.rmtree(tmp, ignore_errors=True)  # now holds the previous version
            else:
                old = path.with_name(f".{path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _usual_modes(folder: Path) -> None:
    """Files as readable as anything else the user writes: some writers (transformers' safetensors shards) make
    them 0600 through a temporary file."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            os.chmod(os.path.join(root, name), _FILE_MODE)


# Temporary entries of `atomic_write_text` / `atomic_dir` (`.<name>.<random>.tmp`) and the fallback swap's
# `.<name>.old`: what a process killed in the middle of a write leaves behind.
_TEMP_NAME = re.compile(r"^\.(.+)\.(?:[a-z0-9_]+\.tmp|old)$")


def remove_stale_temps(folder: str | Path, names: Collection[str] | None = None) -> list[Path]:
    """Remove what killed writes left directly in `folder` (only those of outputs called `names`, if given);
    call it only while holding the folder's lock. Returns what was removed. Never recursive.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _TEMP_NAME.match(entry.name)
        if not match or (names is not None and match.group(1) not in names) or entry.is_symlink():
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


LOCK_FILE = ".run.lock"


def is_locked(path: Path) -> bool:
    """Whether a live process holds the flock of `path` (`run_lock`, a stage's lock); False if it does not exist."""
    try:
        handle = path.open("r")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


@contextlib.contextmanager
def run_lock(folder: str | Path, holder: str = "qadistill run") -> Iterator[None]:
    """Hold an exclusive lock on an output folder; a second writer to the same folder fails at once.

    The lock is an flock, released by the OS when the process ends however it ends, so a killed run never
    leaves a stale lock behind. The lock file names its holder (`holder` and the process id) for the message a
    second writer gets. `folder` must exist.
    """
    folder = Path(folder)
    path = folder / LOCK_FILE
    try:
        handle = path.open("a+")
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise QADistillError(
                f"output folder {folder} is in use by another qadistill process ({owner}); wait for it or use "
                "another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{holder}, pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if sys.platform != "linux":
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # no libc symbol (glibc < 2.28, musl)
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # old kernel or a file system without it
        return False
    raise OSError(code, os.strerror(code), str(b))
