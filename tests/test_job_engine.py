"""One Executor behind the fusion ablation: ``--executor local | submitit-local | slurm``.

The smoke ablation through submitit-local writes the summary local writes; ``slurm --dry-run`` writes
the array job's sbatch script and submits nothing (there is no SLURM here: ``sbatch`` is never run); a
job process SIGKILLed mid-epoch resumes with ``--resume`` under both local executors; bad input is one
line, exit 2, nothing written."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from analysis.ablation.files import read_jsonl
from analysis.ablation.threads import available_cores
from analysis.cli import main

SMOKE = ROOT / "configs" / "recipes" / "smoke.yaml"


def _env(tmp: Path) -> dict:
    # HRNET_EXPLORER_CACHE: the one cache of this session (``_cache``): the built-in data is made once.
    return dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HRNET_EXPLORER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _recipe(tmp: Path, **extra) -> Path:
    """The smoke recipe in float32: the measured bf16-or-fp32 choice of ``cpu_precision: auto`` may go
    either way between two runs, and the two executors must train the same arithmetic."""
    doc = {**yaml.safe_load(SMOKE.read_text()), "cpu_precision": "fp32", **extra}
    path = tmp / f"recipe-{len(list(tmp.glob('recipe-*')))}.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


def _ablate(tmp: Path, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analysis.cli", "ablate", "--device", "cpu", *args], cwd=ROOT,
                          env=_env(tmp), capture_output=True, text=True, timeout=timeout)


def _rows(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines() if x.strip()]


# ---- submitit-local writes what local writes ------------------------------------------------------
TIMING = ("images_per_s", "wall_s", "peak_mem_mib", "peak_rss_mib", "train_s", "eval_s", "epoch_s")  # measured


def test_submitit_local_writes_the_summary_local_writes(tmp_path):
    recipe = _recipe(tmp_path)
    runs = {}
    for name in ("local", "submitit-local"):
        out = tmp_path / name
        proc = _ablate(tmp_path, "--recipe", str(recipe), "--epochs", "1", "--variants", "1", "--executor", name,
                       "--out", str(out))
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        first = proc.stdout.splitlines()[0]
        assert first.startswith(f"ablation {name}: jobs run on executor {name} ("), first
        assert first.endswith("; 1 CPU thread per job (--cpu-threads / recipe cpu_threads; "
                              f"{available_cores()} cores)"), first
        job_log = (proc.stdout if name == "local" else
                   "".join(p.read_text() for p in (out / "submitit").glob("*_log.out")))
        assert ", 1 CPU thread(s)" in job_log, job_log[-2000:]  # what the job itself ran with
        runs[name] = out
    assert sorted(p.name for p in (runs["submitit-local"] / "submitit").glob("*_log.out")), "submitit's logs"
    assert not (runs["local"] / "submitit").exists()
    local, sub = (json.loads((runs[n] / "summary.json").read_text())["variants"] for n in runs)
    assert [r["variant"] for r in local] == [r["variant"] for r in sub] == ["final_only"]
    for a, b in zip(local, sub):
        assert (a["state"], a["seeds_done"], a["params"]) == (b["state"], b["seeds_done"], b["params"]) == \
            ("done", 1, a["params"])
        # Same seeds, same data order, float32 on one CPU thread: the training is bitwise reproducible
        # across processes, so every metric is equal; only the measured speeds differ.
        assert {k: v for k, v in a.items() if k not in TIMING} == {k: v for k, v in b.items() if k not in TIMING}
    for v in ("final_only",):
        ra, rb = _rows(runs["local"] / v / "seed0"), _rows(runs["submitit-local"] / v / "seed0")
        assert [r["epoch"] for r in ra] == [r["epoch"] for r in rb] == [1]
        assert [{k: x for k, x in r.items() if k not in TIMING} for r in ra] == \
            [{k: x for k, x in r.items() if k not in TIMING} for r in rb]
        status = json.loads((runs["submitit-local"] / v / "seed0" / "status.json").read_text())
        assert status["state"] == "done" and status["epoch"] == 1


# ---- slurm --dry-run ------------------------------------------------------------------------------
def test_slurm_dry_run_writes_the_array_script_and_submits_nothing(tmp_path):
    recipe = _recipe(tmp_path, cluster={"partition": "cpu", "account": "lab7", "time": 30})
    out = tmp_path / "run"
    env = _env(tmp_path)
    env["PATH"] = f"{tmp_path / 'bin'}:{env['PATH']}"
    (tmp_path / "bin").mkdir()
    for tool in ("sbatch", "srun", "squeue", "sacct", "scancel"):  # a call to any of them is recorded
        path = tmp_path / "bin" / tool
        path.write_text(f"#!/bin/sh\necho {tool} >> {tmp_path / 'called'}\nexit 1\n")
        path.chmod(0o755)
    proc = subprocess.run([sys.executable, "-m", "analysis.cli", "ablate", "--recipe", str(recipe), "--device", "cpu",
                           "--variants", "1,3,8", "--seeds", "2", "--executor", "slurm", "--dry-run",
                           "--slurm", "partition=gpu", "--slurm", "gpus-per-task=1", "--slurm", "cpus_per_task=6",
                           "--slurm", "mem=24G", "--slurm", "array_parallelism=4", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    script = out / "submitit" / "ablate-array.sbatch"
    assert f"sbatch script of the array job is {script}; nothing was submitted" in proc.stdout
    text = script.read_text()
    lines = text.splitlines()
    assert "#SBATCH --array=0-5%4" in lines  # 3 variants x 2 seeds in ONE array, 4 at a time
    for line in ("#SBATCH --partition=gpu",  # --slurm over the recipe's cluster: partition
                 "#SBATCH --account=lab7", "#SBATCH --time=30",  # the recipe's cluster: section
                 "#SBATCH --gpus-per-task=1", "#SBATCH --cpus-per-task=6", "#SBATCH --mem=24G",
                 "#SBATCH --job-name=ablate-run", f"#SBATCH --output={out / 'submitit'}/%A_%a_0_log.out"):
        assert line in lines, (line, text)
    assert "-m submitit.core._submit" in text and str(out / "submitit") in text
    assert not (tmp_path / "called").exists(), "a SLURM tool was run"
    assert sorted(p.name for p in out.iterdir()) == [".hrnet-explorer-run", "submitit"]  # nothing trained
    assert [p.name for p in (out / "submitit").iterdir()] == ["ablate-array.sbatch"]


# ---- a job SIGKILLed mid-epoch resumes ----------------------------------------------------------------
def _status(folder: Path) -> dict:
    try:
        return json.loads((folder / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _running_job(proc: subprocess.Popen, folder: Path, min_epoch: int, not_pid: int | None = None) -> int:
    """The pid of the process training ``folder`` once it trains (``min_epoch`` epochs recorded), not
    the runner ``proc`` itself and not ``not_pid``."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        st = _status(folder)
        if st.get("state") == "running" and st.get("epoch", 0) >= min_epoch and st.get("pid") not in (
                None, proc.pid, not_pid):
            return st["pid"]
        time.sleep(0.02)
    raise AssertionError(f"the job in {folder} never reached epoch {min_epoch + 1}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def _start(tmp: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "analysis.cli", "ablate", "--device", "cpu", *args], cwd=ROOT,
                            env=_env(tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("executor, epochs", [("local", 3), ("submitit-local", 5)])
def test_a_job_killed_mid_epoch_resumes_with_every_epoch_once(tmp_path, executor, epochs):
    recipe = _recipe(tmp_path, epochs=epochs, lr_steps=[epochs], parallel_jobs=2, eval_every=1, flip_test=False)
    out = tmp_path / "run"
    killed = out / "all" / "seed0"
    proc = _start(tmp_path, "--recipe", str(recipe), "--variants", "1,8", "--executor", executor, "--out", str(out))
    try:
        pid = _running_job(proc, killed, 1)  # epoch 1 recorded: it trains epoch 2
        os.kill(pid, signal.SIGKILL)
        log, _ = proc.communicate(timeout=240)
    finally:
        _stop(proc)
    assert proc.returncode == 1, log[-3000:]  # one job failed, the other finished
    assert "2 job(s) at a time" in log
    st = _status(killed)
    assert st["state"] == "failed" and st["pid"] == pid and "ended" in st["error"], st
    assert _status(out / "final_only" / "seed0")["state"] == "done"
    assert 1 <= len(read_jsonl(killed / "metrics.jsonl")) < epochs  # a line torn by the kill is skipped

    if executor == "submitit-local":
        # The job's parent is submitit's controller, which outlives the runner by design: the job
        # watches the runner, so a SIGKILLed runner leaves no job training behind.
        proc = _start(tmp_path, "--out", str(out), "--resume", "--executor", executor)
        try:
            job = _running_job(proc, killed, 0, not_pid=pid)
            proc.kill()
            proc.wait()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and _alive(job):
                time.sleep(0.05)
            assert not _alive(job), "the submitit-local job outlived its runner"
        finally:
            _stop(proc)
        st = _status(killed)
        assert st["state"] == "stopped" and "continue with --resume" in st["error"], st

    proc2 = _ablate(tmp_path, "--out", str(out), "--resume", "--executor", executor)
    assert proc2.returncode == 0, (proc2.stdout + proc2.stderr)[-3000:]
    assert proc2.stdout.splitlines()[1].startswith(f"ablation run: jobs run on executor {executor} (")
    for v in ("final_only", "all"):
        folder = out / v / "seed0"
        assert [r["epoch"] for r in _rows(folder)] == list(range(1, epochs + 1)), v
        st = _status(folder)
        assert st["state"] == "done" and st["epoch"] == epochs
    assert _status(out)["state"] == "done"
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["variant"], r["state"]) for r in summary["variants"]] == [("final_only", "done"), ("all", "done")]


# ---- bad input: one line, exit 2, nothing written ----------------------------------------------------
@pytest.mark.parametrize("args, says", [
    (["--executor", "kubernetes"], "--executor: unknown executor 'kubernetes'; choose local, submitit-local, slurm"),
    (["--slurm", "partition=gpu"], "--slurm: SLURM options need --executor slurm (not local)"),
    (["--executor", "submitit-local", "--slurm", "time=60"], "--slurm: SLURM options need --executor slurm"),
    (["--dry-run"], "--dry-run: only with --executor slurm (not local)"),
    (["--executor", "submitit-local", "--dry-run"], "--dry-run: only with --executor slurm"),
    (["--executor", "slurm", "--dry-run", "--slurm", "nodes=4"], "--slurm: nodes: unknown key"),
    (["--executor", "slurm", "--dry-run", "--slurm", "time=soon"], "--slurm time: must be a positive integer"),
    (["--executor", "slurm", "--dry-run", "--slurm", "partition"], "--slurm partition: must be KEY=VALUE"),
    (["--cpu-threads", "0"], "--cpu-threads: must be a positive integer, got 0"),
])
def test_bad_executor_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, says):
    out = tmp_path / "run"
    assert main(["ablate", "--smoke", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and says in err, err
    assert not out.exists()


@pytest.mark.skipif(shutil.which("srun") is not None, reason="a SLURM cluster: the run would be submitted")
def test_slurm_without_slurm_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["ablate", "--smoke", "--out", str(out), "--executor", "slurm", "--slurm", "partition=gpu"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--executor slurm: no SLURM here (srun not found)" in err, err
    assert not out.exists()


def test_a_recipe_cluster_section_with_an_unknown_key_is_named(tmp_path, capsys):
    recipe = _recipe(tmp_path, cluster={"partition": "gpu", "gpus_per_node": 8})
    out = tmp_path / "run"
    for executor in ("local", "slurm"):
        extra = ["--dry-run"] if executor == "slurm" else []
        assert main(["ablate", "--recipe", str(recipe), "--out", str(out), "--executor", executor, *extra]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert f"{recipe}: cluster.gpus_per_node: unknown key; allowed: account" in err, err
        assert not out.exists()
