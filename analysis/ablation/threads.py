"""How many CPU threads one training job uses, and the check that every one of them flushes denormals.

Default: all cores for one job; with ``parallel_jobs`` jobs at once the cores are shared out
(``cores // jobs``, at least one each). ``--cpu-threads N`` (or a recipe's ``cpu_threads``) sets it.
"Cores" are the ones this process may run on (``os.sched_getaffinity``: a SLURM task's allocation,
a ``taskset``), not the machine's.

Measured on the 2-core development machine (``bench/job_threads.py``; figures in the README, "One job on
every core"): the ``cpu`` recipe's 8-fusion job trains 1.09-1.29x faster with two threads than with one,
and 2 gloo ranks of one thread each (``torchrun --nproc_per_node 2``, half the batch each) are slower
than either threads setting. Threads are kept as the default: they need no second process, and the gain
is what this small model's step gives (1.43x from one thread to two, data loading aside), not a limit
of the flush below.
"""

from __future__ import annotations

import os

import torch

SUBNORMAL = 1e-40  # below float32's smallest normal number (1.2e-38)
# Elements per thread of the check: above ATen's grain size (32768), so every thread gets a part.
CHECK_ELEMENTS_PER_THREAD = 1 << 17


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def job_threads(requested: int | None, jobs_at_once: int, cores: int | None = None) -> int:
    """Torch intra-op threads for each job: ``requested`` (``--cpu-threads``, a recipe's ``cpu_threads``)
    when given, else ``cores`` (default ``available_cores()``) shared out among ``jobs_at_once``
    jobs, at least one each."""
    if requested:
        return int(requested)
    cores = available_cores() if cores is None else cores
    return max(1, cores // max(1, jobs_at_once))


def threads_line(threads: int, jobs_at_once: int, requested: int | None, cores: int | None = None) -> str:
    """The run's first line says it: ``2 CPU threads per job (all 2 cores for one job)``."""
    cores = available_cores() if cores is None else cores
    per = f"{threads} CPU thread{'s' if threads != 1 else ''} per job"
    if requested:
        return f"{per} (--cpu-threads / recipe cpu_threads; {cores} cores)"
    if jobs_at_once <= 1:
        return f"{per} (all {cores} cores for one job)"
    return f"{per} ({cores} cores shared by {jobs_at_once} jobs at once)"


def denormals_flushed_on_every_thread() -> bool:
    """Whether every torch intra-op thread flushes subnormal floats to zero now: an elementwise op on a
    tensor of subnormals large enough to be split over all ``torch.get_num_threads()`` threads leaves
    no nonzero element. (``torch.set_flush_denormal`` sets the state of the intra-op pool, not only
    of the calling thread; this check is what keeps it so.)"""
    n = CHECK_ELEMENTS_PER_THREAD * max(1, torch.get_num_threads())
    out = torch.full((n,), SUBNORMAL, dtype=torch.float32).mul_(0.5)
    return int(torch.count_nonzero(out)) == 0


__all__ = ["available_cores", "denormals_flushed_on_every_thread", "job_threads", "threads_line"]
