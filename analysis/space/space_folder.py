"""Space folders (``space sample --out DIR``) and report folders (``space report --out R``) on disk.

A space folder holds ``space.yaml`` (the space as read), ``samples.jsonl`` (one sample a line) and the marker
``.hrnet-explorer-space``; the training step adds ``results.jsonl``. A report folder holds ``summary.json``,
``report.html``, ``report.md``, ``figures/`` and the marker ``.hrnet-explorer-space-report``. The tool writes only
into a folder that does not exist yet (made when the results are ready, not before), an empty one, or one it made
itself (its marker); anything else is refused before any work, with nothing written or deleted. Every file is
written atomically (a temporary file renamed over it: ``analysis.ablation.files.atomic_target``).

``results.jsonl``, one JSON object a line: ``id`` (a sample's), ``status`` (``done`` or ``failed``), ``ap`` (COCO
keypoint AP as a fraction 0..1 for a done sample: the report's error is ``1 - ap``), ``epochs`` (trained),
``seconds`` (wall time) and, for a failed sample, an optional ``error`` text. Another line for the same id later in
the file replaces the earlier one (a retried sample). Reading is bounded (``analysis.ablation.files``).
"""

from __future__ import annotations

import math
from pathlib import Path

from analysis.ablation.files import atomic_target, load_json_lines, write_text_atomic
from hrnet_core.errors import UserInputError, quote

SPACE_MARKER = ".hrnet-explorer-space"
REPORT_MARKER = ".hrnet-explorer-space-report"
SPACE_FILE = "space.yaml"
SAMPLES_FILE = "samples.jsonl"
RESULTS_FILE = "results.jsonl"
MAX_SAMPLES_BYTES = 1 << 30  # a million samples of a few hundred bytes to 1 KB each
MAX_LINES = 1_000_000
STATUSES = ("done", "failed")


class SpaceFolderError(UserInputError):
    """A folder that the tool may not write into, or a file of a space folder that cannot be used (one line naming
    the file, the line and the field)."""


def check_out_folder(path: str | Path, flag: str, marker: str, what: str) -> Path:
    """``path`` if the tool may write ``what`` (a space / report folder) into it: absent, empty, or holding
    ``marker``. Else ``SpaceFolderError`` naming ``flag``; nothing is written or deleted. (Whether the folder can be
    created and written is the command line's check: ``analysis.cli.args.output_dir``.)"""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise SpaceFolderError(f"{flag} {path}: exists and is not a folder")
        try:
            entries = [p.name for p in path.iterdir()]
        except OSError as err:
            raise SpaceFolderError(f"{flag} {path}: cannot be read ({err.strerror or type(err).__name__})") from None
        if entries and marker not in entries:
            raise SpaceFolderError(f"{flag} {path}: is not empty and not a {what} made by hrnet-explorer (no {marker} "
                                   f"in it; it holds {quote(sorted(entries)[0])}); give a new or empty folder")
    return path


def check_space_out(path: str | Path) -> Path:
    """``check_out_folder`` for ``space sample --out``; also refuses a space folder that already holds
    ``results.jsonl`` (new samples would orphan its results)."""
    path = check_out_folder(path, "--out", SPACE_MARKER, "space folder")
    if (path / RESULTS_FILE).exists():
        raise SpaceFolderError(f"--out {path}: holds {RESULTS_FILE} (trained samples); sampling again would orphan "
                               "those results: give a new folder")
    return path


def write_files(folder: Path, marker: str, files: dict[str, str | bytes]) -> dict[str, Path]:
    """Make ``folder`` (with parents), write ``marker`` and then each ``name -> text or bytes`` atomically (a name
    may hold one sub-folder: ``figures/edf.png``). Returns ``name -> path``."""
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / marker, "hrnet-explorer\n")
    out = {}
    for name, data in files.items():
        target = folder / name
        target.parent.mkdir(exist_ok=True)
        with atomic_target(target) as tmp:
            if isinstance(data, bytes):
                tmp.write_bytes(data)
            else:
                tmp.write_text(data, encoding="utf-8")
        out[name] = target
    return out


def is_space_folder(path: Path) -> bool:
    """Whether ``path`` is a folder made by ``space sample`` (marker, ``space.yaml`` and ``samples.jsonl``)."""
    return all((Path(path) / n).is_file() for n in (SPACE_MARKER, SPACE_FILE, SAMPLES_FILE))


def _number(row: dict, key: str, where: str, lo: float = 0.0, hi: float = math.inf, integer: bool = False):
    v = row.get(key)
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or not math.isfinite(v) or not lo <= v <= hi:
        kind = "an integer" if integer else "a number"
        bounds = f" in {lo:g}..{hi:g}" if math.isfinite(hi) else f" >= {lo:g}"
        raise SpaceFolderError(f"{where}: {key}: must be {kind}{bounds}, got {quote(v)}")
    return v


def read_samples(folder: Path) -> list[dict]:
    """The rows of ``folder/samples.jsonl`` (``analysis.space.sampler.sample_space``), checked: ``id``, ``config``
    and ``knobs`` mappings, the counts. Raises ``SpaceFolderError`` (or ``RunFolderError`` for a file that is not
    JSON lines) naming the file and line."""
    path = Path(folder) / SAMPLES_FILE
    if not path.is_file():
        raise SpaceFolderError(f"{folder}: not a space folder (no {SAMPLES_FILE}; make one with space sample)")
    rows, ids = [], set()
    for number, row in load_json_lines(path, MAX_SAMPLES_BYTES, MAX_LINES):
        where = f"{path} line {number}"
        if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not row["id"]:
            raise SpaceFolderError(f"{where}: must be an object with an id")
        if row["id"] in ids:
            raise SpaceFolderError(f"{where}: id {quote(row['id'])} repeats an earlier line")
        for key in ("config", "knobs"):
            if not isinstance(row.get(key), dict):
                raise SpaceFolderError(f"{where}: {key}: must be a mapping")
        for key in ("params", "conv_linear_macs", "gflops", "activations"):
            _number(row, key, where)
        if row.get("latency_ms") is not None:
            _number(row, "latency_ms", where)
        ids.add(row["id"])
        rows.append(row)
    if not rows:
        raise SpaceFolderError(f"{path}: holds no samples")
    return rows


def read_results(folder: Path, ids: set[str]) -> dict[str, dict]:
    """``id -> result`` from ``folder/results.jsonl`` (module docstring; ``{}`` when there is none yet), each checked:
    a known id, a status, ``ap`` a fraction 0..1 for a done sample, ``epochs`` and ``seconds``. Raises
    ``SpaceFolderError`` naming the file, line and field (an ``ap`` above 1 is taken for a percentage and refused)."""
    path = Path(folder) / RESULTS_FILE
    out = {}
    for number, row in load_json_lines(path, MAX_SAMPLES_BYTES, MAX_LINES):
        where = f"{path} line {number}"
        if not isinstance(row, dict):
            raise SpaceFolderError(f"{where}: must be a JSON object")
        sid = row.get("id")
        if sid not in ids:
            raise SpaceFolderError(f"{where}: id: {quote(sid)} is not a sample of {folder / SAMPLES_FILE}")
        status = row.get("status")
        if status not in STATUSES:
            raise SpaceFolderError(f"{where}: status: must be done or failed, got {quote(status)}")
        if status == "done":
            ap = row.get("ap")
            if isinstance(ap, (int, float)) and not isinstance(ap, bool) and 1 < ap <= 100:
                raise SpaceFolderError(f"{where}: ap: {ap:g} is above 1; ap is the COCO AP as a fraction 0..1 "
                                       "(a percentage? divide by 100)")
            _number(row, "ap", where, 0.0, 1.0)
        _number(row, "epochs", where, integer=True)
        _number(row, "seconds", where)
        if row.get("error") is not None and not isinstance(row["error"], str):
            raise SpaceFolderError(f"{where}: error: must be a text")
        out[sid] = row
    return out


__all__ = ["MAX_LINES", "REPORT_MARKER", "RESULTS_FILE", "SAMPLES_FILE", "SPACE_FILE", "SPACE_MARKER", "STATUSES",
           "SpaceFolderError", "check_out_folder", "check_space_out", "is_space_folder", "read_results",
           "read_samples", "write_files"]
