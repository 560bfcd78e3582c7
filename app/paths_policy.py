"""What files the app may read on the server, and how long uploads live (pure functions, no Streamlit).

Checkpoint paths typed into the app are limited to the runs folder and the folders listed in
``$HRNET_EXPLORER_CHECKPOINT_DIRS`` (``os.pathsep``-separated): no ``..``, no /proc, /sys or /dev, and
the same refusal whether a path outside them exists or not (the box is no oracle of the server's
files). COCO data folders typed into the Ablation page are limited the same way to the project's
``data/`` and ``$HRNET_EXPLORER_DATA_DIRS``. Uploaded checkpoints are written to ``upload_dir()`` and
deleted when their session ends (an ``UploadLease`` kept in the session state) or after ``UPLOAD_MAX_AGE_S`` at the latest.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import weakref
from pathlib import Path

from analysis.ablation.files import atomic_target
from analysis.settings import CHECKPOINT_DIRS_ENV, DATA_DIRS_ENV, checkpoint_dirs, data_dirs, project_data_dir
from hrnet_core import CheckpointError, UserInputError
from hrnet_core.errors import quote

UPLOAD_MAX_AGE_S = 3600
NEVER = (Path("/proc"), Path("/sys"), Path("/dev"))
_SUFFIX = re.compile(r"^(\.[A-Za-z0-9]{1,8}){0,2}$")


def allowed_roots(runs_root: Path, env: dict | None = None) -> list[Path]:
    """The folders checkpoint paths may lie in: ``runs_root`` and ``$HRNET_EXPLORER_CHECKPOINT_DIRS``."""
    extra = checkpoint_dirs(env)
    return [Path(os.path.realpath(p)) for p in [Path(runs_root), *extra]]


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def server_checkpoint(text: str, roots: list[Path]) -> Path:
    """The real path of the checkpoint ``text`` names, if it lies inside one of ``roots`` (a relative
    path is taken inside the first). Raises ``CheckpointError`` otherwise, saying nothing about whether
    the path exists."""
    return _server_path(text, roots, "checkpoint", "the runs folder", CHECKPOINT_DIRS_ENV, CheckpointError)


class DataFolderError(UserInputError):
    """A data folder typed into the app lies outside the folders it may read."""


def data_roots(env: dict | None = None) -> list[Path]:
    """The folders a COCO data folder typed into the Ablation page may lie in: the project's ``data/``
    and ``$HRNET_EXPLORER_DATA_DIRS`` (``os.pathsep``-separated)."""
    return [Path(os.path.realpath(p)) for p in [project_data_dir(), *data_dirs(env)]]


def server_data_folder(text: str, roots: list[Path]) -> Path:
    """The real path of the data folder ``text`` names, if it lies inside one of ``roots``; raises
    ``DataFolderError`` otherwise, with the same words whether the folder exists or not."""
    return _server_path(text, roots, "data folder", "the project's data folder", DATA_DIRS_ENV, DataFolderError)


def _server_path(text: str, roots: list[Path], what: str, home: str, env_name: str,
                 error: type[UserInputError]) -> Path:
    """``text``'s real path inside ``roots`` (``home`` first, then ``$env_name``'s folders), else ``error``."""
    text = (text or "").strip()
    where = home + (f" and ${env_name}" if len(roots) > 1 else f" (add folders with ${env_name})")
    # The same words whether the path exists or not: the box is no oracle of the server's files.
    refusal = error(f"{quote(text)}: no such {what} in the folders the app may read ({where})")
    if not text or len(text) > 4096 or re.search("[\x00\ud800-\udfff]", text):
        raise refusal
    path = Path(text).expanduser()
    if ".." in path.parts:
        raise error(f"{quote(text)}: '..' is not allowed in a {what} path")
    if not path.is_absolute():
        path = roots[0] / path
    real = Path(os.path.realpath(path))  # symlinks followed: a link inside a root may not point outside
    if any(_inside(real, n) for n in NEVER) or not any(_inside(real, r) for r in roots):
        raise refusal
    return real


def upload_dir() -> Path:
    return Path(tempfile.gettempdir()) / "hrnet-explorer-uploads"


def prune_uploads(folder: Path | None = None, max_age_s: float = UPLOAD_MAX_AGE_S, now: float | None = None) -> list[Path]:
    """Delete the uploads in ``folder`` last used more than ``max_age_s`` ago; the paths deleted."""
    folder = upload_dir() if folder is None else Path(folder)
    now = time.time() if now is None else now
    gone = []
    if not folder.is_dir():
        return gone
    for p in folder.iterdir():
        try:
            if p.is_file() and now - p.stat().st_mtime > max_age_s:
                p.unlink()
                gone.append(p)
        except OSError:  # removed meanwhile by another session
            continue
    return gone


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class UploadLease:
    """An uploaded file on disk for as long as this object lives (keep it in the session state): the
    file is deleted when the lease is garbage-collected (the session ended) or ``release``d."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._finalizer = weakref.finalize(self, _remove, str(self.path))

    def release(self) -> None:
        self._finalizer()


def stash_upload(data: bytes, suffix: str, folder: Path | None = None, max_age_s: float = UPLOAD_MAX_AGE_S) -> UploadLease:
    """Write ``data`` (an uploaded checkpoint) to a fresh file in ``folder`` (``load_checkpoint`` reads
    paths) and return its lease; uploads older than ``max_age_s`` are deleted first."""
    folder = upload_dir() if folder is None else Path(folder)
    prune_uploads(folder, max_age_s)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = suffix if _SUFFIX.match(suffix or "") else ".pth"
    path = folder / f"{os.urandom(8).hex()}{suffix}"
    with atomic_target(path) as tmp:
        tmp.write_bytes(data)
    return UploadLease(path)
