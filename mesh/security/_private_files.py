"""Files only their owner can read: raymesh's home, traces, snapshots, stores, certificates.

What raymesh keeps on disk (saved traces with prompts and answers, agents' state, memory
stores, the head's records and logs, certificates) is for the user who ran it. Each such
file is created 0600 from the start (never written first and narrowed after, which leaves
a window), each directory 0700, and a directory of ours found looser is tightened.
Replacing writes go through a private temp file that is fsynced and renamed, so a reader
sees the old content or the new, never a torn file, even after a crash.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

from mesh.errors import ConfigError

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "narrow",
    "open_private",
    "private_dir",
    "private_file",
    "write_private",
]

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: str | Path) -> Path:
    """Create `path` (and missing parents) 0700, or tighten it to 0700 if it is ours; return it.

    Raises:
        ConfigError: It is not a directory, belongs to another user and others can
            enter it, or is a shared directory (world-writable, like ``/tmp``).
    """
    path = Path(path).expanduser()
    # mkdir(parents=True) gives the parents it makes the umask's mode, not `mode`.
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            folder.mkdir(mode=DIR_MODE)
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{path} is not a directory", hint="point it at a directory")
    if info.st_mode & 0o077 and info.st_mode & stat.S_IWOTH:
        # Narrowing /tmp (or any shared drop box) would lock every other user out of it.
        raise ConfigError(
            f"{path} is a shared directory (mode {stat.S_IMODE(info.st_mode):04o})",
            hint=f"use a directory of its own, e.g. {path / 'raymesh'}",
        )
    narrow(path, DIR_MODE)
    return path


def private_file(path: str | Path) -> Path:
    """Make sure `path` exists and only its owner can read it (create it empty if missing).

    For files another library then opens itself (a SQLite database): it finds the
    file already private, and SQLite gives its journal the database file's mode.

    Raises:
        ConfigError: It belongs to another user and others can read it.
    """
    path = Path(path).expanduser()
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    narrow(path, FILE_MODE)
    return path


def narrow(path: Path, mode: int) -> bool:
    """Take group's and others' access to `path` away (set `mode`); return True if it changed.

    Raises:
        FileNotFoundError: There is no `path`.
        ConfigError: Group or others have access and the file is another user's.
    """
    info = path.stat()
    if not info.st_mode & 0o077:
        return False
    if info.st_uid != os.getuid():
        raise ConfigError(
            f"{path} has mode {stat.S_IMODE(info.st_mode):04o} and belongs to another user",
            hint=f"have its owner run: chmod {mode:o} {path}",
        )
    path.chmod(mode)
    return True


def open_private(path: str | Path) -> BinaryIO:
    """Open `path` for writing from its start (binary), as a file only its owner can read.

    For files written as a stream (a log); whole contents go through `write_private`.
    """
    path = private_file(path)
    return open(os.open(path, os.O_WRONLY | os.O_TRUNC), "wb")


def write_private(path: str | Path, data: bytes | str, *, keep_existing: bool = False) -> Path:
    """Replace `path` with `data` atomically and durably, readable by its owner only.

    The data goes to a new temp file in the same directory (created 0600 with
    ``O_EXCL``, so never one an attacker placed there), is fsynced, renamed over
    `path`, and the directory is fsynced so that the rename survives a crash. The
    directory is created 0700 if missing. With `keep_existing`, a `path` that exists
    (made meanwhile by another process) is left as it is: the data is linked in place,
    never renamed over it.
    """
    path = Path(path).expanduser()
    folder = path.parent
    if not folder.is_dir():
        private_dir(folder)
    raw = data.encode() if isinstance(data, str) else data
    temp = folder / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with open(fd, "wb") as out:
            out.write(raw)
            out.flush()
            os.fsync(out.fileno())
        if keep_existing:
            with contextlib.suppress(FileExistsError):
                os.link(temp, path)
            temp.unlink()
        else:
            os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(folder)
    return path


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
