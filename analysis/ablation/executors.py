"""Who runs the jobs of an ablation: one ``Executor`` interface, three ways to run.

One job is one variant x seed, trained in its folder ``runs/NAME/<variant>/seed<k>/``. Whatever runs
it, the run folder contract stays the one truth that ``report``, the app and ``--resume`` read: the
job's ``status.json``, ``metrics.jsonl`` and its atomic ``last.pth``.

- ``local`` (the default): in this process one job after the other, or, with the recipe's
  ``parallel_jobs`` > 1 on a CPU, a pool of spawned job processes (``parallel_jobs`` at a time).
- ``submitit-local``: each job its own process started by submitit's ``LocalExecutor``; submitit's
  files and logs stay in ``runs/NAME/submitit/``. The job trains from its folder and the run's stored
  request (the spec's ``job``: ``analysis.ablation.slurm.FolderJob``), so it resumes as ``--resume``
  does. ``analysis.ablation.slurm.executor_spec`` makes a spec with it.
- ``slurm``: one SLURM array job for all jobs of the run (submitit's ``AutoExecutor``); a preempted or
  timed-out task is requeued and resumes from ``last.pth``.

An executor offers ``submit(variant, job) -> handle``, ``done(handle)``, ``cancel(handle)`` and
``result(handle, job)``; ``run_all`` drives them (never more than ``slots`` jobs at once) and on a kill
or Ctrl-C of the run stops the jobs it started and marks them "stopped" (not failed: nothing went wrong; they
continue with ``--resume`` or the app's Resume).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from analysis.ablation.files import RunFolderError, read_json, write_json_atomic, write_text_atomic
from analysis.ablation.procs import set_parent_death_signal
from analysis.ablation.progress import progress_lines
from analysis.ablation.recipes import parse_cluster
from analysis.ablation.train import PROGRESS_EVERY_S, DistContext, Job, train_job
from hrnet_core.errors import UserInputError, quote

EXECUTORS = ("local", "submitit-local", "slurm")
SUBMITIT_FOLDER = "submitit"  # runs/NAME/submitit/: submitit's pickles, logs and sbatch files
POLL_S = 0.2  # how often the runner looks at the jobs it started
LOCAL_TIMEOUT_MIN = 60 * 24 * 30  # submitit's LocalExecutor kills a job after 2 min unless told otherwise


@dataclass(frozen=True)
class ExecutorSpec:
    """Which executor runs the jobs and, for ``slurm``, its options (``recipes.CLUSTER_KEYS``:
    partition, account, qos, time in minutes, cpus_per_task, gpus_per_task, mem, array_parallelism,
    constraint). Raises ``UserInputError`` naming ``--executor`` for an unknown name and the key for a
    bad option."""

    name: str = "local"
    cluster: dict = field(default_factory=dict)
    job: Callable | None = None  # submitit's job function (a picklable FolderJob); None for local

    def __post_init__(self):
        check_executor_name(self.name)
        object.__setattr__(self, "cluster", parse_cluster(dict(self.cluster), "--slurm"))


def check_executor_name(name: str) -> str:
    """``name`` when it is one of ``EXECUTORS``; else ``UserInputError`` (one line naming ``--executor``)."""
    if name not in EXECUTORS:
        raise UserInputError(f"--executor: unknown executor {quote(str(name))}; choose {', '.join(EXECUTORS)}")
    return name


def error_line(err: BaseException) -> str:
    """One line (at most 400 characters) saying why a job failed: the message of a ``UserInputError``,
    else the exception's kind and the first line of its message ("CUDA out of memory" for an OOM)."""
    first = (str(err).strip().splitlines() or [""])[0]
    if isinstance(err, UserInputError) and first:
        return first[:400]
    kind = "CUDA out of memory" if isinstance(err, torch.cuda.OutOfMemoryError) else err.__class__.__name__
    text = f"{kind}: {first}" if first and not first.startswith(kind) else (first or kind)
    return text[:400]


# ---- the job folder's status ------------------------------------------------------------------
def mark_job(folder: Path, **kw) -> None:
    """Merge ``kw`` into ``folder/status.json`` (atomic write, ``updated_at`` in seconds since the epoch).
    Raises ``OSError`` when it cannot be written."""
    path = folder / "status.json"
    write_json_atomic(path, {**read_json(path), **kw, "updated_at": time.time()})


def record_failure(job: Job, err: BaseException, log) -> None:
    """``status.json`` state "failed" with the one-line reason, and the traceback in ``error.txt``; each
    written on its own, best effort: on a full disk the small status file may still fit (the failed
    checkpoint's temporary file is gone by now) when the traceback does not. Raises nothing."""
    line = error_line(err)
    try:
        mark_job(job.folder, state="failed", error=line)
    except OSError as write_err:
        log(f"  {job.variant} seed {job.seed}: could not record the failure in status.json ({write_err})")
    try:
        write_text_atomic(job.folder / "error.txt", "".join(traceback.format_exception(err)))
    except OSError:
        pass  # status.json (or the log line below) already holds the reason
    log(f"  {job.variant} seed {job.seed} failed: {line}")


STOPPED = "stopped; continue with --resume"  # a job's and a run's reason after a stop (Ctrl-C, SIGTERM, Stop)


def record_stop(folders: list[Path], run_status_path: Path, err: BaseException) -> None:
    """The run was stopped (``err``): every unfinished job of ``folders`` and the run's ``status.json``
    are marked "stopped" for a ``KeyboardInterrupt`` (Ctrl-C, SIGTERM, the app's Stop), "failed" for any
    other ``BaseException``; either way they continue with ``--resume``."""
    if isinstance(err, KeyboardInterrupt):
        state, reason = "stopped", STOPPED
    else:
        state, reason = "failed", f"stopped ({err.__class__.__name__}); continue with --resume"
    for folder in folders:
        if read_json(folder / "status.json").get("state") != "done":
            mark_job(folder, state=state, error=reason)
    write_json_atomic(run_status_path, {**read_json(run_status_path), "state": state,
                                        "error": reason, "finished_at": time.time()})


def say_progress(run_dir: Path, slots: int, log) -> None:
    """Log the run's progress (``progress.progress_lines``: jobs done / running / queued, the run's ETA,
    each running job's epoch, img/s and ETA), read from the job folders; a record that cannot be read
    is skipped, never a reason to stop the run."""
    try:
        lines = progress_lines(run_dir, slots)
    except (RunFolderError, OSError):
        return
    for line in lines:
        log(line)


def _started(v, job: Job) -> str:
    return f"{v.name} (fusions {v.fusions}, {v.bits}) seed {job.seed}: started"


# ---- the interface ----------------------------------------------------------------------------
class Executor:
    """Runs jobs (``(variant, Job)`` pairs) and reports how each ended; at most ``slots`` at once."""

    name = "executor"

    def __init__(self, slots: int = 1):
        self.slots = max(1, int(slots))

    def describe(self) -> str:
        """One line for the run's log: the executor's name and how it runs the jobs."""
        return self.name

    def submit(self, v, job: Job):
        """Start ``job`` (variant ``v``); returns a handle for ``done`` / ``cancel`` / ``result``."""
        raise NotImplementedError

    def submit_many(self, batch: list) -> list:
        """Start every ``(variant, job)`` of ``batch``; returns their handles in the same order."""
        return [self.submit(v, job) for v, job in batch]

    def done(self, handle) -> bool:
        """Whether the job of ``handle`` has ended (finished, failed or killed)."""
        raise NotImplementedError

    def cancel(self, handle) -> None:
        """Ask the job of ``handle`` to stop (it marks itself failed, to be resumed)."""
        raise NotImplementedError

    def wait_stopped(self, handle) -> None:
        """After ``cancel``: wait until the job has ended (escalating where it does not)."""

    def result(self, handle, job: Job) -> bool:
        """After ``done``: True when the job finished (its ``status.json`` says done); otherwise it is
        marked failed with a reason when it has not said so itself."""
        state = read_json(job.folder / "status.json").get("state")
        if state == "done" and self.ended_well(handle):
            return True
        if state not in ("failed", "stopped"):
            mark_job(job.folder, state="failed", error=self.end_reason(handle))
        return False

    def ended_well(self, handle) -> bool:
        """Whether the job's process (where there is one) ended without an error."""
        return True

    def end_reason(self, handle) -> str:
        """Why a job that did not finish ended, for its ``status.json``."""
        return "the job ended before it finished; continue with --resume"

    def order(self, todo: list) -> list:
        """The order the jobs are started in: longest first within each seed (more fusions cost more),
        so that the slots run out of work together."""
        return sorted(todo, key=lambda t: (t[1].seed, -t[0].fusions))

    def run_all(self, todo: list, run_status_path: Path, log) -> tuple[int, int]:
        """Run every ``(variant, job)`` of ``todo``; returns ``(done, failed)`` counts. A failed job is
        recorded and the others go on; ``BaseException`` (a kill, Ctrl-C) stops the running jobs, marks
        them failed and is raised again."""
        queue = self.order(todo)
        running: list = []
        done = failed = 0
        said = time.monotonic()
        try:
            while queue or running:
                if time.monotonic() - said >= PROGRESS_EVERY_S:  # the jobs' own lines may be out of view
                    said = time.monotonic()
                    say_progress(run_status_path.parent, self.slots, log)
                free = self.slots - len(running)
                if queue and free > 0:
                    batch, queue = queue[:free], queue[free:]
                    for v, job in batch:
                        log(_started(v, job))
                    running += list(zip(self.submit_many(batch), [job for _v, job in batch]))
                time.sleep(POLL_S)
                for handle, job in list(running):
                    if not self.done(handle):
                        continue
                    running.remove((handle, job))
                    if self.result(handle, job):
                        done += 1
                    else:
                        failed += 1
        except BaseException as err:
            for handle, _job in running:
                self.cancel(handle)
            for handle, _job in running:
                self.wait_stopped(handle)
            record_stop([job.folder for _h, job in running], run_status_path, err)
            raise
        return done, failed


# ---- local: this process, or a pool of job processes --------------------------------------------
class SerialExecutor(Executor):
    """``local`` with one job at a time: each job trains in this process (and under torchrun on every
    rank), ``on_epoch_end(job, epoch)`` called after each epoch."""

    name = "local"

    def __init__(self, data, ctx: DistContext, on_epoch_end=None, log=print):
        super().__init__(1)
        self.data, self.ctx, self.on_epoch_end, self.log = data, ctx, on_epoch_end, log

    def describe(self) -> str:
        return "local (one job at a time, in this process)"

    def submit(self, v, job: Job) -> bool:
        """Train ``job`` here and now; returns True when it finished. Records any ``Exception`` in the
        job folder (raised again under torchrun, where the other ranks cannot go on alone)."""
        ctx = self.ctx
        if ctx.main:
            self.log(f"{v.name} (fusions {v.fusions}, {v.bits}) seed {job.seed}:")
        try:
            train_job(job, self.data, ctx, resume=True, on_epoch_end=self.on_epoch_end, log=self.log)
            return True
        except Exception as err:  # any failure of one job is recorded, the others go on
            if ctx.main:
                record_failure(job, err, self.log)
            if ctx.world > 1:
                raise
            return False
        finally:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def done(self, handle) -> bool:
        return True

    def cancel(self, handle) -> None:
        return None

    def run_all(self, todo: list, run_status_path: Path, log) -> tuple[int, int]:
        done = failed = 0
        for i, (v, job) in enumerate(todo):  # in the given order: every rank must agree on it
            if i and self.ctx.main:
                say_progress(run_status_path.parent, 1, log)
            try:
                ok = self.submit(v, job)
            except BaseException as err:
                if self.ctx.main and not isinstance(err, Exception):
                    record_stop([job.folder], run_status_path, err)
                raise
            done, failed = done + ok, failed + (not ok)
        return done, failed


def _job_process(job: Job, data) -> None:
    """A job in its own process (``parallel_jobs``): dies with the runner, records its own failure."""
    set_parent_death_signal()
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the runner, which stops the jobs
    ctx = DistContext(torch.device("cpu"))
    log = _flushed_print
    try:
        train_job(job, data, ctx, resume=True, log=log)
    except Exception as err:
        record_failure(job, err, log)
        sys.exit(1)
    except KeyboardInterrupt:
        mark_job(job.folder, state="stopped", error=STOPPED)
        sys.exit(1)


def _flushed_print(text: str) -> None:
    print(text, flush=True)


def _raise_interrupt(_signum, _frame):
    raise KeyboardInterrupt


class ProcessPoolExecutor(Executor):
    """``local`` with ``slots`` > 1 on a CPU: each job in a spawned process of its own (no state shared
    with the runner), which ends with the runner."""

    name = "local"

    def __init__(self, data, slots: int):
        super().__init__(slots)
        self.data = data
        self.mp = multiprocessing.get_context("spawn")

    def describe(self) -> str:
        return f"local (a pool of job processes, {self.slots} at a time)"

    def submit(self, v, job: Job):
        proc = self.mp.Process(target=_job_process, args=(job, self.data), name=f"{v.name}-seed{job.seed}")
        proc.start()
        return proc

    def done(self, handle) -> bool:
        if handle.is_alive():
            return False
        handle.join()
        return True

    def cancel(self, handle) -> None:
        handle.terminate()

    def wait_stopped(self, handle) -> None:
        handle.join(timeout=30)
        if handle.is_alive():
            handle.kill()
            handle.join()

    def ended_well(self, handle) -> bool:
        return handle.exitcode == 0

    def end_reason(self, handle) -> str:
        return f"job process ended with exit code {handle.exitcode}"


# ---- submitit ------------------------------------------------------------------------------------
class SubmititLocalExecutor(Executor):
    """``submitit-local``: each job its own process, started by ``submitit.LocalExecutor`` with its files
    in ``out/submitit/``; ``slots`` jobs at a time (the recipe's ``parallel_jobs``)."""

    name = "submitit-local"

    def __init__(self, out: Path, slots: int, job_fn: Callable):
        super().__init__(slots)
        self.job_fn = job_fn
        self.out = Path(out)
        self.folder = self.out / SUBMITIT_FOLDER
        self._ex = None

    @property
    def ex(self):
        """submitit's ``LocalExecutor``, made (with its folder) when the first job is submitted."""
        if self._ex is None:
            import submitit

            self._ex = submitit.LocalExecutor(folder=self.folder)
            self._ex.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
        return self._ex

    def describe(self) -> str:
        return f"submitit-local (one process per job, {self.slots} at a time; logs in {self.folder})"

    def submit(self, v, job: Job):
        return self.ex.submit(self.job_fn, str(self.out), v.name, job.seed, True, os.getpid(), job.threads)

    def done(self, handle) -> bool:
        return handle.done()

    def cancel(self, handle) -> None:
        handle.cancel()  # SIGINT to submitit's controller, which stops the job (SIGKILL after a second)

    def wait_stopped(self, handle) -> None:
        deadline = time.monotonic() + 60
        while not handle.done() and time.monotonic() < deadline:
            time.sleep(POLL_S)

    def end_reason(self, handle) -> str:
        return f"job process ended before it finished (submitit state {handle.state}); see {handle.paths.stdout}"


class SlurmArrayExecutor(Executor):
    """``slurm``: every job of the run in ONE array job (``map_array``), at most ``array_parallelism``
    tasks at once, with the options of ``cluster`` (``--slurm KEY=VALUE`` over the recipe's ``cluster:``).
    Raises ``UserInputError`` where submitit finds no SLURM (no ``srun``) on this machine."""

    name = "slurm"

    def __init__(self, out: Path, cluster: dict, jobs: int, job_fn: Callable):
        import submitit

        super().__init__(max(1, jobs))  # one batch: one array
        self.job_fn = job_fn
        self.out = Path(out)
        self.folder = self.out / SUBMITIT_FOLDER
        self.cluster = dict(cluster)
        if submitit.SlurmExecutor.affinity() <= 0:  # submitit's own test: srun on the PATH
            raise UserInputError("--executor slurm: no SLURM here (srun not found); run on a login node of "
                                 "the cluster, or write the script with --dry-run")
        self._ex = None

    @property
    def ex(self):
        """submitit's ``AutoExecutor`` for SLURM, made (with its folder) when the array is submitted."""
        if self._ex is None:
            import submitit

            self._ex = submitit.AutoExecutor(folder=self.folder, cluster="slurm")
            self._ex.update_parameters(**slurm_parameters(self.cluster, self.out.name, prefix="slurm_"))
        return self._ex

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in sorted(self.cluster.items())) or "the cluster's defaults"
        return f"slurm (one array job, {opts}; logs in {self.folder})"

    def submit(self, v, job: Job):
        return self.submit_many([(v, job)])[0]

    def submit_many(self, batch: list) -> list:
        n = len(batch)
        # ``job.threads``: --cpu-threads (or the recipe's cpu_threads) as asked; None = every core of the task
        return self.ex.map_array(self.job_fn, [str(self.out)] * n, [v.name for v, _j in batch],
                                 [job.seed for _v, job in batch], [False] * n, [None] * n,
                                 [job.threads for _v, job in batch])

    def done(self, handle) -> bool:
        return handle.done()

    def cancel(self, handle) -> None:
        handle.cancel(check=False)

    def end_reason(self, handle) -> str:
        return f"the SLURM task ended before it finished (state {handle.state}); see {handle.paths.stdout}"


def slurm_parameters(cluster: dict, run_name: str, prefix: str = "") -> dict:
    """submitit's SLURM parameters for ``cluster`` (``recipes.CLUSTER_KEYS``; ``time`` in minutes):
    ``prefix`` "slurm_" for the ``AutoExecutor``, "" for ``SlurmExecutor`` / the sbatch text. The job is
    named ``ablate-<run name>``; ``array_parallelism`` defaults to 256 (submitit's)."""
    params = {"job_name": f"ablate-{run_name}"}
    for key, value in cluster.items():
        params[key] = value
    if not prefix:
        return params
    return {("name" if key == "job_name" else prefix + key): value for key, value in params.items()}


def make_executor(spec: ExecutorSpec, out: Path, data, ctx: DistContext, slots: int, jobs: int,
                  on_epoch_end=None, log=print) -> Executor:
    """The executor ``spec`` names for a run into ``out``: ``slots`` jobs at once (``local`` and
    ``submitit-local``), ``jobs`` to run (``slurm``: the array's size). Raises ``UserInputError`` for an
    executor other than ``local`` under torchrun, or ``on_epoch_end`` (an in-process hook) with another;
    ``ValueError`` for a submitit executor without ``spec.job``."""
    if spec.name != "local" and ctx.world > 1:
        raise UserInputError(f"--executor {spec.name}: under torchrun the ranks train the jobs themselves; "
                             "use --executor local")
    if spec.name != "local" and on_epoch_end is not None:
        raise UserInputError(f"--executor {spec.name}: an on_epoch_end hook needs --executor local")
    if spec.name != "local" and spec.job is None:
        raise ValueError(f"executor {spec.name} needs the spec's job function (slurm.executor_spec makes one)")
    if spec.name == "submitit-local":
        return SubmititLocalExecutor(out, slots, spec.job)
    if spec.name == "slurm":
        return SlurmArrayExecutor(out, spec.cluster, jobs, spec.job)
    if slots > 1:
        return ProcessPoolExecutor(data, slots)
    return SerialExecutor(data, ctx, on_epoch_end, log)


__all__ = ["EXECUTORS", "Executor", "ExecutorSpec", "ProcessPoolExecutor", "SerialExecutor", "SlurmArrayExecutor",
           "STOPPED", "SubmititLocalExecutor", "check_executor_name", "error_line", "make_executor", "mark_job",
           "record_failure", "record_stop", "slurm_parameters"]
