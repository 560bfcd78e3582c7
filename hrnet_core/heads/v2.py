"""HRNetV2 head (segmentation / landmarks): upsample all branches to 1/4, concat, 1x1 conv + BN + ReLU, final
conv (``seg_hrnet.py`` ``last_layer``; face ``hrnet.py`` ``head``)."""

from __future__ import annotations

import torch
from torch import nn

from ..blocks import bn
from .common import concat_branches, final_conv
from .registry import HeadSpec, register


class V2Head(nn.Module):
    """All branches -> ``(N, outputs, H/4, W/4)`` (class logits or landmark heatmaps).

    ``attr`` is the official attribute name: ``last_layer`` (seg) or ``head`` (face).
    """

    def __init__(self, in_channels: tuple[int, ...], outputs: int, final_conv_kernel: int, align_corners: bool, attr: str):
        super().__init__()
        total = sum(in_channels)
        self.attr = attr
        self.align_corners = align_corners
        self.add_module(
            attr,
            nn.Sequential(
                nn.Conv2d(total, total, kernel_size=1, stride=1, padding=0),
                bn(total),
                nn.ReLU(inplace=True),
                final_conv(total, outputs, final_conv_kernel),
            ),
        )

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return getattr(self, self.attr)(concat_branches(feats, self.align_corners))


def build(family: str, head, in_channels: tuple[int, ...], align_corners: bool) -> nn.Module:
    return V2Head(in_channels, head.outputs, head.final_conv_kernel, align_corners, "last_layer" if family == "seg" else "head")


register(HeadSpec("v2", build, fields=("outputs", "final_conv_kernel"), state_dict_names=("last_layer", "head")))
