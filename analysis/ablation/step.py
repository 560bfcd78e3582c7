"""One optimisation step of the top-down pose trainer and its loss (official ``JointsMSELoss``);
shared by the trainer, the precision probe and the throughput bench."""

from __future__ import annotations

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
