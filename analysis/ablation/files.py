"""Small, crash-safe file helpers shared by the runner, the trainer, the launcher and the progress reader:
atomic writes, and bounded JSON / JSON-lines reading (``analysis.ablation.run_folder`` builds the
validated views of a run folder on these).

Reading is bounded whatever a file holds: at most ``MAX_JSON_BYTES`` for one JSON document,
``MAX_JSONL_BYTES`` and ``MAX_JSONL_LINES`` for a JSON-lines file, ``MAX_JSON_DEPTH`` levels of
nesting, and only regular files (a device or a pipe is refused before it is opened). A problem is a
``RunFolderError``: one line naming the file (and the line).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

from hrnet_core.errors import UserInputError, quote

# How a worker started by the app ended (written by analysis.ablation.launch, read by the run list).
WORKER_NAME = "worker.json"
# What the app launched (pid, argv, the request), written before the worker starts.
LAUNCH_NAME = "launch.json"
REQUEST_NAME = "ablation.json"  # the runner's request
STATUS_NAME = "status.json"  # the runner's (run folder) and the trainer's (job folder) state
LOCK_NAME = ".lock"  # held by the ablation writing the folder
# Written when this tool makes (or first uses) a run folder: ``ablate --out`` uses only a new or empty
# folder or one holding this file (``analysis.ablation.run_folder.check_run_folder_use``).
MARKER_NAME = ".hrnet-explorer-run"
LOG_NAME = "worker.log"  # the app's worker's stdout and stderr
BASE_NAME = "base.yaml"  # the base config the app launched a run with
# Stop pressed while the worker was still starting (before it could take a signal): it stops when it is up.
STOP_REQUEST_NAME = "stop.request"
REPORT_NAMES = ("report.md", "report.html", "summary.csv", "summary.json")
# Names a run folder's own files take (so no variant's job folder may take them).
RUN_FILE_NAMES = frozenset({WORKER_NAME, LAUNCH_NAME, REQUEST_NAME, STATUS_NAME, LOCK_NAME, MARKER_NAME, LOG_NAME,
                            BASE_NAME, STOP_REQUEST_NAME, *REPORT_NAMES})

MAX_JSON_BYTES = 1 << 20  # one JSON document (ablation.json of a run is ~3 KB, status.json < 1 KB)
MAX_JSONL_BYTES = 32 << 20  # metrics.jsonl: ~1 KB per epoch, 210 epochs for the paper's schedule
MAX_JSONL_LINES = 100_000
MAX_JSON_DEPTH = 32  # the runner's files nest 4 levels


class RunFolderError(UserInputError):
    """A file of a run folder that cannot be used: one line naming the file, the line and the field."""


@contextlib.contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` when the block succeeds, so
    readers never see half a file. On any failure (disk full, a kill turned into an exception, a bug in
    the writer) the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1))


def write_jsonl(path: Path, rows: list[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


# ---- bounded reading ----------------------------------------------------------------------------
def read_bytes_bounded(path: Path, limit: int) -> bytes | None:
    """The bytes of the regular file ``path``, or ``None`` when it does not exist.

    Raises ``RunFolderError``: a folder, a device or a pipe (refused before opening, so nothing blocks),
    a file above ``limit`` bytes, or one that cannot be read."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise RunFolderError(f"{path}: cannot be read ({err.strerror or err.__class__.__name__})") from None
    if stat.S_ISDIR(st.st_mode):
        raise RunFolderError(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise RunFolderError(f"{path}: is not a regular file (a device or a pipe)")
    if st.st_size > limit:
        raise RunFolderError(f"{path}: is {st.st_size:,} bytes; at most {limit:,} are read")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)  # the file may have grown since the stat
    except OSError as err:
        raise RunFolderError(f"{path}: cannot be read ({err.strerror or err.__class__.__name__})") from None
    if len(data) > limit:
        raise RunFolderError(f"{path}: is more than {limit:,} bytes; at most {limit:,} are read")
    return data


def _depth(value) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), iteratively: no recursion on hostile input."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            depth += 1
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:  # deeper is refused anyway: no need to walk it
                stack.extend((v, depth) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_json(data: bytes, where: str) -> object:
    """The JSON value of ``data``; ``where`` names it in errors ("path" or "path line 3").

    Raises ``RunFolderError``: not UTF-8 text, not JSON, nested deeper than ``MAX_JSON_DEPTH``, or an
    integer too long to convert."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RunFolderError(f"{where}: not UTF-8 text (byte {err.start}): binary data, not JSON") from None
    try:
        value = json.loads(text)
    except RecursionError:  # json's C parser stops at the interpreter's recursion limit
        raise RunFolderError(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as err:
        raise RunFolderError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
    except ValueError as err:  # e.g. an integer of more than 4300 digits
        raise RunFolderError(f"{where}: not usable JSON ({quote(str(err), 120)[1:-1]})") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise RunFolderError(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def load_json_file(path: Path, limit: int = MAX_JSON_BYTES) -> object | None:
    """The JSON value in ``path`` (any type), or ``None`` when the file does not exist.
    Raises ``RunFolderError`` (``read_bytes_bounded``, ``parse_json``)."""
    data = read_bytes_bounded(path, limit)
    return None if data is None else parse_json(data, str(path))


def load_json_lines(path: Path, limit: int = MAX_JSONL_BYTES, max_lines: int = MAX_JSONL_LINES) -> list[tuple[int, object]]:
    """``(line number, value)`` of every JSON line of ``path`` (1-based; blank lines skipped; ``[]`` when
    the file does not exist).

    A torn last line (a kill while appending: no newline at the end, the start of an object that does
    not parse) is skipped silently. Raises ``RunFolderError`` for any other line that is not JSON (binary,
    nested too deep) and for a file above ``limit`` bytes or ``max_lines`` lines."""
    data = read_bytes_bounded(path, limit)
    if data is None:
        return []
    lines = data.split(b"\n")
    if len(lines) > max_lines + 1:
        raise RunFolderError(f"{path}: has more than {max_lines:,} lines; at most {max_lines:,} are read")
    out = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        last = number == len(lines)  # no newline after it
        try:
            out.append((number, parse_json(raw, f"{path} line {number}")))
        except RunFolderError:
            if last and _torn(raw):
                continue
            raise
    return out


def _torn(raw: bytes) -> bool:
    """Whether ``raw`` looks like the start of a JSON object cut short (what a kill mid-append leaves):
    ASCII (the writer escapes everything else) beginning with ``{`` and not complete JSON."""
    try:
        text = raw.decode("ascii").strip()
        json.loads(text)
    except UnicodeDecodeError:
        return False
    except RecursionError:
        return False
    except ValueError:
        return text.startswith("{")
    return False


def read_json(path: Path) -> dict:
    """The JSON object in ``path``, or ``{}`` when it is missing, torn, too large, not an object or not
    a regular file: for the writers' read-modify-write of their own records (``status.json``).
    Readers that show or trust a file use ``analysis.ablation.run_folder``, which says what is wrong."""
    try:
        d = load_json_file(path)
    except RunFolderError:
        return {}
    return d if isinstance(d, dict) else {}


def read_jsonl(path: Path) -> list[dict]:
    """The JSON-object lines of ``path`` (``load_json_lines``: bounded, a torn last line skipped).
    Raises ``RunFolderError`` naming the line for a line that is not a JSON object."""
    rows = []
    for number, value in load_json_lines(path):
        if not isinstance(value, dict):
            raise RunFolderError(f"{path} line {number}: not a JSON object (got {type(value).__name__})")
        rows.append(value)
    return rows
