"""Start a fusion ablation as a detached worker process, as the app's Ablation page does.

The worker is ``python -m analysis.ablation.launch RUN_DIR -- <ablate arguments>``: a thin wrapper,
in a session of its own (``start_new_session``), that runs ``python -m analysis.cli ablate ...`` with
stdout and stderr in ``RUN_DIR/worker.log`` and, when that ends, records the exit status and the
reason of a failure in ``RUN_DIR/worker.json``. Nothing ties it to the Streamlit session that started
it, so it survives reruns, closed tabs and browser reloads; the page reads progress from the run
folder alone. A run folder that exists is never reused except to resume it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from analysis.ablation.coco_data import DatasetError
from analysis.ablation.files import (
    BASE_NAME,
    LAUNCH_NAME,
    LOG_NAME,
    STOP_REQUEST_NAME,
    WORKER_NAME,
    write_json_atomic,
    write_text_atomic,
)
from analysis.ablation.progress import is_run_folder, run_status, worker_record
from analysis.ablation.recipes import BUILTIN_RECIPES, RecipeError, load_recipe
from analysis.ablation.run_folder import read_launch, write_marker
from analysis.ablation.runner import VariantError, check_data_arg, lock_holder, parse_variants, resolve_base
from analysis.settings import PROJECT_ROOT, runs_root
from hrnet_core import UserInputError, load_config, load_config_text
from hrnet_core.errors import quote

RECIPES = BUILTIN_RECIPES
DEVICES = ("auto", "cpu", "cuda")
_RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
_CHILDREN: list[subprocess.Popen] = []  # reaped by worker_status so no zombie is left behind


class LaunchError(UserInputError):
    """A run that cannot be started as asked; the message names the field."""


def _field_error(field: str, err: Exception, drop: str = "") -> LaunchError:
    """``err`` as a ``LaunchError`` naming the form's ``field`` (without the CLI's ``drop`` prefix)."""
    msg = str(err).strip()
    if drop and msg.startswith(drop):
        msg = msg[len(drop):]
    return LaunchError(f"{field}: {msg}")


@dataclass(frozen=True)
class AblationRequest:
    """What the Ablation page's form asks for; ``ablate_args`` turns it into CLI arguments."""

    name: str
    base: str
    variants: str = "1,3,8"
    data: str = "builtin"
    recipe: str = "quick"
    seeds: int = 1
    device: str = "auto"
    smoke: bool = False
    resume: bool = False

    def validate(self, base_text: str | None = None) -> None:
        """Check every field with the parsers the ablation itself uses, before anything is written or
        started: the base config (``base_text``, YAML, instead of the file ``base``), the recipe
        (``smoke`` when ``smoke``), the variants against the base as the recipe resizes it, the data
        folder (both COCO splits) and the device. Raises ``LaunchError`` (or ``ConfigError`` naming
        the base config file) with one line that names the field."""
        if not _RUN_NAME_RE.match(self.name or ""):
            raise LaunchError(f"run name: {self.name!r} must be letters, digits, '_', '-', '.' (up to 80)")
        if base_text is not None:
            base = load_config_text(base_text, source="base config")
        elif not str(self.base).strip():
            raise LaunchError("base config: none given")
        else:
            base = load_config(self.base)  # ConfigError names the file and field
        if self.smoke and self.recipe != "smoke":
            raise LaunchError(f"recipe: a smoke run uses the smoke recipe, not {self.recipe!r}")
        try:
            recipe = load_recipe(self.recipe)
        except RecipeError as err:
            raise _field_error("recipe", err) from None
        try:
            sized = resolve_base(base, recipe)
        except UserInputError as err:
            raise _field_error("base config", err) from None
        try:
            parse_variants(str(self.variants), sized)
        except VariantError as err:
            raise _field_error("variants", err, drop="--variants ") from None
        data = str(self.data).strip() or recipe.data
        if data == "coco":
            raise LaunchError(f"data: recipe {recipe.name} trains on COCO: give a COCO 2017 keypoints folder")
        try:
            check_data_arg(data)
        except DatasetError as err:
            raise _field_error("data", err) from None
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or not 1 <= self.seeds <= 100:
            raise LaunchError(f"seeds: must be an integer from 1 to 100, got {self.seeds!r}")
        if self.device not in DEVICES:
            raise LaunchError(f"device: {self.device!r}; expected one of {', '.join(DEVICES)}")
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise LaunchError("device: cuda asked for, but no CUDA GPU is available")

    def ablate_args(self, run_dir: Path) -> list[str]:
        args = ["ablate", "--base", str(self.base), "--variants", str(self.variants), "--data", str(self.data),
                "--recipe", str(self.recipe), "--seeds", str(self.seeds), "--device", self.device,
                "--out", str(run_dir)]
        if self.resume:
            args.append("--resume")
        if self.smoke:
            args.append("--smoke")
        return args


def _name_taken(run_dir: Path) -> LaunchError:
    return LaunchError(f"run name: {run_dir} already exists; pick another name or resume it")


def run_name(base_name: str, recipe: str, smoke: bool = False, when: float | None = None) -> str:
    """A run name that says what ran: ``fusion-<sized base config>-<recipe>-<date>-<time>``, e.g.
    ``fusion-pose_hrnet_w16_128x96-cpu-20261206-021500`` (``base_name``: the config as the recipe sizes
    it, ``runner.resolve_base``); at most 80 characters, only the characters a run name may hold."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    recipe = "smoke" if smoke else Path(str(recipe)).stem
    body = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{base_name}-{recipe}")[: 80 - len("fusion--") - len(stamp)]
    return f"fusion-{body}-{stamp}"


@dataclass(frozen=True)
class Launch:
    run_dir: str
    pid: int
    log: str
    argv: tuple[str, ...]
    started: float


def launch(request: AblationRequest, root: Path | None = None, base_text: str | None = None) -> Launch:
    """Validate ``request`` and start its worker detached in a new run folder; returns at once.

    ``base_text``: the base config as YAML (the app's current config) instead of ``request.base``;
    it is written to ``RUN_DIR/base.yaml``. Refuses (``LaunchError``) a run folder that already
    exists: an earlier run is never overwritten (continue one with ``resume``).
    """
    if request.resume:
        raise LaunchError("resume: use analysis.ablation.launch.resume(run_dir) to continue a run")
    root = runs_root() if root is None else Path(root)
    if _RUN_NAME_RE.match(request.name or "") and (root / request.name).exists():  # said first, in milliseconds
        raise _name_taken((root / request.name).resolve())
    request.validate(base_text=base_text)
    run_dir = (root / request.name).resolve()
    try:
        run_dir.mkdir(parents=True)  # atomic: two launches of one name cannot both get the folder
    except FileExistsError:
        raise _name_taken(run_dir) from None
    write_marker(run_dir)  # the folder is this tool's run: the worker's `ablate --out` may use it
    if base_text is not None:
        write_text_atomic(run_dir / BASE_NAME, base_text)
        request = replace(request, base=str(run_dir / BASE_NAME))
    return _start(run_dir, request.ablate_args(run_dir), asdict(request))


def resume(run_dir: str | Path, device: str | None = None) -> Launch:
    """Continue a stopped or failed run from its last complete epochs (``ablate --resume``).

    A run that recorded its request (``ablation.json``, also when started from the CLI) resumes with
    it; one that failed before that is started again from the request the app launched it with.
    """
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise LaunchError(f"run name: {run_dir} does not exist, so there is nothing to resume")
    if worker_status(run_dir)["state"] == "running":
        raise LaunchError(f"run name: {run_dir} is still running")
    holder = lock_holder(run_dir)
    if holder:  # e.g. an `ablate` started from the command line into this folder
        raise LaunchError(f"run name: {run_dir} is in use by another ablation ({holder}); wait for it or stop it")
    launched, _problem = read_launch(run_dir)  # a damaged launch.json counts as none
    if (run_dir / "ablation.json").is_file():  # the worker's `ablate --resume` checks it
        args = ["ablate", "--out", str(run_dir), "--resume"] + (["--device", device] if device else [])
        return _start(run_dir, args, launched.get("request"))
    if not launched.get("request"):
        raise LaunchError(f"run name: {run_dir} holds no ablation (no ablation.json) to resume")
    request = _stored_launch_request(launched["request"], run_dir)
    request.validate()
    return _start(run_dir, request.ablate_args(run_dir), asdict(request))


_REQUEST_TYPES = {"name": str, "base": str, "variants": str, "data": str, "recipe": str, "seeds": int, "device": str,
                  "smoke": bool, "resume": bool}  # the fields of AblationRequest


def _stored_launch_request(stored: dict, run_dir: Path) -> AblationRequest:
    """The form's request recorded in ``run_dir/launch.json``, its fields checked for type (``validate``
    checks their values). Raises ``LaunchError`` naming the field."""
    where = f"{run_dir / LAUNCH_NAME}: request"
    unknown = sorted(set(stored) - set(_REQUEST_TYPES), key=str)
    if unknown:
        raise LaunchError(f"{where}.{quote(unknown[0])}: unknown field")
    for key, value in stored.items():
        want = _REQUEST_TYPES[key]
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise LaunchError(f"{where}.{key}: must be {want.__name__}, got {quote(value)}")
    return AblationRequest(**(stored | {"resume": True, "name": run_dir.name}))


def _start(run_dir: Path, args: list[str], request: dict | None) -> Launch:
    """Start the worker for ``ablate args`` on ``run_dir`` in a session of its own."""
    (run_dir / WORKER_NAME).unlink(missing_ok=True)  # a resumed run's old ending is no longer its state
    (run_dir / STOP_REQUEST_NAME).unlink(missing_ok=True)
    argv = [sys.executable, "-m", "analysis.ablation.launch", str(run_dir), "--", *args]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    with open(run_dir / LOG_NAME, "ab") as log:
        proc = subprocess.Popen(
            argv, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _CHILDREN.append(proc)
    info = Launch(str(run_dir), proc.pid, str(run_dir / LOG_NAME), tuple(argv), time.time())
    write_json_atomic(run_dir / LAUNCH_NAME, asdict(info) | {"request": request})
    return info


def _reap() -> None:
    for proc in list(_CHILDREN):
        if proc.poll() is not None:
            _CHILDREN.remove(proc)


def log_tail(run_dir: Path, lines: int = 20) -> str:
    try:
        with open(Path(run_dir) / LOG_NAME, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def failure_reason(log: str) -> str:
    """The last meaningful line of a worker log: the CLI's one-line error or a traceback's last line."""
    for line in reversed(log.splitlines()):
        line = line.strip()
        if line and not line.startswith(("^", "~")):
            return line
    return "the worker ended without output"


def worker_status(run_dir: str | Path) -> dict:
    """``state`` (running, finished, failed, stopped, unknown), ``pid``, ``returncode``, ``reason``
    (``progress.worker_record``); reaps the workers this process started, so none is left a zombie."""
    _reap()
    return worker_record(run_dir)


def delete_run(run_dir: str | Path, root: str | Path | None = None) -> Path:
    """Delete the ablation run folder ``run_dir`` with everything in it; returns the path deleted.

    Only a folder directly under the runs root (``root``, default ``runs_root()``) that is an
    ablation run (``ablation.json`` or the app's ``launch.json``), not a link, and not live
    (preparing or running) is deleted; anything else raises ``LaunchError`` and deletes nothing.
    """
    root = (runs_root() if root is None else Path(root)).resolve()
    given = Path(run_dir)
    if given.is_symlink():
        raise LaunchError(f"delete: {given} is a link, not a run folder; nothing deleted")
    path = given.resolve()
    if path.parent != root:
        raise LaunchError(f"delete: {path} is not a run folder under {root}; nothing deleted")
    if not is_run_folder(path):
        raise LaunchError(f"delete: {path} is not an ablation run (no ablation.json or {LAUNCH_NAME}); "
                          "nothing deleted")
    _reap()
    status = run_status(path)
    if status.state in ("preparing", "running"):
        raise LaunchError(f"delete: {path.name} is {status.state}; stop it first")
    shutil.rmtree(path)
    return path


def stop(run_dir: str | Path) -> bool:
    """Interrupt the run (SIGINT to the worker, which passes it to the trainer: the current job is
    marked interrupted and the run can be resumed); False when it was not running.

    A worker still starting up (it has not written ``worker.json``, so it may not have its signal handler
    yet: a signal then would kill it unrecorded, its trainer left running) is not signalled: the stop is
    written to ``stop.request``, which the worker reads once its handler is in place."""
    run_dir = Path(run_dir).resolve()
    st = worker_status(run_dir)
    if st["state"] != "running":
        return False
    write_text_atomic(run_dir / STOP_REQUEST_NAME, f"{time.time()}\n")
    if not (run_dir / WORKER_NAME).is_file():
        return True  # the worker writes worker.json after installing its handler, then reads the request
    try:
        os.kill(int(st["pid"]), signal.SIGINT)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _worker(run_dir: Path, args: list[str]) -> int:
    """Run the ablation CLI, then record how it ended in ``worker.json``. A stop that comes before the CLI
    has started (a signal, or ``stop.request``) ends the worker as stopped without starting it."""
    asked: list[int] = []  # the signals received before the CLI started
    children: list[subprocess.Popen] = []

    def forward(signum, _frame):
        if children:
            children[0].send_signal(signum)
        else:
            asked.append(signum)

    # the handler first, then worker.json: `stop` signals only a worker that has written it
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    started = time.time()
    write_json_atomic(run_dir / WORKER_NAME, {"state": "running", "pid": os.getpid(), "started": started})
    if (run_dir / STOP_REQUEST_NAME).is_file() or asked:
        rc = 130
    else:
        children.append(subprocess.Popen([sys.executable, "-m", "analysis.cli", *args], cwd=PROJECT_ROOT))
        if asked:  # a signal between the check and the child's start
            children[0].send_signal(asked[0])
        rc = children[0].wait()
    (run_dir / STOP_REQUEST_NAME).unlink(missing_ok=True)
    state = "finished" if rc == 0 else ("stopped" if rc in (-signal.SIGTERM, -signal.SIGINT, 130) else "failed")
    result = {"state": state, "pid": os.getpid(), "returncode": rc, "started": started, "ended": time.time()}
    if state != "finished":
        sys.stdout.flush()
        result["reason"] = failure_reason(log_tail(run_dir)) if state == "failed" else "stopped by the user"
    write_json_atomic(run_dir / WORKER_NAME, result)
    return rc


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[1] != "--":
        print("usage: python -m analysis.ablation.launch RUN_DIR -- ablate ARGS...", file=sys.stderr)
        return 2
    return _worker(Path(argv[0]).resolve(), argv[2:])


if __name__ == "__main__":
    sys.exit(main())
