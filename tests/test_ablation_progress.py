"""Run and job states read from a run folder, with the files written as the launcher, the runner and
the trainer write them: preparing (the data being generated), a job being set up, training, evaluating,
between jobs, done, a worker or runner that died, a failure before any job, a resumed run; the
progress table's step, img/s, ETA and progress; deleting a run folder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from analysis.ablation import launch as al
from analysis.ablation.files import LAUNCH_NAME, WORKER_NAME
from analysis.ablation.progress import (
    GONE,
    format_eta,
    list_runs,
    progress_lines,
    read_progress,
    run_status,
    run_summary,
)
from app.logic.run_tables import progress_table

HOST = socket.gethostname()
VARIANTS = [{"name": "final_only", "fusions": 1, "schedule": "1/0001/001"},
            {"name": "all", "fusions": 8, "schedule": "1/1111/111"}]


def _write(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


@pytest.fixture()
def run(tmp_path):
    """An app-launched run folder whose worker is a live process naming the folder on its command line."""
    run_dir = (tmp_path / "runs" / "r1").resolve()
    run_dir.mkdir(parents=True)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", str(run_dir)])
    started = time.time()
    _write(run_dir / LAUNCH_NAME, {"run_dir": str(run_dir), "pid": worker.pid, "started": started})
    _write(run_dir / WORKER_NAME, {"state": "running", "pid": worker.pid, "started": started})
    yield run_dir, worker
    worker.kill()
    worker.wait()


def _runner_started(run_dir: Path, pid: int | None = None, state: str = "running", **kw) -> None:
    """What run_ablation writes once the data is ready: the request, the run status, every job queued."""
    _write(run_dir / "ablation.json", {"name": run_dir.name, "created": "2026-01-01T00:00:00", "variants": VARIANTS,
                                       "seeds": [0], "recipe": {"name": "cpu", "epochs": 5},
                                       "data": {"kind": "builtin"}})
    _write(run_dir / "status.json", {"state": state, "pid": pid or os.getpid(), "host": HOST,
                                     "started_at": time.time(), "jobs": 2, "done": 0, "failed": 0, **kw})
    for v in VARIANTS:
        _write(run_dir / v["name"] / "seed0" / "status.json",
               {"state": "queued", "variant": v["name"], "seed": 0, "fusions": v["fusions"], "epochs": 5,
                "error": None, "epoch": 0, "updated_at": time.time()})


def _job(run_dir: Path, variant: str, pid: int | None = None, **kw) -> None:
    """What the trainer writes into the job's status.json (its fields merged into the queued record)."""
    path = run_dir / variant / "seed0" / "status.json"
    cur = json.loads(path.read_text())
    cur.update({"pid": pid or os.getpid(), "host": HOST, "epochs": 5, **kw, "updated_at": time.time()})
    path.write_text(json.dumps(cur))


def _states(run_dir: Path) -> list[str]:
    return list(read_progress(run_dir)["state"])


def test_preparing_until_the_runner_starts_then_running_never_queued(run):
    run_dir, _ = run
    status = run_status(run_dir)  # the worker generates the built-in data: no request, no jobs yet
    assert (status.state, status.phase) == ("preparing", "preparing data")
    runs = list_runs(run_dir.parent)
    assert list(runs["state"]) == ["preparing"] and list(runs["phase"]) == ["preparing data"]

    _runner_started(run_dir)  # jobs written as queued; the first one is being set up
    assert _states(run_dir) == ["running", "queued"]
    assert read_progress(run_dir)["phase"].tolist() == ["starting", ""]
    assert run_status(run_dir).state == "running"
    assert list_runs(run_dir.parent).loc[0, "state"] == "running"

    _job(run_dir, "final_only", state="running", epoch=0, step=0, steps=40, error=None, started_at=time.time())
    assert _states(run_dir) == ["running", "queued"]
    _job(run_dir, "final_only", state="running", epoch=1, step=12, steps=40, loss=0.0021, lr=0.002, eta_s=725.0,
         images_per_s=31.4, phase="training")
    status = run_status(run_dir)
    assert (status.state, status.phase) == ("running", "training final_only seed 0")
    row = list_runs(run_dir.parent).iloc[0]
    assert (row["state"], row["running"], row["jobs"]) == ("running", 1, 2)

    table = progress_table(read_progress(run_dir))
    first = table.iloc[0]
    assert (first["state"], first["phase"], first["step"], first["ETA"]) == ("running", "training", "12/40", "12 min")
    assert first["img/s"] == "31.4" and first["loss"] == "0.0021"
    assert first["progress"] == pytest.approx((1 + 12 / 40) / 5)
    assert table.iloc[1]["state"] == "queued" and table.iloc[1]["ETA"] == "" and table.iloc[1]["step"] == ""
    assert (table.iloc[1]["loss"], table.iloc[1]["AP (%)"]) == ("", "")  # not reported yet: empty, not "None"

    _job(run_dir, "final_only", state="running", epoch=4, step=40, steps=40, loss=0.0015, phase="evaluating")
    assert run_status(run_dir).phase == "evaluating final_only seed 0"

    _job(run_dir, "final_only", state="done", epoch=5, step=0, loss=0.0014, AP=0.42, eta_s=0.0, phase="training")
    assert _states(run_dir) == ["done", "running"]  # the next job is being set up
    assert read_progress(run_dir)["phase"].tolist() == ["", "starting"]
    _job(run_dir, "all", state="done", epoch=5, AP=0.55, eta_s=0.0)
    status = run_status(run_dir)  # the runner writes the report
    assert (status.state, status.phase) == ("running", "writing the report")

    runner = json.loads((run_dir / "status.json").read_text())
    (run_dir / "status.json").write_text(json.dumps(runner | {"state": "done", "done": 2, "finished_at": time.time()}))
    assert run_status(run_dir).state == "done"  # even before the worker has recorded its end
    table = progress_table(read_progress(run_dir))
    assert list(table["ETA"]) == ["", ""] and list(table["progress"]) == [1.0, 1.0]


def test_jobs_started_in_parallel_are_running_from_the_start(run):
    run_dir, _ = run
    _runner_started(run_dir, parallel_jobs=2)  # the cpu recipe trains jobs side by side, one process each
    assert _states(run_dir) == ["running", "running"]
    _job(run_dir, "all", state="running", epoch=0, step=1, steps=40, loss=0.02, phase="training")
    assert read_progress(run_dir)["phase"].tolist() == ["starting", "training"]
    _job(run_dir, "final_only", state="done", epoch=5)
    assert _states(run_dir) == ["done", "running"]


def test_a_running_job_without_an_estimate_says_so(run):
    run_dir, _ = run
    _runner_started(run_dir)
    _job(run_dir, "final_only", state="running", epoch=0, step=3, steps=40, loss=0.01)
    table = progress_table(read_progress(run_dir))
    assert table.iloc[0]["ETA"] == "estimating" and table.iloc[0]["phase"] == "training"
    assert "img/s" not in table.columns  # no job has reported a throughput yet


def test_worker_that_died_while_preparing_is_failed_with_the_reason(run):
    run_dir, worker = run
    worker.kill()
    worker.wait()
    status = run_status(run_dir)
    assert (status.state, status.reason) == ("failed", GONE)
    row = list_runs(run_dir.parent).iloc[0]
    assert (row["state"], row["reason"]) == ("failed", GONE)


def test_runner_killed_mid_job_is_failed_not_running(run):
    run_dir, worker = run
    gone = _dead_pid()
    _runner_started(run_dir, pid=gone)
    _job(run_dir, "final_only", pid=gone, state="running", epoch=2, step=5, steps=40, loss=0.01, eta_s=100.0)
    worker.kill()
    worker.wait()
    progress = read_progress(run_dir)
    assert _states(run_dir) == ["failed", "queued"] and "is gone" in progress.loc[0, "error"]
    assert progress.loc[0, "epoch"] == 2 and pd.isna(progress.loc[0, "eta_s"])
    assert run_status(run_dir).state == "failed"


def test_runner_gone_between_jobs_is_failed(tmp_path):
    run_dir = tmp_path / "cli-run"  # started from the CLI: no worker records
    run_dir.mkdir()
    gone = _dead_pid()
    _runner_started(run_dir, pid=gone)
    assert _states(run_dir) == ["queued", "queued"]  # nothing is set up by a dead runner
    status = run_status(run_dir)
    assert status.state == "failed" and f"process {gone} is gone" in status.reason


def test_failure_before_any_job_shows_its_reason(run):
    run_dir, worker = run
    worker.kill()
    worker.wait()
    reason = "hrnet-explorer ablate: error: /data/coco/annotations/person_keypoints_train2017.json: not valid JSON"
    _write(run_dir / WORKER_NAME, {"state": "failed", "pid": worker.pid, "returncode": 2, "reason": reason})
    status = run_status(run_dir)
    assert (status.state, status.reason, status.phase) == ("failed", reason, "")
    assert list_runs(run_dir.parent).loc[0, "reason"] == reason


def test_failed_job_and_stopped_worker(run):
    run_dir, worker = run
    _runner_started(run_dir)
    _job(run_dir, "final_only", state="failed", error="RuntimeError: injected failure")
    assert _states(run_dir) == ["failed", "running"]  # the runner goes on with the next job
    assert run_status(run_dir).state == "running"
    (run_dir / "status.json").write_text(json.dumps({"state": "failed", "pid": os.getpid(), "host": HOST,
                                                     "error": "1 of 2 jobs failed"}))
    _job(run_dir, "all", state="done", epoch=5)
    worker.kill()
    worker.wait()
    _write(run_dir / WORKER_NAME, {"state": "failed", "pid": worker.pid, "returncode": 1,
                                   "reason": "hrnet-explorer ablate: 1 of 2 jobs failed"})
    assert run_status(run_dir).reason == "hrnet-explorer ablate: 1 of 2 jobs failed"
    _write(run_dir / WORKER_NAME, {"state": "stopped", "pid": worker.pid, "returncode": 130,
                                   "reason": "stopped by the user"})
    assert run_status(run_dir).state == "stopped"


def test_resumed_run_is_preparing_not_its_earlier_failure(run):
    run_dir, worker = run
    _runner_started(run_dir, pid=_dead_pid(), state="failed", error="interrupted")
    (run_dir / "status.json").write_text(json.dumps({"state": "failed", "error": "interrupted",
                                                     "started_at": time.time() - 3600}))
    _job(run_dir, "final_only", pid=_dead_pid(), state="failed", error="interrupted; continue with --resume")
    assert run_status(run_dir).state == "preparing"  # the new worker (started now) regenerates the data
    _write(run_dir / WORKER_NAME, {"state": "running", "pid": worker.pid, "started": time.time() - 7200})
    # that record is the worker's own session's: its run failed, and the worker, alive, is recording it (no
    # Resume yet: the worker still holds the run)
    assert (run_status(run_dir).state, run_status(run_dir).phase) == ("running", "ending")
    worker.kill()
    worker.wait()
    assert run_status(run_dir).state == "failed"


def test_format_eta():
    assert [format_eta(s) for s in (None, float("nan"), -1, 0, 42.4, 60, 725, 3599, 3600, 3 * 3600 + 2 * 60 + 1)] == [
        "", "", "", "0 s", "42 s", "1 min", "12 min", "60 min", "1 h 00 min", "3 h 02 min"]


# ---- deleting a run -------------------------------------------------------------------------
def test_delete_run_refuses_live_runs_and_foreign_folders(run, tmp_path):
    run_dir, worker = run
    root = run_dir.parent
    with pytest.raises(al.LaunchError, match="r1 is preparing; stop it first"):
        al.delete_run(run_dir, root)
    _runner_started(run_dir)
    with pytest.raises(al.LaunchError, match="r1 is running; stop it first"):
        al.delete_run(run_dir, root)
    assert (run_dir / "ablation.json").is_file()

    plain = root / "notes"
    plain.mkdir()
    (plain / "keep.txt").write_text("mine")
    with pytest.raises(al.LaunchError, match="not an ablation run"):
        al.delete_run(plain, root)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "ablation.json").write_text("{}")
    with pytest.raises(al.LaunchError, match="not a run folder under"):
        al.delete_run(outside, root)
    with pytest.raises(al.LaunchError, match="not a run folder under"):
        al.delete_run(root, root)
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(al.LaunchError, match="is a link"):
        al.delete_run(root / "link", root)
    assert (plain / "keep.txt").is_file() and (outside / "ablation.json").is_file()

    worker.kill()
    worker.wait()
    (run_dir / "status.json").write_text(json.dumps({"state": "done", "pid": os.getpid(), "host": HOST}))
    assert al.delete_run(run_dir, root) == run_dir
    assert not run_dir.exists() and outside.is_dir() and plain.is_dir()


# ---- the whole run at a glance (CLI and app, any executor) ---------------------------------------------------
def test_run_summary_counts_jobs_and_estimates_the_run(run):
    run_dir, _worker = run
    _runner_started(run_dir, parallel_jobs=1)
    df = read_progress(run_dir)
    assert run_summary(df, 1).text() == "jobs 2: 0 done, 1 running, 1 queued; run ETA estimating"  # one starting
    # The first job is a fifth through its 5 epochs with 400 s to go: each job takes about 500 s.
    _job(run_dir, "final_only", state="running", epoch=1, step=0, steps=10, eta_s=400.0, images_per_s=147.2,
         phase="training")
    df = read_progress(run_dir)
    s = run_summary(df, 1)
    assert (s.done, s.running, s.queued) == (0, 1, 1) and s.eta_s == pytest.approx(400 + 500)
    assert run_summary(df, 2).eta_s == pytest.approx(450)  # two slots share the work
    lines = progress_lines(run_dir, 1)
    assert lines == ["run r1: jobs 2: 0 done, 1 running, 1 queued; run ETA about 15 min",
                     "  final_only seed 0: training epoch 2/5 step 0/10, 147 img/s, ETA 7 min"]
    # Between two jobs of a serial run: the done job's own duration (started_at .. updated_at) tells.
    now = time.time()
    path = run_dir / "final_only" / "seed0" / "status.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "state": "done", "epoch": 5, "eta_s": 0.0,
                                "started_at": now - 300, "updated_at": now}))
    s = run_summary(read_progress(run_dir), 1)
    assert (s.done, s.running, s.queued) == (1, 1, 0) and s.eta_s == pytest.approx(300, abs=1)  # the next starting


def test_a_stopped_run_says_stopped_not_failed(run):
    run_dir, worker = run
    _runner_started(run_dir, pid=_dead_pid(), state="stopped", error="stopped; continue with --resume")
    _job(run_dir, "final_only", pid=_dead_pid(), state="stopped", error="stopped; continue with --resume", epoch=2)
    # the runner has stopped, its worker not yet recorded it: still live (a Resume now would be refused)
    assert (run_status(run_dir).state, run_status(run_dir).phase) == ("running", "ending")
    worker.kill()
    worker.wait()
    _write(run_dir / WORKER_NAME, {"state": "finished", "pid": worker.pid, "returncode": 0})
    assert _states(run_dir) == ["stopped", "queued"]
    assert run_status(run_dir).state == "stopped"
    assert run_summary(read_progress(run_dir)).text() == "jobs 2: 0 done, 1 queued, 1 stopped"  # no ETA: none runs
