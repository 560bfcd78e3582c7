"""One job on every core: the thread count of a job, denormals flushed on every intra-op thread, and the
precision probe on a CPU without bf16 instructions (simulated)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from analysis.ablation import precision as precision_mod
from analysis.ablation.precision import choose_precision
from analysis.ablation.recipes import load_recipe
from analysis.ablation.step import cpu_training_state, flushing_denormals
from analysis.ablation.threads import denormals_flushed_on_every_thread, job_threads, threads_line


def test_one_job_gets_every_core_and_parallel_jobs_share_them():
    assert job_threads(None, 1, cores=2) == 2
    assert job_threads(None, 2, cores=8) == 4
    assert job_threads(None, 3, cores=2) == 1  # never below one
    assert job_threads(3, 1, cores=2) == 3  # --cpu-threads wins
    assert threads_line(2, 1, None, cores=2) == "2 CPU threads per job (all 2 cores for one job)"
    assert threads_line(1, 3, None, cores=2) == "1 CPU thread per job (2 cores shared by 3 jobs at once)"
    cpu = load_recipe("cpu")
    assert cpu.cpu_threads is None and job_threads(cpu.cpu_threads, 1, cores=2) == 2


@pytest.fixture
def two_threads():
    was = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(was)


def test_training_flushes_denormals_on_every_intra_op_thread(two_threads):
    assert not flushing_denormals(), "the test process itself must not flush"
    assert not denormals_flushed_on_every_thread()  # the check sees subnormals where nothing flushes
    with cpu_training_state(2):
        assert torch.get_num_threads() == 2
        assert denormals_flushed_on_every_thread()
    assert not denormals_flushed_on_every_thread()  # given back


def test_probe_without_bf16_instructions_trains_in_float32_and_says_why(monkeypatch):
    monkeypatch.setattr(precision_mod, "cpu_bf16_flags", lambda: ())

    def never(*_a, **_k):
        raise AssertionError("nothing to measure without bf16 instructions")

    monkeypatch.setattr(precision_mod, "steps_per_s", never)
    model = torch.nn.Conv2d(3, 17, 3, stride=4, padding=1)
    batch = (torch.randn(2, 3, 32, 32), torch.rand(2, 17, 8, 8), torch.ones(2, 17, 1))
    p = choose_precision(torch.device("cpu"), replace(load_recipe("cpu"), cpu_precision="auto"), model, batch)
    assert (p.amp, p.channels_last, p.measured) == (False, False, None)
    assert p.label == "float32 on cpu" and p.reason == "no bf16 instructions on this CPU"


def test_a_loader_worker_only_where_a_core_is_free(monkeypatch):
    from analysis.ablation import recipes

    monkeypatch.setattr(recipes, "available_cores", lambda: 2)
    cpu = load_recipe("cpu")
    assert cpu.workers is None
    assert cpu.resolve_workers("cpu", threads=1) == 1  # the second core loads
    assert cpu.resolve_workers("cpu", threads=2) == 0  # every core trains: loading in the training process
    assert replace(cpu, workers=3).resolve_workers("cpu", threads=2) == 3  # the recipe's own figure wins


def test_slurm_tasks_get_only_the_asked_threads(tmp_path, monkeypatch):
    """An explicit ``--cpu-threads`` travels to every SLURM array task (FolderJob's ``threads``); without one a
    task gets None: every core of its allocation, not a count from the login node."""
    import inspect
    from types import SimpleNamespace

    import submitit

    from analysis.ablation.executors import SlurmArrayExecutor
    from analysis.ablation.slurm import FolderJob

    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", staticmethod(lambda: 1))  # "srun is here"
    calls = []

    class FakeArray:
        def map_array(self, fn, *columns):
            calls.append(columns)
            return [f"task{i}" for i in range(len(columns[0]))]

    monkeypatch.setattr(SlurmArrayExecutor, "ex", property(lambda self: FakeArray()))
    ex = SlurmArrayExecutor(tmp_path, {}, 2, job_fn=FolderJob())
    jobs = [(SimpleNamespace(name="all"), SimpleNamespace(seed=0, threads=3)),
            (SimpleNamespace(name="final_only"), SimpleNamespace(seed=1, threads=None))]
    assert ex.submit_many(jobs) == ["task0", "task1"]
    names = list(inspect.signature(FolderJob.__call__).parameters)[1:]
    args = dict(zip(names, calls[0]))
    assert args["threads"] == [3, None] and args["variant"] == ["all", "final_only"] and args["local"] == [False] * 2
