"""One optimisation step of the top-down pose trainer and its loss (official ``JointsMSELoss``);
shared by the trainer, the precision probe and the throughput bench."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def joints_mse(out: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Official ``JointsMSELoss`` with target weights: 0.5 * mean of ((pred - gt) * w)**2."""
    w = weight.unsqueeze(-1)  # (N, J, 1, 1)
    return 0.5 * ((out - target) * w).pow(2).mean()


def train_step(net: nn.Module, optimizer, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
               amp: bool) -> torch.Tensor:
    """One optimisation step on a batch ``x`` ``(N, 3, H, W)`` against heatmaps ``(N, J, H/4, W/4)``;
    bf16 autocast when ``amp``. Returns the (detached-able) loss."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        out = net(x)
    loss = joints_mse(out.float(), target, weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def flushing_denormals() -> bool:
    """Whether this thread flushes subnormal floats to zero (FTZ/DAZ); torch has no getter."""
    return float(torch.tensor([1e-40], dtype=torch.float32).mul(1.0).item()) == 0.0


@contextlib.contextmanager
def cpu_training_state(threads: int | None = None) -> Iterator[None]:
    """Subnormal floats flushed to zero and ``threads`` torch threads (``None``: unchanged) inside; the
    caller's state after. Flushing is process-global processor state that other code (hypothesis, numpy
    users) rightly refuses to run under, so a training run in the app's or a test's process gives it back.

    Why flush: the official N(0, 0.001) init drives gradients and Adam's moments into subnormal floats,
    which run orders of magnitude slower on CPUs; flushing them to zero changes nothing measurable."""
    was_flushing, was_threads = flushing_denormals(), torch.get_num_threads()
    torch.set_flush_denormal(True)
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if not was_flushing:
            torch.set_flush_denormal(False)
        if threads and torch.get_num_threads() != was_threads:
            torch.set_num_threads(was_threads)
