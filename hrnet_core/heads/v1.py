"""HRNetV1 head (pose): ``final_layer`` on the 1/4 branch (``lib/models/pose_hrnet.py``)."""

from __future__ import annotations

import torch
from torch import nn

from .common import final_conv
from .registry import HeadSpec, register


class V1Head(nn.Module):
    """``(N, C_0, H/4, W/4)`` of branch 0 -> heatmaps ``(N, outputs, H/4, W/4)``."""

    def __init__(self, in_channels: tuple[int, ...], outputs: int, final_conv_kernel: int):
        super().__init__()
        self.final_layer = final_conv(in_channels[0], outputs, final_conv_kernel)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.final_layer(feats[0])


def build(family: str, head, in_channels: tuple[int, ...], align_corners: bool) -> nn.Module:
    return V1Head(in_channels, head.outputs, head.final_conv_kernel)


register(HeadSpec("v1", build, fields=("outputs", "final_conv_kernel"), state_dict_names=("final_layer",),
                  reads_branch0=True))
