"""Pieces shared by several heads: the final prediction conv and the V2 concatenation of all branches."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def final_conv(in_ch: int, out_ch: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=kernel, stride=1, padding=1 if kernel == 3 else 0)


def concat_branches(feats: list[torch.Tensor], align_corners: bool) -> torch.Tensor:
    """Bilinear-upsample every branch to branch 0's size and concatenate: ``(N, sum C_k, H/4, W/4)``."""
    h, w = feats[0].shape[-2:]
    ups = [feats[0]] + [F.interpolate(f, size=(h, w), mode="bilinear", align_corners=align_corners) for f in feats[1:]]
    return torch.cat(ups, dim=1)
