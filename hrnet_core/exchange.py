"""The one HighResolutionModule (exchange block) and the transitions that open new branches.

Official source: ``HighResolutionModule`` and ``_make_transition_layer`` in ``lib/models/pose_hrnet.py``
(and their copies in the cls/seg/face repos); paper section 3 ("Repeated multi-scale fusion").
State-dict names are the official ones; the official ``None`` placeholders are ``nn.Identity``
(which has no keys), and the input channel list is never mutated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import BLOCKS, bn, conv3x3, make_layer


def upsample_to(y: torch.Tensor, factor: int, target_hw: tuple[int, int], mode: str, align_corners: bool) -> torch.Tensor:
    """Bring ``y`` ``(N, C, h, w)`` up to a higher-resolution branch: ``(N, C, H, W)`` with ``(H, W) = target_hw``.

    ``nearest``: scale factor ``factor`` (official pose/cls ``nn.Upsample``); ``bilinear``: to
    ``target_hw`` (official seg/face ``F.interpolate``).
    """
    if mode == "nearest":
        return F.interpolate(y, scale_factor=float(factor), mode="nearest")
    return F.interpolate(y, size=target_hw, mode="bilinear", align_corners=align_corners)


def _downsample_chain(in_ch: int, out_ch: int, steps: int) -> nn.Sequential:
    """``steps`` strided 3x3 convs (1/2 each); only the last changes channels and has no ReLU."""
    convs = []
    for k in range(steps):
        if k == steps - 1:
            convs.append(nn.Sequential(conv3x3(in_ch, out_ch, 2), bn(out_ch)))
        else:
            convs.append(nn.Sequential(conv3x3(in_ch, in_ch, 2), bn(in_ch), nn.ReLU(inplace=False)))
    return nn.Sequential(*convs)


class HighResolutionModule(nn.Module):
    """One exchange block: residual units per branch, then (optionally) a fusion across branches.

    Input and output: a list of ``(N, C_k, H/4/2**k, W/4/2**k)`` tensors, one per branch k.
    With ``fuse=False`` no fuse layers are built and each branch is passed on unexchanged, so branch
    k's output depends on branch k's input only. ``fuse_outputs`` < branches fuses into the first
    ``fuse_outputs`` branches only (the official pose model's last module: ``multi_scale_output=False``).
    """

    def __init__(
        self,
        block: str,
        in_channels: tuple[int, ...],
        blocks: tuple[int, ...],
        channels: tuple[int, ...],
        fuse: bool,
        fuse_outputs: int,
        upsample_mode: str,
        align_corners: bool,
    ):
        super().__init__()
        if not (len(in_channels) == len(blocks) == len(channels)):
            raise ValueError("in_channels, blocks and channels need one entry per branch")
        expansion = BLOCKS[block].expansion
        self.out_channels = tuple(c * expansion for c in channels)
        self.fuse = fuse
        self.upsample_mode = upsample_mode
        self.align_corners = align_corners
        self.branches = nn.ModuleList(
            make_layer(block, in_ch, ch, n) for in_ch, ch, n in zip(in_channels, channels, blocks)
        )
        self.fuse_layers = nn.ModuleList()
        if fuse and len(channels) > 1:
            out = self.out_channels
            for i in range(fuse_outputs):
                row = nn.ModuleList()
                for j in range(len(out)):
                    if j > i:
                        row.append(nn.Sequential(nn.Conv2d(out[j], out[i], 1, bias=False), bn(out[i])))
                    elif j == i:
                        row.append(nn.Identity())
                    else:
                        row.append(_downsample_chain(out[j], out[i], i - j))
                self.fuse_layers.append(row)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.fuse_branches([branch(x) for branch, x in zip(self.branches, xs)])

    def fuse_branches(self, ys: list[torch.Tensor]) -> list[torch.Tensor]:
        """The fusion (exchange unit) on the branch outputs ``ys``; ``ys`` itself when fusion is off."""
        if len(self.fuse_layers) == 0:
            return ys
        fused = []
        for i, row in enumerate(self.fuse_layers):
            target = ys[i].shape[-2:]
            acc = None
            for j, layer in enumerate(row):
                y = layer(ys[j])
                if j > i:
                    y = upsample_to(y, 2 ** (j - i), target, self.upsample_mode, self.align_corners)
                acc = y if acc is None else acc + y
            fused.append(self.relu(acc))
        return fused


class Transition(nn.ModuleList):
    """Adapts the previous stage's branches to the next stage (official ``_make_transition_layer``).

    Existing branches get a 3x3 conv only when their channels change (else ``nn.Identity``); each new
    branch is opened from the lowest-resolution previous branch by strided 3x3 convs.
    """

    def __init__(self, pre_channels: tuple[int, ...], cur_channels: tuple[int, ...]):
        layers = []
        n_pre = len(pre_channels)
        for i, cur in enumerate(cur_channels):
            if i < n_pre:
                if cur != pre_channels[i]:
                    layers.append(nn.Sequential(conv3x3(pre_channels[i], cur), bn(cur), nn.ReLU(inplace=True)))
                else:
                    layers.append(nn.Identity())
            else:
                convs = []
                for j in range(i + 1 - n_pre):
                    out = cur if j == i - n_pre else pre_channels[-1]
                    convs.append(nn.Sequential(conv3x3(pre_channels[-1], out, 2), bn(out), nn.ReLU(inplace=True)))
                layers.append(nn.Sequential(*convs))
        super().__init__(layers)
        self.n_pre = n_pre

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:  # type: ignore[override]
        return [layer(xs[i] if i < self.n_pre else xs[-1]) for i, layer in enumerate(self)]
