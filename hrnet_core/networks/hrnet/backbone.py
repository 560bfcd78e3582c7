"""The classic HRNet backbone as the network registry builds it: ``hrnet_core.model.HRNet`` (the official module
tree and parameter names: ``conv1``/``bn1``/``conv2``/``bn2``, ``layer1``, ``transitionN``, ``stageN``) with no head
of its own; its forward returns what mmpose's ``HRNet`` returns with ``multiscale_output=False``."""

from __future__ import annotations

import torch
from torch import nn

from ...model import HRNet, init_weights
from .section import HRNetSection


class FirstBranch(nn.Module):
    """The backbone's output: ``[branch 0]`` of the last stage, ``(N, C, H/4, W/4)`` (mmpose ``HRNet.forward``
    with ``multiscale_output=False``). No parameters, so the backbone's state_dict is the official one minus the
    head's."""

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return list(feats[:1])


def build(section: HRNetSection) -> HRNet:
    """The backbone of ``section``, official initialisation (``hrnet_core.model.init_weights``): input
    ``(N, 3, H, W)``, output ``[(N, stages[-1].out_channels[0], H/4, W/4)]``. The last module fuses into branch 0
    only, as the official pose models (and mmpose's default) do."""
    model = HRNet(section.stem.channels, section.stage1, section.stages, section.upsample, FirstBranch(),
                  final_fuse_outputs=1)
    return init_weights(model)


__all__ = ["FirstBranch", "build"]
