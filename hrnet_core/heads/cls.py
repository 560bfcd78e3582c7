"""Classification head (HRNet-W*-C): ``incre_modules``, ``downsamp_modules``, ``final_layer``, ``classifier``
(``cls_hrnet.py``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import bn, make_layer
from .registry import HeadSpec, register

CLS_FEATURES = 2048


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


def build(family: str, head, in_channels: tuple[int, ...], align_corners: bool) -> nn.Module:
    return ClsHead(in_channels, head.outputs)


register(HeadSpec("cls", build, fields=("outputs",),
                  state_dict_names=("incre_modules", "downsamp_modules", "final_layer", "classifier")))
