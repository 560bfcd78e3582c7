"""The one reader of ablation run folders, bounded and validated, for every consumer: ``report``,
``ablate --resume``, the progress views (``analysis.ablation.progress``, the app's run tables) and the
feature maps' validation persons. A run folder is read like user input: anyone may have edited it.

Bounds (``analysis.ablation.files``): a JSON document is at most 1 MiB, ``metrics.jsonl`` 32 MiB and
100,000 lines, nesting 32 levels; only regular files are read. Every problem is a ``RunFolderError``,
one line naming the file, the line and the field: ``runs/x/all/seed0/metrics.jsonl line 3: 'epoch'
missing``; values shown through ``hrnet_core.errors.quote``.

What a bad file does, per file:

- ``ablation.json`` (the request): **refused** as a whole. Each consumer that needs it (report, resume,
  a run's progress, the feature maps' dataset) raises the error; the run list shows that run as failed
  with the error as its reason and lists the others. Its variant names become folder names, so they are
  checked as ``--variants`` names are (``variants.check_variant_name``: never ``..``, ``/`` or a run
  file's name); seeds, schedules, the recipe, the base config, the precision and the device are checked
  as on the command line.
- ``metrics.jsonl`` (the results, one row per epoch): a torn last line (a kill mid-append) is skipped
  silently; any other bad line (not UTF-8, not JSON, not an object, nested too deep, a field missing or
  of the wrong type, epochs not increasing) **refuses** the file: a report or a resume built on
  silently dropped rows would show wrong means and curves. Fields the report does not know are ignored.
- ``status.json`` (the runner's and each job's live state), ``env.json``, the app's ``worker.json`` and
  ``launch.json``: records rewritten by running processes that only describe a state, so a bad one is
  **skipped with a warning**: an unreadable file (or an unknown state) makes the job ``failed`` with the
  warning as its error (so ``--resume`` trains it again), a field of the wrong type is left out and the
  warning is shown as the job's error; ``env.json`` problems leave its fields out of the report.
- Files the tool writes (``report.md``, ``summary.csv``..., a job's ``last.pth``...): a folder, a link
  or a device in their place **refuses** the command before it writes anything (``check_run_paths``),
  so no write follows a link out of the run folder.

Which folders ``ablate --out`` may write into: ``check_run_folder_use``.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import hrnet_core as hc
from analysis.ablation.evaluate import METRIC_FIELDS
from analysis.ablation.files import (
    LAUNCH_NAME,
    LOCK_NAME,
    MARKER_NAME,
    MAX_JSONL_BYTES,
    MAX_JSONL_LINES,
    REPORT_NAMES,
    REQUEST_NAME,
    STATUS_NAME,
    WORKER_NAME,
    RunFolderError,
    load_json_file,
    load_json_lines,
    read_bytes_bounded,
    write_json_atomic,
)
from analysis.ablation.joints import JOINT_FIELDS
from analysis.ablation.recipes import parse_recipe
from analysis.ablation.variants import bits_schedule, check_variant_name
from hrnet_core.concise_yaml import to_concise_dict
from hrnet_core.errors import UserInputError, quote

JOB_STATES = ("queued", "running", "done", "failed", "stopped")  # stopped: by the user, to be resumed
RUNNER_STATES = ("running", "done", "failed", "stopped")
WORKER_STATES = ("running", "finished", "failed", "stopped")
DEVICES = ("auto", "cpu", "cuda")
MAX_VARIANTS = 1000
MAX_SEEDS = 1000  # ``--seeds`` allows 1..1000
MAX_SEED = 2**31 - 1
MAX_TEXT = 10_000  # characters of a free-text field (a name, a path, an error line)
MAX_INT = 10**18 - 1  # any count, pid or time the tool writes; larger ones overflow float() and os.kill
MAX_PID = 2**31 - 1
METRICS_NAME = "metrics.jsonl"
ENV_NAME = "env.json"
# What the runner and the trainer write in a job folder (none may be a link or a folder).
JOB_FILE_NAMES = (STATUS_NAME, METRICS_NAME, ENV_NAME, "config.yaml", "model.yaml", "error.txt", "last.pth",
                  "prev.pth", "best.pth", "shards.json")
MADE_BY = "hrnet-explorer"
_SEED_DIR_RE = re.compile(r"seed([0-9]{1,10})")

Check = Callable[[object, str], object]


# ---- field checks: each returns the value or raises RunFolderError naming ``where`` -----------------
def _fail(where: str, what: str, value: object) -> RunFolderError:
    return RunFolderError(f"{where}: must be {what}, got {quote(value)}")


def integer(lo: int = 0, hi: int | None = None) -> Check:
    """A JSON integer (not a bool, not 2.0) in ``lo..hi`` (``hi`` None: below ``MAX_INT``, so that no
    later ``float()`` or ``os.kill`` overflows)."""
    what = f"an integer in {lo}..{hi}" if hi is not None else f"an integer >= {lo} (of at most 18 digits)"
    top = MAX_INT if hi is None else hi

    def check(v, where):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= top:
            raise _fail(where, what, v)
        return v
    return check


def number(finite: bool = True, lo: float | None = None) -> Check:
    """A JSON number (not a bool); ``finite``: NaN and infinities refused; ``lo``: the smallest allowed."""
    def check(v, where):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if ok and isinstance(v, int) and abs(v) > MAX_INT:  # math.isfinite / float() would overflow
            ok = False
        if ok and finite and not math.isfinite(v):
            ok = False
        if ok and lo is not None and not v >= lo:
            ok = False
        if not ok:
            what = ("a finite number" + (f" >= {lo:g}" if lo is not None else "")) if finite else "a number"
            raise _fail(where, what, v)
        return float(v) if isinstance(v, float) else v
    return check


def text(limit: int = MAX_TEXT) -> Check:
    def check(v, where):
        if not isinstance(v, str) or len(v) > limit:
            raise _fail(where, f"text of at most {limit:,} characters", v)
        return v
    return check


def flag(v, where):
    if not isinstance(v, bool):
        raise _fail(where, "true or false", v)
    return v


def choice(options: tuple[str, ...]) -> Check:
    def check(v, where):
        if not isinstance(v, str) or v not in options:
            raise _fail(where, "one of " + ", ".join(options), v)
        return v
    return check


def mapping(v, where):
    if not isinstance(v, dict):
        raise _fail(where, "an object", v)
    return v


def or_none(check: Check) -> Check:
    def inner(v, where):
        return None if v is None else check(v, where)
    return inner


def text_list(limit: int = 1000) -> Check:
    def check(v, where):
        if not isinstance(v, list) or len(v) > limit:
            raise _fail(where, f"a list of at most {limit} texts", v)
        return [text()(x, f"{where}[{i}]") for i, x in enumerate(v)]
    return check


def _require(doc: dict, keys: Iterable[str], where: str) -> None:
    for key in keys:
        if key not in doc:
            raise RunFolderError(f"{where}: {quote(key)} missing")


def _check_fields(doc: dict, schema: dict[str, Check], where: str, required: Iterable[str] = ()) -> dict:
    """The fields of ``doc`` that ``schema`` knows, each checked (others are ignored). Raises the first
    problem: a ``required`` field missing or any field of the wrong type."""
    _require(doc, required, where)
    return {key: check(doc[key], f"{where}: {key}") for key, check in schema.items() if key in doc}


def _lenient_fields(doc: dict, schema: dict[str, Check], where: str) -> tuple[dict, str | None]:
    """The fields of ``doc`` that pass ``schema`` (the others left out) and the first problem, if any."""
    out, problem = {}, None
    for key, check in schema.items():
        if key in doc:
            try:
                out[key] = check(doc[key], f"{where}: {key}")
            except RunFolderError as err:
                problem = problem or str(err)
    return out, problem


# ---- the request: ablation.json --------------------------------------------------------------------
_BITS_RE = re.compile(r"[01/, ]{1,1000}")
PRECISION_SCHEMA: dict[str, Check] = {
    "amp": flag, "channels_last": flag, "device": choice(("cpu", "cuda")), "reason": text(),
    "measured": or_none(mapping), "label": text(),
}
DATA_SCHEMA: dict[str, Check] = {
    "kind": choice(("builtin", "coco")), "path": text(4096), "train_images": or_none(integer()),
    "train_persons": or_none(integer()), "val_images": or_none(integer()), "val_persons": or_none(integer()),
}
REQUEST_SCHEMA: dict[str, Check] = {
    "name": text(1000), "created": or_none(text(100)), "command": text_list(), "base_source": text(4096),
    "data_arg": text(4096), "device": choice(DEVICES), "device_label": or_none(text(1000)),
    "world_size": integer(1, 100_000), "smoke": flag,
}


def read_request(run_dir: str | Path, require_base: bool = False) -> dict | None:
    """The validated request of ``run_dir`` (``ablation.json``), or ``None`` when there is none.

    The fields kept, normalised: ``variants`` (``name``, ``fusions``, ``schedule``), ``seeds`` (ints),
    ``recipe`` (``Recipe.to_dict()``), ``data`` (kind, path, counts), ``precision``, ``name``,
    ``created``, ``command``, ``base_source``, ``data_arg``, ``device``, ``device_label``,
    ``world_size``, ``smoke``; with ``require_base`` also ``base`` (the concise config, checked, each
    variant's schedule checked against it). Raises ``RunFolderError`` naming the field (see the module)."""
    path = Path(run_dir) / REQUEST_NAME
    where = str(path)
    try:
        doc = load_json_file(path)
    except RunFolderError as err:  # torn, binary, nested too deep, too large: say what it is
        detail = str(err).removeprefix(f"{where}: ")
        raise RunFolderError(f"{where}: not a readable ablation request ({detail})") from None
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise RunFolderError(f"{where}: not a readable ablation request (a JSON {type(doc).__name__}, not an object)")
    try:
        return _request_fields(doc, where, require_base)
    except RunFolderError:
        raise
    except UserInputError as err:  # a recipe, variant or config error: already names the field
        raise RunFolderError(" ".join(str(err).split())) from None


def _request_fields(doc: dict, where: str, require_base: bool) -> dict:
    req = _check_fields(doc, REQUEST_SCHEMA, where, required=("variants", "seeds", "recipe"))
    base = None
    if require_base:
        if "base" not in doc:
            raise RunFolderError(f"{where}: 'base' missing")
        base = _base(doc["base"], f"{where}: base")
        req["base"] = to_concise_dict(base)
    elif "base" in doc:
        mapping(doc["base"], f"{where}: base")
    req["variants"] = _variants(doc["variants"], f"{where}: variants", base)
    req["seeds"] = _seeds(doc["seeds"], f"{where}: seeds")
    req["recipe"] = _recipe(doc["recipe"], f"{where}: recipe")
    if "data" in doc:
        req["data"] = _check_fields(mapping(doc["data"], f"{where}: data"), DATA_SCHEMA, f"{where}: data")
    if doc.get("precision") is not None:
        req["precision"] = _check_fields(mapping(doc["precision"], f"{where}: precision"), PRECISION_SCHEMA,
                                         f"{where}: precision", required=("amp", "channels_last", "device"))
    return req


def _base(value, where: str) -> hc.HRNetConfig:
    mapping(value, where)
    try:
        cfg = hc.load_config(value)
    except UserInputError as err:
        raise RunFolderError(f"{where}: {' '.join(str(err).split())}") from None
    try:
        cfg.stage_modules  # noqa: B018 - the ablation varies the fusion schedule: the base must have one
    except UserInputError as err:
        raise RunFolderError(f"{where}: {' '.join(str(err).split())}") from None
    return cfg


def _variants(value, where: str, base: hc.HRNetConfig | None) -> list[dict]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_VARIANTS:
        raise _fail(where, f"a list of 1..{MAX_VARIANTS} variants", value)
    out, seen = [], set()
    for i, v in enumerate(value):
        at = f"{where}[{i}]"
        _require(mapping(v, at), ("name", "fusions", "schedule"), at)
        name = check_variant_name(v["name"], f"{at}.name")
        if name in seen:
            raise RunFolderError(f"{at}.name: variant {quote(name)} is given twice")
        seen.add(name)
        schedule = v["schedule"]
        if not isinstance(schedule, str) or not _BITS_RE.fullmatch(schedule):
            raise _fail(f"{at}.schedule", "0/1 flags per stage (1/0001/001)", schedule)
        integer(0, 100_000)(v["fusions"], f"{at}.fusions")
        if base is not None:
            bits_schedule(schedule, base, f"{at}.schedule")
        # The schedule is what was trained: the count shown and paired in the report is taken from it.
        out.append({"name": name, "fusions": schedule.count("1"), "schedule": schedule})
    return out


def _seeds(value, where: str) -> list[int]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_SEEDS:
        raise _fail(where, f"a list of 1..{MAX_SEEDS} seeds", value)
    seeds = [integer(0, MAX_SEED)(s, f"{where}[{i}]") for i, s in enumerate(value)]
    if len(set(seeds)) != len(seeds):
        raise RunFolderError(f"{where}: a seed is given twice ({quote(seeds)})")
    return seeds


def _recipe(value, where: str) -> dict:
    mapping(value, where)
    name = value.get("name")
    text(200)(name, f"{where}.name")
    return parse_recipe(value, where).to_dict() | {"name": name}


def stored_precision(run_dir: str | Path) -> dict | None:
    """The precision ``run_dir``'s request recorded on its first start (``None`` before one).
    Raises ``RunFolderError`` (``read_request``)."""
    req = read_request(run_dir)
    return req.get("precision") if req else None


# ---- job folders and their files -----------------------------------------------------------------
def job_dir(run_dir: str | Path, variant: str, seed: int) -> Path:
    """``run_dir/<variant>/seed<seed>`` for a checked name and seed (never outside ``run_dir``)."""
    check_variant_name(variant, "variant")
    integer(0, MAX_SEED)(seed, "seed")
    return Path(run_dir) / variant / f"seed{seed}"


def job_folders(run_dir: str | Path) -> list[tuple[str, int, Path]]:
    """``(variant, seed, folder)`` of every job folder holding a ``status.json`` (a run that has not
    recorded its request yet); folders whose names no variant or seed could have are left out."""
    out = []
    for st in sorted(Path(run_dir).glob(f"*/seed*/{STATUS_NAME}")):
        folder = st.parent
        match = _SEED_DIR_RE.fullmatch(folder.name)
        try:
            check_variant_name(folder.parent.name, "variant")
        except UserInputError:
            continue
        if match and not folder.is_symlink() and not folder.parent.is_symlink():
            out.append((folder.parent.name, int(match.group(1)), folder))
    return out


METRIC_SCHEMA: dict[str, Check] = {
    "epoch": integer(1, 10**6), "train_loss": number(lo=0.0), "images_per_s": number(lo=0.0),
    "wall_s": number(lo=0.0), "lr": or_none(number(finite=False)), "images": or_none(integer()),
    **{k: or_none(number(finite=False)) for k in ("train_s", "peak_mem_mib", "peak_rss_mib", "eval_s", "epoch_s")},
    **{k: or_none(number(finite=False)) for k in METRIC_FIELDS},  # NaN: a metric without data
    **{k: or_none(number(finite=False)) for k in JOINT_FIELDS},  # the last epoch's only
}
METRIC_REQUIRED = ("epoch", "train_loss", "images_per_s", "wall_s")


def read_metrics(folder: str | Path) -> list[dict]:
    """The rows of ``folder/metrics.jsonl`` (``[]`` when there is none), checked: the fields of
    ``METRIC_SCHEMA`` (``METRIC_REQUIRED`` present), epochs increasing. A torn last line is skipped.
    Raises ``RunFolderError`` naming the file, the line and the field."""
    path = Path(folder) / METRICS_NAME
    rows, last = [], 0
    for number_, value in load_json_lines(path, MAX_JSONL_BYTES, MAX_JSONL_LINES):
        where = f"{path} line {number_}"
        if not isinstance(value, dict):
            raise RunFolderError(f"{where}: not a JSON object (got {type(value).__name__})")
        row = _check_fields(value, METRIC_SCHEMA, where, required=METRIC_REQUIRED)
        if row["epoch"] <= last:
            raise RunFolderError(f"{where}: epoch {row['epoch']} after epoch {last} (epochs must increase)")
        last = row["epoch"]
        rows.append(row)
    return rows


JOB_STATUS_SCHEMA: dict[str, Check] = {
    "state": choice(JOB_STATES), "variant": text(200), "seed": integer(), "fusions": integer(),
    "pid": integer(1, MAX_PID), "host": text(1000), "epoch": integer(), "epochs": integer(1), "step": integer(), "steps": integer(),
    "phase": text(200), "error": or_none(text()), "precision": or_none(text(1000)),
    **{k: or_none(number(finite=False)) for k in ("loss", "lr", "images_per_s", "eta_s", "AP", "best_AP",
                                                   "updated_at", "started_at")},
}
RUNNER_STATUS_SCHEMA: dict[str, Check] = {
    "state": choice(RUNNER_STATES), "pid": integer(1, MAX_PID), "host": text(1000), "started_at": number(),
    "finished_at": number(), "jobs": integer(), "done": integer(), "failed": integer(),
    "parallel_jobs": integer(1, 10_000), "error": or_none(text()), "report": or_none(mapping),
}
WORKER_SCHEMA: dict[str, Check] = {
    "state": choice(WORKER_STATES), "pid": integer(1, MAX_PID), "returncode": or_none(integer(-(2**31), 2**31)),
    "reason": text(), "started": number(), "ended": number(),
}
LAUNCH_SCHEMA: dict[str, Check] = {"pid": integer(1, MAX_PID), "started": number(), "run_dir": text(4096),
                                   "request": or_none(mapping)}
ENV_SCHEMA: dict[str, Check] = {
    "device": text(1000), "gpu": or_none(text(1000)), "torch": text(200), "cuda": or_none(text(200)),
    "git": mapping, "precision": mapping,
}


def read_record(path: str | Path, schema: dict[str, Check]) -> tuple[dict, str | None]:
    """``(fields, problem)`` of a state record (``status.json``, ``env.json``, ``worker.json``,
    ``launch.json``): the fields of ``schema`` that are right, and one line on the first thing wrong
    (``None`` when nothing is). A missing file is ``({}, None)``; an unreadable one ``({}, problem)``."""
    path = Path(path)
    try:
        doc = load_json_file(path)
    except RunFolderError as err:
        return {}, str(err)
    if doc is None:
        return {}, None
    if not isinstance(doc, dict):
        return {}, f"{path}: not a JSON object (a JSON {type(doc).__name__})"
    return _lenient_fields(doc, schema, str(path))


def _untrusted_state(fields: dict, problem: str | None) -> bool:
    """A damaged record whose state cannot stand: none left, or ``running`` without the pid and host
    that say whether its process lives (believed, it would show running for ever)."""
    if not problem:
        return False
    return "state" not in fields or (fields["state"] == "running" and not {"pid", "host"} <= set(fields))


def read_job_status(folder: str | Path) -> tuple[dict, str | None]:
    """A job's ``status.json`` (``read_record``). An unreadable file, an unknown state or a running
    state with a damaged pid gives state ``failed`` with the problem as its ``error`` (the job is not
    trusted as done or running: resume trains it again)."""
    fields, problem = read_record(Path(folder) / STATUS_NAME, JOB_STATUS_SCHEMA)
    if _untrusted_state(fields, problem):
        fields = {**fields, "state": "failed", "error": f"{problem}; resume the run to train this job again"}
    return fields, problem


def read_runner_status(run_dir: str | Path) -> tuple[dict, str | None]:
    """The runner's ``status.json`` of ``run_dir`` (``read_record``); a damaged one whose state cannot
    stand (``_untrusted_state``) counts as a failed run with the problem as its error."""
    fields, problem = read_record(Path(run_dir) / STATUS_NAME, RUNNER_STATUS_SCHEMA)
    if problem and fields and _untrusted_state(fields, problem):
        fields = {**fields, "state": "failed", "error": problem}
    return fields, problem


def read_env(folder: str | Path) -> dict | None:
    """The usable fields of a job's ``env.json`` (``None`` when it has none): device, gpu, torch, cuda,
    git (``commit``, ``dirty``) and precision (``label``, ``reason``, ``amp``); wrong ones left out."""
    fields, _problem = read_record(Path(folder) / ENV_NAME, ENV_SCHEMA)
    if "git" in fields:
        fields["git"], _ = _lenient_fields(fields["git"], {"commit": or_none(text(100)), "dirty": or_none(flag)}, "git")
    if "precision" in fields:
        fields["precision"], _ = _lenient_fields(fields["precision"], {"label": text(1000), "reason": text(),
                                                                        "amp": flag}, "precision")
    return fields or None


def read_worker(run_dir: str | Path) -> tuple[dict, str | None]:
    """The app's ``worker.json`` of ``run_dir`` (``read_record``)."""
    return read_record(Path(run_dir) / WORKER_NAME, WORKER_SCHEMA)


def read_launch(run_dir: str | Path) -> tuple[dict, str | None]:
    """The app's ``launch.json`` of ``run_dir`` (``read_record``)."""
    return read_record(Path(run_dir) / LAUNCH_NAME, LAUNCH_SCHEMA)


def read_text_file(path: str | Path, limit: int = 4 << 20) -> str | None:
    """The UTF-8 text of a file the tool wrote (``report.md``), ``None`` when there is none.
    Raises ``RunFolderError``: a folder or device, above ``limit`` bytes, not UTF-8."""
    data = read_bytes_bounded(Path(path), limit)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RunFolderError(f"{path}: not UTF-8 text (byte {err.start})") from None


# ---- writing into a run folder -------------------------------------------------------------------
def check_output_file(path: str | Path) -> Path:
    """``path`` if the tool may write its own file there: nothing, or a regular file that is not a
    link. Raises ``RunFolderError`` (a folder, a link, a device in its place)."""
    path = Path(path)
    if path.is_symlink():
        raise RunFolderError(f"{path}: is a link; the tool writes its own file there (move the link away)")
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise RunFolderError(f"{path}: is {kind}; the tool writes its own file there (move it away)")
    return path


def _check_folder(path: Path) -> None:
    if path.is_symlink():
        raise RunFolderError(f"{path}: is a link; a job folder of a run must be a folder in it (move the link away)")
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"{path}: is not a folder; it holds a job of the run (move it away)")


def check_run_paths(run_dir: str | Path, variants: Iterable[str], seeds: Iterable[int]) -> None:
    """Refuse, before anything is written, a run folder where a file the runner or trainer writes is a
    folder, a link or a device (``report.md`` a folder, ``all/seed0/model.yaml`` a link out of the
    folder). Raises ``RunFolderError`` naming the path."""
    run_dir = Path(run_dir)
    for name in (REQUEST_NAME, STATUS_NAME, LOCK_NAME, MARKER_NAME, *REPORT_NAMES):
        check_output_file(run_dir / name)
    seeds = list(seeds)
    for variant in variants:
        _check_folder(run_dir / check_variant_name(variant, "variant"))
        for seed in seeds:
            folder = job_dir(run_dir, variant, seed)
            _check_folder(folder)
            for name in JOB_FILE_NAMES:
                check_output_file(folder / name)


# ---- which folders a run may use: the marker -----------------------------------------------------
def has_marker(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds the marker this tool writes into the run folders it makes."""
    path = Path(run_dir) / MARKER_NAME
    if path.is_symlink():
        return False
    try:
        doc = load_json_file(path, 4096)
    except RunFolderError:
        return False
    return isinstance(doc, dict) and doc.get("made_by") == MADE_BY


def write_marker(run_dir: str | Path) -> None:
    """Mark ``run_dir`` as a run folder of this tool (``check_run_folder_use``)."""
    write_json_atomic(Path(run_dir) / MARKER_NAME, {"made_by": MADE_BY, "kind": "ablation run folder",
                                                    "marked": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def _launched_here(run_dir: Path) -> bool:
    fields, _ = read_launch(run_dir)
    return "run_dir" in fields and Path(fields["run_dir"]).resolve() == run_dir.resolve()


def check_run_folder_use(out: str | Path) -> None:
    """Refuse an ``--out`` folder that holds someone else's files. The rule:

    - a folder that does not exist, or an empty one, is used (and marked); so is one holding nothing
      but a ``.lock`` (what a refused ``ablate`` of an earlier version left behind);
    - a folder holding the marker (``.hrnet-explorer-run``, written when the tool made or first used
      it: by the runner, and by the app's launcher when it creates the folder) is used;
    - a folder made before the marker existed is used (and marked now) when it holds an
      ``ablation.json`` that ``read_request`` accepts, or the app's ``launch.json`` naming this folder
      (a run that failed before it wrote its request);
    - anything else is refused. Raises ``RunFolderError`` with one line (for an ``ablation.json`` that
      cannot be read: its problem)."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise RunFolderError(f"{out}: exists and is not a folder; choose another --out")
    try:
        entries = sorted(os.listdir(out))
    except OSError as err:
        raise RunFolderError(f"{out}: cannot be listed ({err.strerror or err.__class__.__name__})") from None
    if not entries or has_marker(out):
        return
    if entries == [LOCK_NAME] and (out / LOCK_NAME).is_file() and not (out / LOCK_NAME).is_symlink():
        return  # only the lock an earlier refused `ablate` left behind: an empty folder
    if (out / REQUEST_NAME).exists() or (out / REQUEST_NAME).is_symlink():
        check_output_file(out / REQUEST_NAME)
        if read_request(out, require_base=True) is not None:  # raises its problem
            return
    if _launched_here(out):
        return
    raise RunFolderError(f"{out}: holds files this tool did not write (e.g. {quote(entries[0])}) and no run of "
                         f"it ({MARKER_NAME} or a readable {REQUEST_NAME}); --out takes a new or empty folder "
                         "or an earlier run")


@contextlib.contextmanager
def claimed_run_folder(out: str | Path) -> Iterator[Path]:
    """``out`` checked (``check_run_folder_use``), created with its parents and marked for the block.

    A block that fails before the run wrote anything of its own (only the marker and ``.lock`` are
    new) leaves no trace: those files are removed again, and the folders this call made. Raises
    ``RunFolderError`` before anything is written."""
    out = Path(out)
    check_run_folder_use(out)
    made = [p for p in (out, *out.parents) if not p.exists()]  # deepest first
    before = set(os.listdir(out)) if out.is_dir() else set()
    out.mkdir(parents=True, exist_ok=True)
    if not has_marker(out):
        write_marker(out)
    try:
        yield out
    except BaseException:
        _undo_claim(out, before, made)
        raise


def _undo_claim(out: Path, before: set[str], made: list[Path]) -> None:
    try:
        added = set(os.listdir(out)) - before
    except OSError:
        return
    if not added <= {MARKER_NAME, LOCK_NAME}:
        return  # the run wrote its own files: they are kept (resume continues from them)
    for name in added:
        with contextlib.suppress(OSError):
            (out / name).unlink()
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            break


__all__ = ["JOB_STATES", "RunFolderError", "check_output_file", "check_run_folder_use", "check_run_paths",
           "claimed_run_folder", "has_marker", "job_dir", "job_folders", "read_env", "read_job_status",
           "read_launch", "read_metrics", "read_record", "read_request", "read_runner_status", "read_text_file",
           "read_worker", "stored_precision", "write_marker"]
