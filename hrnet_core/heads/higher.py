"""The HigherHRNet head (Cheng et al. 2020, "HigherHRNet: Scale-Aware Representation Learning for Bottom-Up
Human Pose Estimation", section 3), as in ``lib/models/pose_higher_hrnet.py`` of
HRNet/HigherHRNet-Human-Pose-Estimation.

On the 1/4 branch only (the backbone's last module fuses into branch 0 alone) it predicts heatmaps and
associative-embedding tag maps with ``final_layers.0``; then each deconvolution stage ``deconv_layers.i``
takes the features, concatenated with the previous prediction when ``cat_output[i]``, through a stride-2
``ConvTranspose2d`` + BN + ReLU and ``deconv_blocks`` BasicBlocks, and ``final_layers.i+1`` predicts again
at twice the resolution. Official state_dict names and order: ``final_layers`` before ``deconv_layers``;
``deconv_layers.i.0.{0,1}`` the transposed conv and its BN, ``deconv_layers.i.{1..B}.0`` the BasicBlocks.
"""

from __future__ import annotations

import torch
from torch import nn

from ..blocks import BasicBlock, bn
from .registry import HeadSpec, register

# ConvTranspose2d (padding, output_padding) per kernel size so that stride 2 doubles the side exactly
# (official ``_get_deconv_cfg``).
DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}


def deconv_in_channels(in_channel0: int, prediction_channels: tuple[int, ...], deconv_channels: tuple[int, ...],
                       cat_output: tuple[bool, ...]) -> tuple[int, ...]:
    """Input channels of each deconvolution stage: the previous features (branch 0, then the previous stage's
    ``deconv_channels``), plus the previous prediction's channels where ``cat_output`` concatenates it."""
    out, ch = [], in_channel0
    for i, cat in enumerate(cat_output):
        out.append(ch + (prediction_channels[i] if cat else 0))
        ch = deconv_channels[i]
    return tuple(out)


def _prediction(in_ch: int, out_ch: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=kernel, stride=1, padding=1 if kernel == 3 else 0)


def _deconv_stage(in_ch: int, out_ch: int, kernel: int, blocks: int) -> nn.Sequential:
    padding, output_padding = DECONV_PADDING[kernel]
    up = nn.Sequential(
        nn.ConvTranspose2d(in_ch, out_ch, kernel_size=kernel, stride=2, padding=padding,
                           output_padding=output_padding, bias=False),
        bn(out_ch),
        nn.ReLU(inplace=True),
    )
    # Each BasicBlock sits in its own one-element Sequential, as the official code wraps it (key ``.0.``).
    return nn.Sequential(up, *(nn.Sequential(BasicBlock(out_ch, out_ch)) for _ in range(blocks)))


class HigherHead(nn.Module):
    """Branch 0 ``(N, C_0, H/4, W/4)`` -> a list of predictions: ``(N, P_0, H/4, W/4)``, then
    ``(N, P_i, H/4*2**i, W/4*2**i)`` per deconvolution stage i; ``P_i`` = joints (+ tag maps where
    ``with_ae[i]``), see ``HeadConfig.prediction_channels``. The official output is a list of two tensors
    (1/4: 17 heatmaps + 17 tags; 1/2: 17 heatmaps) for the released COCO models.
    """

    def __init__(self, in_channels: tuple[int, ...], prediction_channels: tuple[int, ...],
                 deconv_channels: tuple[int, ...], deconv_kernels: tuple[int, ...], deconv_blocks: int,
                 cat_output: tuple[bool, ...], final_conv_kernel: int):
        super().__init__()
        if not len(prediction_channels) == len(deconv_channels) + 1 == len(deconv_kernels) + 1 == len(cat_output) + 1:
            raise ValueError("HigherHead needs one prediction more than deconvolution stages, and one kernel and "
                             "cat flag per stage")
        self.cat_output = tuple(cat_output)
        feats = (in_channels[0], *deconv_channels)
        self.final_layers = nn.ModuleList(
            _prediction(c, p, final_conv_kernel) for c, p in zip(feats, prediction_channels)
        )
        ins = deconv_in_channels(in_channels[0], prediction_channels, deconv_channels, cat_output)
        self.deconv_layers = nn.ModuleList(
            _deconv_stage(i, o, k, deconv_blocks) for i, o, k in zip(ins, deconv_channels, deconv_kernels)
        )

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        x = feats[0]
        y = self.final_layers[0](x)
        outs = [y]
        for i, stage in enumerate(self.deconv_layers):
            if self.cat_output[i]:
                x = torch.cat((x, y), 1)
            x = stage(x)
            y = self.final_layers[i + 1](x)
            outs.append(y)
        return outs


def build(family: str, head, in_channels: tuple[int, ...], align_corners: bool) -> nn.Module:
    return HigherHead(in_channels, head.prediction_channels, head.deconv_channels, head.deconv_kernels,
                      head.deconv_blocks, head.cat_output, head.final_conv_kernel)


register(HeadSpec("higher", build, fields=("outputs", "final_conv_kernel", "tag_per_joint", "with_ae",
                                           "deconv_channels", "deconv_kernels", "deconv_blocks", "cat_output"),
                  state_dict_names=("final_layers", "deconv_layers"), reads_branch0=True))
