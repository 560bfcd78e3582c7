"""Exact tensor shapes of a config's model without computing anything: the model runs on PyTorch's
meta device, which propagates shapes but allocates no data."""

from __future__ import annotations

import torch

from .config import HRNetConfig
from .model import build_on_meta


def branch_sizes(cfg: HRNetConfig, input_hw: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """``(H, W)`` of branch k (1/4 * 2**-k of the input) at ``input_hw`` (default: the config's), for every
    branch of the last stage: each stride-2 3x3 conv (padding 1) maps a side s to ceil(s / 2). Pure arithmetic."""
    h, w = input_hw or cfg.input_hw
    h, w = -(-h // 4), -(-w // 4)
    sizes = [(h, w)]
    for _ in range(cfg.num_branches - 1):
        h, w = -(-h // 2), -(-w // 2)
        sizes.append((h, w))
    return sizes


def _meta_run(cfg: HRNetConfig, input_hw: tuple[int, int] | None, batch: int, intermediates: bool):
    h, w = input_hw or cfg.input_hw
    model = build_on_meta(cfg).eval()
    x = torch.empty(batch, 3, h, w, device="meta")
    with torch.no_grad():
        return model.forward_intermediates(x) if intermediates else model(x)


def output_shapes(cfg: HRNetConfig, input_hw: tuple[int, int] | None = None, batch: int = 1) -> list[tuple[int, ...]]:
    """Shapes of the head output(s) for input ``(batch, 3, H, W)``: one entry, or one per V2p level."""
    out = _meta_run(cfg, input_hw, batch, intermediates=False)
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [tuple(o.shape) for o in outs]


def intermediate_shapes(
    cfg: HRNetConfig, input_hw: tuple[int, int] | None = None, batch: int = 1
) -> dict[str, tuple[int, ...]]:
    """Shape of every ``forward_intermediates`` entry (``stem``, ``layer1``, ``stageS.moduleM.branchB``)."""
    return {k: tuple(v.shape) for k, v in _meta_run(cfg, input_hw, batch, intermediates=True).items()}
