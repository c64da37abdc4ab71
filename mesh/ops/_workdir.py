"""The working directory `raymesh submit` uploads, looked through for key files first.

Ray stores an uploaded working directory in the cluster (its GCS, then every node that
runs the job), where whoever holds the cluster's token can read it: a ``.env``, a
``*.pem`` or an SSH key in it would be a secret handed over. The scan walks the
directory as Ray's upload does: its default excludes (``.git``, ``.venv``, ``venv``,
``__pycache__``, or ``RAY_OVERRIDE_RUNTIME_ENV_DEFAULT_EXCLUDES``), the runtime_env
``excludes``, and each directory's ``.gitignore`` (unless
``RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1``) and ``.rayignore``, matched with git's rules
(the pathspec library, which Ray's upload uses too).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pathspec import GitIgnoreSpec

__all__ = ["KEY_FILES", "key_files"]

#: The file names refused in an upload, as shown to the user.
KEY_FILES = (".env*", "*.pem", "*.key", "id_* (SSH keys: no extension)")
_KEY_FILE = re.compile(r"^\.env|\.(pem|key)$|^id_[A-Za-z0-9_]+$")
_RAY_DEFAULT_EXCLUDES = ".git,.venv,venv,__pycache__"

_Excluded = Callable[[Path], bool]


def key_files(root: Path, excludes: Sequence[str] = ()) -> list[str]:
    """Return the files under `root` an upload would carry that look like keys.

    Args:
        root: The working directory.
        excludes: The runtime_env ``excludes`` (gitignore patterns, relative to `root`).

    Returns:
        Their paths relative to `root`, sorted.
    """
    defaults = os.environ.get("RAY_OVERRIDE_RUNTIME_ENV_DEFAULT_EXCLUDES", _RAY_DEFAULT_EXCLUDES)
    patterns = [p.strip() for p in defaults.split(",") if p.strip()] + list(excludes)
    found = [
        path for path in _uploaded(root, [_matcher(root, patterns)]) if _KEY_FILE.search(path.name)
    ]
    return sorted(path.relative_to(root).as_posix() for path in found)


def _uploaded(folder: Path, excluded: list[_Excluded]) -> Iterator[Path]:
    # Like Ray's walk: each folder's ignore files apply to what is under it.
    here = [*excluded, *_ignore_files(folder)]
    for path in sorted(folder.iterdir()):
        if any(rule(path) for rule in here):
            continue
        if path.is_dir():
            yield from _uploaded(path, here)
        elif path.is_file():
            yield path


def _ignore_files(folder: Path) -> list[_Excluded]:
    names = [".rayignore"]
    if os.environ.get("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "0") != "1":
        names.insert(0, ".gitignore")
    rules = []
    for name in names:
        ignore = folder / name
        if ignore.is_file():
            rules.append(_matcher(folder, ignore.read_text(errors="replace").splitlines()))
    return rules


def _matcher(base: Path, patterns: Sequence[str]) -> _Excluded:
    spec = GitIgnoreSpec.from_lines(patterns)

    def excluded(path: Path) -> bool:
        relative = path.relative_to(base).as_posix()
        return spec.match_file(relative + "/" if path.is_dir() else relative)

    return excluded
