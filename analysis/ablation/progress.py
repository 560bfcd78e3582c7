"""Live progress of ablation runs, read from their folders (the UI polls these; nothing is locked).

Who writes what (every file replaced atomically):

    RUN/launch.json, RUN/worker.json    the app's launcher: the worker's pid; how it ended, with a reason
    RUN/status.json                     the runner: state running | done | failed, pid, host, started_at
    RUN/<variant>/seed<k>/status.json   the trainer: state queued -> running (pid, epoch, step, steps, loss,
                                        images_per_s, eta_s, phase) -> done | failed (error)

A record that says ``running`` is believed only while its process is alive (same host): a killed
worker shows as ``failed`` with the reason, never as running or queued. A run whose worker is alive
but whose runner has not started yet (generating the built-in data) is ``preparing``; the job the
runner is setting up (its status.json still says queued) is ``running`` in phase ``starting``; a run whose
runner has stopped or failed while the app's worker is still recording how is ``running`` in phase ``ending``
(it cannot be resumed until the worker has ended); a finished one is ``done`` at once.
Also the checkpoints the runs hold, with the config each was trained with (for the Feature maps page).

Every file is read through ``analysis.ablation.run_folder`` (bounded, validated): a request that cannot
be read makes ``read_progress`` raise ``RunFolderError`` (one line) and shows that run as failed with
the reason in ``list_runs``; a damaged state record is a warning in the job's ``error``.
"""

from __future__ import annotations

import math
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.ablation.files import LAUNCH_NAME, RunFolderError
from analysis.ablation.run_folder import (
    JOB_STATES,  # noqa: F401 - re-exported: the states a job can be in
    job_dir,
    job_folders,
    read_job_status,
    read_launch,
    read_request,
    read_runner_status,
    read_worker,
)
from hrnet_core import HRNetConfig, load_config

RUN_STATES = ("preparing", "running", "done", "failed", "stopped", "queued")
PROGRESS_COLUMNS = ("variant", "seed", "fusions", "state", "phase", "epoch", "epochs", "step", "steps", "loss",
                    "images_per_s", "AP", "eta_s", "error", "started_at", "updated_at", "folder")
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".pth.tar", ".ckpt")
RUN_CONFIG_NAME = "model.yaml"  # the resolved config the runner writes beside last.pth
RUN_COLUMNS = ("name", "path", "state", "phase", "created", "recipe", "data", "variants", "seeds", "device", "jobs",
               "done", "failed", "running", "report", "reason")
GONE = "the worker process is gone (killed?); resume the run to continue"


def _alive(status: dict) -> bool:
    """False only when we know the writer is gone: same host and no such process."""
    pid, host = status.get("pid"), status.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _worker_alive(pid: int, run_dir: Path, started: float | None = None) -> bool:
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


def worker_record(run_dir: str | Path) -> dict:
    """The app's worker of ``run_dir``: ``state`` (running, finished, failed, stopped; unknown when the
    run was not started from the app), ``pid``, ``returncode``, ``reason``, ``started`` (epoch seconds).
    A worker recorded as running whose process is gone is ``failed`` with the reason."""
    run_dir = Path(run_dir).resolve()
    info, problem = read_worker(run_dir)  # fields of the wrong type are left out (problem says which)
    if not info:  # not started up yet (or not launched from the app): the launcher's record
        launched, launch_problem = read_launch(run_dir)
        problem = problem or launch_problem
        if not launched:
            return {"state": "unknown", "pid": None, "returncode": None, "reason": problem or "", "started": None}
        info = {"state": "running", "pid": launched.get("pid"), "started": launched.get("started")}
    out = {"state": info.get("state", "unknown"), "pid": info.get("pid"), "returncode": info.get("returncode"),
           "reason": info.get("reason", ""), "started": info.get("started")}
    if out["state"] == "running" and not (out["pid"] and _worker_alive(out["pid"], run_dir, out["started"])):
        # The worker vanished without recording its end (killed, machine restarted).
        out["state"] = "failed"
        out["reason"] = out["reason"] or (f"{GONE} ({problem})" if problem else GONE)
    return out


@dataclass(frozen=True)
class RunStatus:
    """Where a run stands: ``state`` (one of ``RUN_STATES``), ``phase`` (what a live run is doing:
    preparing data, starting, training, evaluating, writing the report; "" otherwise), ``reason``
    (why it failed or stopped) and the ``pid`` of its process."""

    state: str
    phase: str = ""
    reason: str = ""
    pid: int | None = None


def _job_rows(run_dir: Path, request: dict) -> list[tuple[str, int, Path]]:
    """The jobs of the (checked) ``request``; before the run recorded one, the job folders it has."""
    if request:
        return [(v["name"], s, job_dir(run_dir, v["name"], s)) for s in request["seeds"] for v in request["variants"]]
    return job_folders(run_dir)


def _number(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def read_progress(run_dir: str | Path) -> pd.DataFrame:
    """One row per variant and seed of ``run_dir`` (``PROGRESS_COLUMNS``): state (queued | running |
    done | failed), phase, epoch (complete epochs), epochs, step / steps (within the current epoch),
    loss, images_per_s, AP (latest), eta_s (seconds), error (a job's failure, or what is wrong with its
    status.json). Empty frame when the folder holds no run. Raises ``RunFolderError`` (one line) when the
    run's ``ablation.json`` cannot be read (``run_folder.read_request``)."""
    run_dir = Path(run_dir)
    return _progress(run_dir, read_request(run_dir) or {})


def _progress(run_dir: Path, request: dict) -> pd.DataFrame:
    """``read_progress`` of ``run_dir`` with its request (checked, or ``{}``) already read."""
    runner, _problem = read_runner_status(run_dir)  # a damaged record counts as none
    rows = []
    for variant, seed, folder in _job_rows(run_dir, request):
        st, problem = read_job_status(folder)
        state = st.get("state", "queued")
        error = st.get("error") or problem
        if state == "running" and not _alive(st):
            state, error = "failed", f"worker process {st.get('pid')} is gone (killed?); continue with --resume"
        epochs = st.get("epochs") or (request.get("recipe") or {}).get("epochs")
        rows.append({
            "variant": variant,
            "seed": seed,
            "fusions": st.get("fusions"),
            "state": state,
            "phase": (st.get("phase") or "training") if state == "running" else "",
            "epoch": st.get("epoch") or 0,
            "epochs": epochs or None,
            "step": st["step"] if state == "running" and "step" in st else None,
            "steps": st.get("steps") or None,
            "loss": _number(st.get("loss")),
            "images_per_s": _number(st.get("images_per_s")),
            "AP": st.get("AP"),
            "eta_s": _number(st.get("eta_s")) if state == "running" else (0.0 if state == "done" else None),
            "error": error,
            "started_at": _number(st.get("started_at")),
            "updated_at": st.get("updated_at"),
            "folder": str(folder),
        })
    if runner.get("state") == "running" and _alive(runner):
        # The runner starts the jobs in order, ``parallel_jobs`` at a time: the first queued ones fill
        # the free slots and are being set up now (their own status.json has not said so yet).
        slots = runner.get("parallel_jobs", 1) - sum(r["state"] == "running" for r in rows)
        for r in [r for r in rows if r["state"] == "queued"][:max(0, slots)]:
            r["state"], r["phase"] = "running", "starting"
    return pd.DataFrame(rows, columns=list(PROGRESS_COLUMNS))


def run_status(run_dir: str | Path, progress: pd.DataFrame | None = None) -> RunStatus:
    """Overall state of ``run_dir`` from its jobs, its runner and the app's worker (see the module).

    ``progress``: the run's ``read_progress`` when already at hand. A run whose request cannot be read
    is ``failed`` with that reason (``running`` while its worker lives), so it can still be deleted."""
    run_dir = Path(run_dir)
    worker = worker_record(run_dir)
    if progress is None:
        try:
            progress = read_progress(run_dir)
        except RunFolderError as err:
            return _unreadable(worker, str(err))
    df = progress
    runner, _problem = read_runner_status(run_dir)
    if worker["state"] == "running" and _number(runner.get("started_at")) is not None \
            and runner["started_at"] < float(worker["started"] or 0):
        runner = {}  # an earlier session's record (a resumed run): the new worker has not got that far
    pid = runner.get("pid") or worker["pid"]
    states = set(df["state"]) if not df.empty else set()
    if "running" in states:
        row = df[df["state"] == "running"].iloc[0]
        return RunStatus("running", f"{row['phase']} {row['variant']} seed {row['seed']}", pid=pid)
    if worker["state"] in ("failed", "stopped"):
        return RunStatus(worker["state"], reason=worker["reason"], pid=worker["pid"])
    errors = [e for e in df["error"] if isinstance(e, str) and e] if not df.empty else []
    if runner.get("state") == "running":
        if _alive(runner):
            return RunStatus("running", "writing the report" if states else "starting", pid=pid)
        return RunStatus("failed", reason=f"the ablation process {runner.get('pid')} is gone (killed?); resume "
                                          "the run to continue", pid=pid)
    if worker["state"] == "running" and not runner.get("state"):
        return RunStatus("preparing", "preparing data", pid=pid)
    if worker["state"] == "running" and (runner.get("state") in ("stopped", "failed")
                                         or (runner.get("state") != "done" and states & {"stopped", "failed"})):
        # The ablation was stopped or failed and the app's worker is recording how: live a moment longer, so the
        # page offers no Resume (it would be refused: the worker still holds the run) before the worker has ended.
        return RunStatus("running", "ending", pid=worker["pid"])
    if runner.get("state") == "stopped" or (runner.get("state") != "failed" and "stopped" in states
                                             and "failed" not in states):
        return RunStatus("stopped", reason=str(runner.get("error") or "stopped; resume it to continue"), pid=pid)
    if runner.get("state") == "failed" or "failed" in states:
        return RunStatus("failed", reason=str(runner.get("error") or (errors[0] if errors else "")), pid=pid)
    if runner.get("state") == "done" or (states and states == {"done"}):
        return RunStatus("done", pid=pid)
    if not states or states == {"queued"}:
        return RunStatus("queued")
    return RunStatus("failed", reason="the run ended before all its jobs ran; resume it to continue", pid=pid)


def _unreadable(worker: dict, reason: str) -> RunStatus:
    """The status of a run whose request cannot be read: failed with ``reason`` (running while its worker lives)."""
    if worker["state"] == "running":
        return RunStatus("running", reason=reason, pid=worker["pid"])
    return RunStatus("failed", reason=reason, pid=worker["pid"])


def run_state(run_dir: str | Path, progress: pd.DataFrame | None = None) -> str:
    """``run_status(run_dir, progress).state``: preparing, running, done, failed, stopped or queued."""
    return run_status(run_dir, progress).state


def _mtime(path: Path) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(path.stat().st_mtime))


def is_run_folder(path: str | Path) -> bool:
    """Whether ``path`` is an ablation run folder: it holds the runner's request or the app's launch record."""
    path = Path(path)
    return path.is_dir() and ((path / "ablation.json").is_file() or (path / LAUNCH_NAME).is_file())


def list_runs(root: str | Path = "runs") -> pd.DataFrame:
    """One row per run folder under ``root`` (newest first, ``RUN_COLUMNS``): name, state, phase,
    recipe, data, variants, seeds, device, job counts, whether a report exists, and why it failed."""
    root = Path(root)
    rows = []
    if root.is_dir():
        # A folder the app has just launched (launch.json) shows up before its request is written.
        folders = {p.parent for pattern in ("*/ablation.json", f"*/{LAUNCH_NAME}") for p in root.glob(pattern)}
        for run_dir in folders:
            try:
                req = read_request(run_dir) or {}
                df = _progress(run_dir, req)
                status = run_status(run_dir, df)
            except RunFolderError as err:  # that run is listed as failed with the reason; the others as they are
                req, df = {}, pd.DataFrame(columns=list(PROGRESS_COLUMNS))
                status = _unreadable(worker_record(run_dir), str(err))
            counts = df["state"].value_counts().to_dict() if not df.empty else {}
            data = req.get("data") or {}
            rows.append({
                "name": run_dir.name,
                "path": str(run_dir),
                "state": status.state,
                "phase": status.phase,
                "created": req.get("created") or _mtime(run_dir),
                "recipe": (req.get("recipe") or {}).get("name"),
                "data": data.get("kind"),
                "variants": ",".join(v["name"] for v in req.get("variants", [])),
                "seeds": len(req.get("seeds", [])),
                "device": req.get("device_label") or req.get("device"),
                "jobs": len(df),
                "done": int(counts.get("done", 0)),
                "failed": int(counts.get("failed", 0)),
                "running": int(counts.get("running", 0)),
                "report": (run_dir / "report.md").is_file(),
                "reason": status.reason,
            })
    df = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    return df.sort_values("created", ascending=False, na_position="last").reset_index(drop=True)


@dataclass(frozen=True)
class RunSummary:
    """A whole run at a glance, whoever runs its jobs (read from the job folders): job counts by state and
    ``eta_s``, seconds until the last job ends (``None`` while no running job has an estimate yet)."""

    done: int
    running: int
    queued: int
    failed: int
    stopped: int
    eta_s: float | None

    @property
    def jobs(self) -> int:
        return self.done + self.running + self.queued + self.failed + self.stopped

    def text(self) -> str:
        """``jobs 9: 3 done, 2 running, 4 queued; run ETA about 12 min``."""
        parts = [f"{n} {name}" for n, name in ((self.done, "done"), (self.running, "running"),
                                                (self.queued, "queued"), (self.failed, "failed"),
                                                (self.stopped, "stopped")) if n or name == "done"]
        eta = ""
        if self.running:  # a stopped or failed run's queued jobs wait for a resume: no time to estimate
            eta = f"; run ETA about {format_eta(self.eta_s)}" if self.eta_s is not None else "; run ETA estimating"
        return f"jobs {self.jobs}: {', '.join(parts)}{eta}"


def _fraction(row) -> float | None:
    epochs, epoch = _number(row["epochs"]), _number(row["epoch"]) or 0.0
    step, steps = _number(row["step"]), _number(row["steps"])
    if not epochs:
        return None
    within = step / steps if step is not None and steps else 0.0
    return min(1.0, (epoch + within) / epochs)


def run_summary(progress: pd.DataFrame, slots: int = 1) -> RunSummary:
    """``RunSummary`` of a run's ``read_progress`` with ``slots`` jobs at a time. The ETA: the running
    jobs' own ETAs plus, for each queued job, the duration the running ones are heading for (their
    ETA over the fraction left; else how long the done jobs of this session took), shared out over the
    slots; never less than the longest running ETA."""
    counts = progress["state"].value_counts().to_dict() if not progress.empty else {}
    running = progress[progress["state"] == "running"] if not progress.empty else progress
    etas, durations, unknown = [], [], 0
    for _, row in running.iterrows():
        eta, frac = _number(row["eta_s"]), _fraction(row)
        if eta is None:  # starting: as long as a queued job
            unknown += 1
            continue
        etas.append(eta)
        if frac is not None and 0.02 < frac < 1.0:
            durations.append(eta / (1.0 - frac))
    if not durations and not progress.empty:  # between two jobs: the finished ones of this session tell
        finished = progress[progress["state"] == "done"]
        durations = [float(b) - float(a) for a, b in zip(finished["started_at"], finished["updated_at"])
                     if _number(a) is not None and _number(b) is not None and float(b) > float(a)]
    queued = int(counts.get("queued", 0))
    eta_s = None
    if durations or not (queued or unknown):
        per_job = sum(durations) / len(durations) if durations else 0.0
        eta_s = max(max(etas, default=0.0), (sum(etas) + (queued + unknown) * per_job) / max(1, slots))
    return RunSummary(int(counts.get("done", 0)), len(running), queued, int(counts.get("failed", 0)),
                      int(counts.get("stopped", 0)), eta_s)


def job_line(row) -> str:
    """One running job as the CLI prints it: ``all seed 0: training epoch 3/14 step 50/125, 147 img/s, ETA 2 min``."""
    what = [f"{row['phase'] or 'training'} epoch {int(_number(row['epoch']) or 0) + 1}/{row['epochs']}"]
    if _number(row["step"]) is not None and _number(row["steps"]):
        what[0] += f" step {int(row['step'])}/{int(row['steps'])}"
    if _number(row["images_per_s"]) is not None:
        what.append(f"{row['images_per_s']:.0f} img/s")
    if _number(row["eta_s"]) is not None:
        what.append(f"ETA {format_eta(row['eta_s'])}")
    return f"{row['variant']} seed {row['seed']}: {', '.join(what)}"


def progress_lines(run_dir: str | Path, slots: int = 1) -> list[str]:
    """What the CLI prints every half minute for any executor: the run's ``RunSummary`` line, then one
    ``job_line`` per running job. Raises ``RunFolderError`` when the run's request cannot be read."""
    df = read_progress(run_dir)
    lines = [f"run {Path(run_dir).name}: {run_summary(df, slots).text()}"]
    if not df.empty:
        lines += ["  " + job_line(row) for _, row in df[df["state"] == "running"].iterrows()]
    return lines


def format_eta(seconds) -> str:
    """``seconds`` as a person reads a remaining time: "40 s", "12 min", "3 h 02 min"; "" for none."""
    s = _number(seconds)
    if s is None or s < 0:
        return ""
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    h, m = divmod(round(s / 60), 60)
    return f"{h} h {m:02d} min"


def list_checkpoints(root: str | Path, limit: int = 200) -> dict[str, str]:
    """Checkpoint files under the runs folder ``root`` (at most ``limit``): ``run: <relative path>`` -> path."""
    root = Path(root)
    found: dict[str, str] = {}
    if not root.is_dir():
        return found
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name.endswith(CHECKPOINT_SUFFIXES):
            found[f"run: {path.relative_to(root)}"] = str(path)
            if len(found) >= limit:
                break
    return found


def checkpoint_config(checkpoint: str | Path) -> tuple[HRNetConfig | None, Path | None]:
    """``(config, its file)`` the ablation runner saved beside (or above) ``checkpoint``; ``(None, None)``."""
    checkpoint = Path(checkpoint)
    for folder in (checkpoint.parent, checkpoint.parent.parent):
        if (folder / RUN_CONFIG_NAME).is_file():
            return load_config(folder / RUN_CONFIG_NAME), folder / RUN_CONFIG_NAME
    return None, None


# ---- run checkpoints by run / variant / seed (the Feature maps page and ``features --run``) ----------------
_SEED_RE = re.compile(r"seed([0-9]{1,10})")
RUN_CHECKPOINTS = ("best", "last")  # best.pth (by val AP) and last.pth, in that order of preference
RUN_CHECKPOINT_COLUMNS = ("run", "variant", "seed", "which", "path", "config", "run_dir")


def run_checkpoints(root: str | Path) -> pd.DataFrame:
    """Every ``best.pth`` / ``last.pth`` of the jobs under the runs folder ``root``
    (``<run>/<variant>/seed<k>/``): one row each with run, variant, seed (int), which (best | last),
    path, config (the job's ``model.yaml``, or None) and run_dir. Sorted by run, variant, seed, best first."""
    root = Path(root)
    rows = []
    if root.is_dir():
        for which in RUN_CHECKPOINTS:
            for path in root.glob(f"*/*/seed*/{which}.pth"):
                match = _SEED_RE.fullmatch(path.parent.name)
                if not match:
                    continue
                seed = int(match.group(1))
                config = path.parent / RUN_CONFIG_NAME
                rows.append({"run": path.parents[2].name, "variant": path.parents[1].name, "seed": seed,
                             "which": which, "path": str(path), "config": str(config) if config.is_file() else None,
                             "run_dir": str(path.parents[2])})
    df = pd.DataFrame(rows, columns=list(RUN_CHECKPOINT_COLUMNS))
    order = df["which"].map({w: i for i, w in enumerate(RUN_CHECKPOINTS)})
    return (df.assign(_o=order).sort_values(["run", "variant", "seed", "_o"]).drop(columns="_o")
            .reset_index(drop=True))


def find_run_checkpoint(run_dir: str | Path, variant: str, seed: int, which: str = "best") -> Path:
    """``run_dir/<variant>/seed<seed>/<which>.pth``. ``which``: best, last, or auto (best when the job
    has one, else last). Raises ``CheckpointError`` naming what is missing and what the run has."""
    from hrnet_core import CheckpointError

    run_dir = Path(run_dir)
    if which not in (*RUN_CHECKPOINTS, "auto"):
        raise CheckpointError(f"--which: expected best, last or auto, got {which!r}")
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run folder")
    job = run_dir / variant / f"seed{seed}"
    if not job.is_dir():
        have = sorted(f"{p.parent.name}/{p.name}" for p in run_dir.glob("*/seed*") if p.is_dir())
        raise CheckpointError(f"{job}: no such job in {run_dir.name} (it has: {', '.join(have) or 'no jobs'})")
    names = RUN_CHECKPOINTS if which == "auto" else (which,)
    for name in names:
        if (job / f"{name}.pth").is_file():
            return job / f"{name}.pth"
    have = sorted(p.name for p in job.glob("*.pth"))
    raise CheckpointError(f"{job / (names[0] + '.pth')}: no such checkpoint (the job has: {', '.join(have) or 'none yet'})")


def checkpoint_run_dir(checkpoint: str | Path) -> Path | None:
    """The run folder of a run checkpoint (``<run>/<variant>/seed<k>/x.pth``, holding ``ablation.json``), or None."""
    run_dir = Path(checkpoint).resolve().parents[2] if len(Path(checkpoint).resolve().parents) > 2 else None
    return run_dir if run_dir is not None and (run_dir / "ablation.json").is_file() else None
