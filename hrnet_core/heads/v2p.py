"""HRNetV2p head (detection): V2 concat, 1x1 reduction, average-pooled pyramid, 3x3 conv per level (``HRFPN`` of
HRNet/HRNet-Object-Detection; names ``reduction_conv.conv``, ``fpn_convs.i.conv``)."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .common import concat_branches
from .registry import HeadSpec, register


class V2pHead(nn.Module):
    """All branches -> ``levels`` maps ``(N, channels, H/4/2**l, W/4/2**l)``, l = 0..levels-1."""

    def __init__(self, in_channels: tuple[int, ...], channels: int, levels: int, align_corners: bool):
        super().__init__()
        self.levels = levels
        self.align_corners = align_corners
        self.reduction_conv = nn.Sequential(OrderedDict(conv=nn.Conv2d(sum(in_channels), channels, kernel_size=1)))
        self.fpn_convs = nn.ModuleList(
            nn.Sequential(OrderedDict(conv=nn.Conv2d(channels, channels, kernel_size=3, padding=1))) for _ in range(levels)
        )

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        out = self.reduction_conv(concat_branches(feats, self.align_corners))
        pyramid = [out] + [F.avg_pool2d(out, kernel_size=2**i, stride=2**i) for i in range(1, self.levels)]
        return [conv(p) for conv, p in zip(self.fpn_convs, pyramid)]


def build(family: str, head, in_channels: tuple[int, ...], align_corners: bool) -> nn.Module:
    return V2pHead(in_channels, head.channels, head.levels, align_corners)


register(HeadSpec("v2p", build, fields=("channels", "levels"), state_dict_names=("reduction_conv", "fpn_convs")))
