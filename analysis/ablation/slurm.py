"""The job function submitit runs (``submitit-local`` and ``slurm``) and the sbatch script of a dry run.

``FolderJob()(out, variant, seed)`` trains one job of the run in ``out`` from its folder and the run's
stored request (``ablation.json``), exactly as ``--resume`` would: it continues from ``last.pth``. It is
a ``submitit.helpers.Checkpointable``: on a SLURM preemption or timeout submitit calls ``checkpoint``,
which requeues the same call, and the requeued task resumes from the last complete epoch.

``executor_spec(name, cluster)`` is the ``ExecutorSpec`` the CLI hands to ``run_ablation``: for the
submitit executors it carries ``FolderJob``. ``slurm_dry_run`` writes the sbatch script of the run's
one array job into ``runs/NAME/submitit/`` and submits nothing.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

from submitit import SlurmExecutor
from submitit.helpers import Checkpointable

from analysis.ablation.executors import (
    STOPPED,
    SUBMITIT_FOLDER,
    ExecutorSpec,
    mark_job,
    record_failure,
    slurm_parameters,
)
from analysis.ablation.files import write_text_atomic
from analysis.ablation.precision import Precision
from analysis.ablation.procs import set_parent_death_signal
from analysis.ablation.run_folder import claimed_run_folder, stored_precision
from analysis.ablation.runner import (
    AblationRequest,
    build_job,
    check_jobs,
    check_run_out,
    job_done,
    job_folder,
    load_request,
    lock_holder,
    locked_error,
    prepare_data,
    run_threads,
)
from analysis.ablation.train import make_context, train_job
from hrnet_core.errors import UserInputError, quote

SBATCH_NAME = "ablate-array.sbatch"  # runs/NAME/submitit/<this> on --dry-run


def _raise_interrupt(_signum, _frame):
    raise KeyboardInterrupt


def train_from_folder(out: Path, variant: str, seed: int, log=print, threads: int | None = None) -> str:
    """Train one job of the run in ``out`` from its folder and the stored request (``ablation.json``,
    checked as on ``--resume``), continuing from ``last.pth``; what a submitit job runs. The run's
    precision (stored by the runner) is reused. Returns the job's state, "done" or "failed"; a failure
    (any exception) is recorded in the job's ``status.json`` and ``error.txt``, not raised; Ctrl-C or
    SIGTERM marks the job "stopped" ("continue with --resume") and is raised again. Raises
    ``UserInputError`` for a run folder that cannot be trusted or a variant / seed it does not hold.
    ``threads``: torch threads on a CPU (the runner's ``run_threads``); ``None``: the recipe's ``cpu_threads``,
    else every core this task may use (a SLURM task's allocation)."""
    req = load_request(out)
    by_name = {v.name: v for v in req.variants}
    if variant not in by_name or seed not in req.seeds:
        raise UserInputError(f"{out}: holds no job {quote(variant)} seed {seed}")
    stored = stored_precision(out)
    ctx = make_context(req.device)
    precision = Precision.from_dict(stored) if stored and stored.get("device") == ctx.device.type else None
    if threads is None and ctx.device.type == "cpu":
        threads = run_threads(req, ctx, 1)
    job = build_job(req, by_name[variant], seed, precision, threads)
    try:
        data = prepare_data(req, ctx, log)
        train_job(job, data, ctx, resume=True, log=log)
    except Exception as err:
        record_failure(job, err, log)
        return "failed"
    except KeyboardInterrupt:
        mark_job(job.folder, state="stopped", error=STOPPED)
        raise
    return "done"


def _flushed_print(text: str) -> None:
    print(text, flush=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc: the signal test above is all there is


def end_with(pid: int, every_s: float = 0.2) -> threading.Thread:
    """Watch process ``pid`` (the runner) from a daemon thread, every ``every_s`` seconds; when it is
    gone (or a zombie) send SIGTERM to this process, so that a job started by submitit-local, whose
    parent is submitit's controller and not the runner, does not outlive a killed runner."""
    def watch() -> None:
        while _alive(pid):
            time.sleep(every_s)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name=f"end-with-{pid}", daemon=True)
    thread.start()
    return thread


class FolderJob(Checkpointable):
    """One job (``variant`` x ``seed``) of the run in ``out``, picklable for submitit."""

    def __call__(self, out: str, variant: str, seed: int, local: bool = False, runner_pid: int | None = None,
                 threads: int | None = None) -> str:
        """Train the job (``train_from_folder``); returns "done" or "failed". ``local``: started by
        submitit's ``LocalExecutor``, so SIGTERM stops the job (marked stopped, to be resumed) and it
        ends with submitit's controller and with the runner ``runner_pid`` (``end_with``). On SLURM
        submitit's own handlers stay (SIGTERM is ignored, the preemption / timeout signal checkpoints
        and requeues). ``threads``: torch threads (``None``: all cores of the task)."""
        if local:
            set_parent_death_signal()
            signal.signal(signal.SIGTERM, _raise_interrupt)
            if runner_pid:
                end_with(int(runner_pid))
        return train_from_folder(Path(out), variant, int(seed), log=_flushed_print, threads=threads)


def executor_spec(name: str = "local", cluster: dict | None = None) -> ExecutorSpec:
    """The ``ExecutorSpec`` for ``name`` (``executors.EXECUTORS``) with the SLURM options ``cluster``;
    the submitit executors get ``FolderJob``. Raises ``UserInputError`` naming ``--executor`` or the
    option."""
    spec = ExecutorSpec(name, dict(cluster or {}))
    return spec if name == "local" else ExecutorSpec(name, spec.cluster, FolderJob())


class ScriptOnlySlurmExecutor(SlurmExecutor):
    """submitit's ``SlurmExecutor`` that only renders its sbatch text: no ``srun`` needed, nothing
    submitted. It uses the executor's internals (``_make_submission_file_text``, the ``map_count``
    parameter of an array, ``_submitit_command_str``) because submitit has no public way to render
    the script: the text is exactly what ``map_array`` would hand to ``sbatch``."""

    @classmethod
    def affinity(cls) -> int:
        return 1  # the base class refuses to start without srun on the PATH

    def array_script(self, jobs: int) -> str:
        """The sbatch text of one array job of ``jobs`` tasks. Raises ``ValueError`` for ``jobs`` < 1."""
        if jobs < 1:
            raise ValueError("an array job needs at least one job")
        params = dict(self.parameters, map_count=jobs)
        saved, self.parameters = self.parameters, params
        try:
            return self._make_submission_file_text(self._submitit_command_str, "dry-run")
        finally:
            self.parameters = saved


def sbatch_text(out: Path, jobs: int, cluster: dict) -> str:
    """The sbatch script submitit submits for ONE array job of ``jobs`` tasks of the run in ``out``
    (``#SBATCH --array=0-<jobs-1>%<parallelism>``) with the options of ``cluster``
    (``recipes.CLUSTER_KEYS``), logs in ``out/submitit/``. Raises ``ValueError`` for ``jobs`` < 1."""
    ex = ScriptOnlySlurmExecutor(Path(out).absolute() / SUBMITIT_FOLDER, python=shlex.quote(sys.executable))
    ex.update_parameters(**slurm_parameters(cluster, Path(out).name))
    return ex.array_script(jobs)


def slurm_dry_run(req: AblationRequest, spec: ExecutorSpec, resume: bool = False, log=print) -> Path:
    """``--executor slurm --dry-run``: write the sbatch script of the run's ONE array job (every job not
    yet done) to ``req.out/submitit/ablate-array.sbatch`` and return its path; trains, submits and
    otherwise writes nothing (the folder is created and marked as a run folder of this tool). The
    options: ``spec.cluster`` over the recipe's ``cluster:``. Raises ``UserInputError`` as
    ``run_ablation`` does before it writes anything (a folder that is not a run, one holding an
    ablation without ``resume``, a busy folder, bad data), and when every job is already done."""
    out = req.out
    check_run_out(req, resume)
    holder = lock_holder(out)
    if holder:
        raise locked_error(out, holder)
    with claimed_run_folder(out):
        check_jobs(req, log)
        left = sum(not job_done(job_folder(out, v.name, s), req.recipe.epochs)
                   for s in req.seeds for v in req.variants)
        if not left:
            raise UserInputError(f"{out}: every job is done; nothing to submit")
        text = sbatch_text(out, left, {**req.recipe.cluster, **spec.cluster})
        path = out / SUBMITIT_FOLDER / SBATCH_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
        return path


__all__ = ["SBATCH_NAME", "FolderJob", "ScriptOnlySlurmExecutor", "end_with", "executor_spec", "sbatch_text", "slurm_dry_run",
           "train_from_folder"]
