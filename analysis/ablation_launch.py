"""Start a fusion ablation as a detached worker process, as the app's Ablation page does.

The worker is ``python -m analysis.ablation_launch RUN_DIR -- <ablate arguments>``: a thin wrapper,
in a session of its own (``start_new_session``), that runs ``python -m analysis.cli ablate ...`` with
stdout and stderr in ``RUN_DIR/worker.log`` and, when that ends, records the exit status and the
reason of a failure in ``RUN_DIR/worker.json``. Nothing ties it to the Streamlit session that started
it, so it survives reruns, closed tabs and browser reloads; the page reads progress from the run
folder alone. A run folder that exists is never reused except to resume it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from hrnet_core import UserInputError, load_config, load_config_text

from .ablation.files import WORKER_NAME, read_json, write_json_atomic, write_text_atomic
from .ablation.recipes import BUILTIN_RECIPES
from .config_edit import PROJECT_ROOT

RUNS_ENV = "HRNET_EXPLORER_RUNS"
LOG_NAME = "worker.log"
LAUNCH_NAME = "launch.json"
BASE_NAME = "base.yaml"
RECIPES = BUILTIN_RECIPES
DEVICES = ("auto", "cpu", "cuda")
_RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
_VARIANT_RE = re.compile(r"^[A-Za-z0-9_]+$")
_CHILDREN: list[subprocess.Popen] = []  # reaped by worker_status so no zombie is left behind


class LaunchError(UserInputError):
    """A run that cannot be started as asked; the message names the field."""


def runs_root() -> Path:
    """``$HRNET_EXPLORER_RUNS`` or ``runs/`` in the project."""
    env = os.environ.get(RUNS_ENV)
    return Path(env).expanduser() if env else PROJECT_ROOT / "runs"


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

    def validate(self, check_base: bool = True) -> None:
        if not _RUN_NAME_RE.match(self.name or ""):
            raise LaunchError(f"run name: {self.name!r} must be letters, digits, '_', '-', '.' (up to 80)")
        if check_base:
            if not str(self.base).strip():
                raise LaunchError("base config: none given")
            load_config(self.base)  # ConfigError names the file and field
        tokens = [t.strip() for t in str(self.variants).split(",")]
        if not tokens or not all(_VARIANT_RE.match(t) for t in tokens):
            raise LaunchError(f"variants: {self.variants!r} must be a comma-separated list such as 1,3,8")
        if self.data != "builtin" and not Path(self.data).expanduser().is_dir():
            raise LaunchError(f"data: {self.data!r} is neither 'builtin' nor an existing COCO folder")
        if self.recipe not in RECIPES and not Path(self.recipe).expanduser().is_file():
            raise LaunchError(f"recipe: {self.recipe!r} is neither {', '.join(RECIPES)} nor a recipe YAML file")
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
        raise LaunchError("resume: use ablation_launch.resume(run_dir) to continue a run")
    request.validate(check_base=base_text is None)
    if base_text is not None:
        load_config_text(base_text, source="base config")
    root = runs_root() if root is None else Path(root)
    run_dir = (root / request.name).resolve()
    try:
        run_dir.mkdir(parents=True)  # atomic: two launches of one name cannot both get the folder
    except FileExistsError:
        raise LaunchError(f"run name: {run_dir} already exists; pick another name or resume it") from None
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
    launched = read_json(run_dir / LAUNCH_NAME)
    if (run_dir / "ablation.json").is_file():
        args = ["ablate", "--out", str(run_dir), "--resume"] + (["--device", device] if device else [])
        return _start(run_dir, args, launched.get("request"))
    if "request" not in launched:
        raise LaunchError(f"run name: {run_dir} holds no ablation (no ablation.json) to resume")
    request = AblationRequest(**(launched["request"] | {"resume": True, "name": run_dir.name}))
    return _start(run_dir, request.ablate_args(run_dir), asdict(request))


def _start(run_dir: Path, args: list[str], request: dict | None) -> Launch:
    """Start the worker for ``ablate args`` on ``run_dir`` in a session of its own."""
    (run_dir / WORKER_NAME).unlink(missing_ok=True)  # a resumed run's old ending is no longer its state
    argv = [sys.executable, "-m", "analysis.ablation_launch", str(run_dir), "--", *args]
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


def _alive(pid: int, run_dir: Path, started: float | None = None) -> bool:
    """Whether ``pid`` is a live (not zombie) worker of ``run_dir``: its command line names the run
    (guards against pid reuse), or it was launched under a minute ago (before ``exec`` a child still
    shows its parent's command line)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False
        recent = started is not None and time.time() - started < 60
        return state != "Z" and (str(run_dir) in cmdline or recent)
    return True


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
    """``state`` (running, finished, failed, stopped, unknown), ``pid``, ``returncode``, ``reason``."""
    _reap()
    run_dir = Path(run_dir).resolve()
    info = read_json(run_dir / WORKER_NAME)
    if not info:  # not started up yet (or not launched from the app): the launcher's record
        launched = read_json(run_dir / LAUNCH_NAME)
        if not launched:
            return {"state": "unknown", "pid": None, "returncode": None, "reason": ""}
        info = {"state": "running", "pid": launched.get("pid"), "started": launched.get("started")}
    out = {"state": info.get("state", "unknown"), "pid": info.get("pid"), "returncode": info.get("returncode"),
           "reason": info.get("reason", "")}
    if out["state"] == "running" and not (out["pid"] and _alive(int(out["pid"]), run_dir, info.get("started"))):
        # The worker vanished without recording its end (killed, machine restarted).
        out["state"] = "failed"
        out["reason"] = out["reason"] or "the worker process is gone (killed?); resume the run to continue"
    return out


def stop(run_dir: str | Path) -> bool:
    """Interrupt the run (SIGINT to the worker, which passes it to the trainer: the current job is
    marked interrupted and the run can be resumed); False when it was not running."""
    run_dir = Path(run_dir).resolve()
    st = worker_status(run_dir)
    if st["state"] != "running":
        return False
    try:
        os.kill(int(st["pid"]), signal.SIGINT)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _worker(run_dir: Path, args: list[str]) -> int:
    """Run the ablation CLI, then record how it ended in ``worker.json``."""
    started = time.time()
    write_json_atomic(run_dir / WORKER_NAME, {"state": "running", "pid": os.getpid(), "started": started})
    child = subprocess.Popen([sys.executable, "-m", "analysis.cli", *args], cwd=PROJECT_ROOT)

    def forward(signum, _frame):
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    rc = child.wait()
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
        print("usage: python -m analysis.ablation_launch RUN_DIR -- ablate ARGS...", file=sys.stderr)
        return 2
    return _worker(Path(argv[0]).resolve(), argv[2:])


if __name__ == "__main__":
    sys.exit(main())
