"""Heads on top of the final HRNet branches, kept apart from the backbone.

Each head's children carry the official state_dict names; ``HRNet`` registers them at the top level
so official checkpoints load with ``strict=True``.

- ``V1Head`` (HRNetV1, pose): ``final_layer`` on the 1/4 branch (``pose_hrnet.py``).
- ``V2Head`` (HRNetV2, segmentation / landmarks): upsample all branches to 1/4, concat, 1x1 conv + BN
  + ReLU, final conv (``seg_hrnet.py`` ``last_layer``; face ``hrnet.py`` ``head``).
- ``V2pHead`` (HRNetV2p, detection): V2 concat, 1x1 reduction, average-pooled pyramid, 3x3 conv per
  level (``HRFPN`` of HRNet/HRNet-Object-Detection; names ``reduction_conv.conv``, ``fpn_convs.i.conv``).
- ``ClsHead`` (HRNet-W*-C): ``incre_modules``, ``downsamp_modules``, ``final_layer``, ``classifier``
  (``cls_hrnet.py``).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import bn, make_layer

CLS_FEATURES = 2048


def _final_conv(in_ch: int, out_ch: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=kernel, stride=1, padding=1 if kernel == 3 else 0)


def concat_branches(feats: list[torch.Tensor], align_corners: bool) -> torch.Tensor:
    """Bilinear-upsample every branch to branch 0's size and concatenate: ``(N, sum C_k, H/4, W/4)``."""
    h, w = feats[0].shape[-2:]
    ups = [feats[0]] + [F.interpolate(f, size=(h, w), mode="bilinear", align_corners=align_corners) for f in feats[1:]]
    return torch.cat(ups, dim=1)


class V1Head(nn.Module):
    """``(N, C_0, H/4, W/4)`` of branch 0 -> heatmaps ``(N, outputs, H/4, W/4)``."""

    def __init__(self, in_channels: tuple[int, ...], outputs: int, final_conv_kernel: int):
        super().__init__()
        self.final_layer = _final_conv(in_channels[0], outputs, final_conv_kernel)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.final_layer(feats[0])


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
                _final_conv(total, outputs, final_conv_kernel),
            ),
        )

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return getattr(self, self.attr)(concat_branches(feats, self.align_corners))


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


def cls_head_channels(branches: int) -> tuple[int, ...]:
    """Bottleneck planes of the incremental modules: 32, 64, 128, 256 for four branches (official)."""
    return tuple(32 * 2**i for i in range(branches))


class ClsHead(nn.Module):
    """All branches -> logits ``(N, outputs)``: incremental bottlenecks, strided merges, 2048-d, linear."""

    def __init__(self, in_channels: tuple[int, ...], outputs: int):
        super().__init__()
        head_ch = cls_head_channels(len(in_channels))
        self.incre_modules = nn.ModuleList(make_layer("BOTTLENECK", c, h, 1) for c, h in zip(in_channels, head_ch))
        self.downsamp_modules = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(head_ch[i] * 4, head_ch[i + 1] * 4, kernel_size=3, stride=2, padding=1),
                bn(head_ch[i + 1] * 4),
                nn.ReLU(inplace=True),
            )
            for i in range(len(in_channels) - 1)
        )
        self.final_layer = nn.Sequential(
            nn.Conv2d(head_ch[-1] * 4, CLS_FEATURES, kernel_size=1, stride=1, padding=0),
            bn(CLS_FEATURES),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(CLS_FEATURES, outputs)

    def incre_features(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Branch k through its incremental bottleneck: ``(N, 128 * 2**k, H/4/2**k, W/4/2**k)`` (timm's
        default ``features_only`` maps)."""
        return [incre(f) for incre, f in zip(self.incre_modules, feats)]

    def pre_pool(self, incre: list[torch.Tensor]) -> torch.Tensor:
        """Strided merges of the incremental features, then ``final_layer``: ``(N, 2048, H/32, W/32)``
        (timm's ``forward_features``; 2048x7x7 at 224x224)."""
        y = incre[0]
        for i, down in enumerate(self.downsamp_modules):
            y = incre[i + 1] + down(y)
        return self.final_layer(y)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        y = self.pre_pool(self.incre_features(feats))
        return self.classifier(F.adaptive_avg_pool2d(y, 1).flatten(1))
