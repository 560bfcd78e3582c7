"""``NetworkModel``: a registered network's backbone (``NetworkSpec.build``) with the heatmap head, as mmpose's
top-down ``HeatmapHead`` with ``deconv_out_channels=None``: one ``final_layer`` convolution on the backbone's last
returned map (``mmpose/models/heads/heatmap_heads/heatmap_head.py``).

The backbone's children sit at the model's top level under mmpose's own names, so an mmpose backbone
``state_dict`` loads strictly as it is, and a released top-down checkpoint maps as for HRNet
(``backbone.`` + ``head.final_layer``).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..keys import output_key
from .model_config import NetworkConfig
from .registry import network_modules


class NetworkModel(nn.Module):
    """Backbone + optional head of a ``NetworkConfig``.

    ``forward(x)``: ``x`` is ``(N, 3, H, W)``; with a head, ``(N, outputs, H / s, W / s)`` where ``s`` is the last
    backbone map's reduction (4 for Lite-HRNet and HRFormer); headless, the backbone's list of maps in mmpose's
    order. ``forward_features(x)``: that list in either case.
    """

    def __init__(self, cfg: NetworkConfig, backbone: nn.Module):
        super().__init__()
        own = list(backbone.named_parameters(recurse=False)) + list(backbone.named_buffers(recurse=False))
        if own:  # they would be lost from the state_dict: the backbone's children are registered here, not it
            raise TypeError(f"{type(backbone).__name__} holds tensors outside its children: {own[0][0]}")
        self.arch = cfg.arch
        self._backbone = (backbone,)  # kept out of the module tree so no key carries a "backbone." prefix
        for name, child in backbone.named_children():
            self.add_module(name, child)
        self.out_channels = tuple(cfg.spec.out_channels(cfg.backbone))
        self.out_strides = tuple(cfg.spec.out_strides(cfg.backbone))
        # (module-name prefix, stage, module) of every exchange module, for forward_intermediates
        self.exchange_modules = network_modules(cfg.spec.parts(cfg.backbone))
        self.head_names: tuple[str, ...] = ()
        if cfg.head is not None:
            k = cfg.head.final_conv_kernel
            self.final_layer = nn.Conv2d(self.out_channels[-1], cfg.head.outputs, k, padding=k // 2)
            self.head_names = ("final_layer",)

    @property
    def backbone(self) -> nn.Module:
        """The network's backbone module (its children are this model's)."""
        return self._backbone[0]

    def train(self, mode: bool = True) -> NetworkModel:
        super().train(mode)
        self.backbone.train(mode)  # a backbone's own train() may hold norm_eval / frozen_stages (mmpose)
        return self

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's maps, in mmpose's order: list of ``(N, C_k, H / s_k, W / s_k)``."""
        return list(self.backbone(x))

    def forward_intermediates(self, x: torch.Tensor) -> tuple[OrderedDict[str, torch.Tensor], object]:
        """One forward that also records every exchange module's per-branch outputs (after its fusion), keyed
        ``stageS.moduleM.branchB`` as ``HRNet.forward_intermediates``, plus ``stem`` (the stem's output: a ``stem``
        child's, or the input of ``layer1``) and ``layer1`` where the backbone has one; all ``(N, C, H, W)``.

        Returns ``(record, out)`` where ``out`` is ``forward(x)``'s result. The maps are taken with forward hooks
        on the modules ``S.M`` (the registry's convention), removed before returning."""
        record: OrderedDict[str, torch.Tensor] = OrderedDict()
        modules = dict(self.named_modules())
        handles = []

        def keep(keys):
            def hook(module, inputs, output):
                outs = output if isinstance(output, (list, tuple)) else [output]
                for key, t in zip(keys(len(outs)), outs):
                    record[key] = t
            return hook

        try:
            if "stem" in modules:  # Lite-HRNet's stem module
                handles.append(modules["stem"].register_forward_hook(keep(lambda n: ["stem"])))
            elif "layer1" in modules:  # an HRNet-style conv1 .. bn2 stem whose shared ReLU runs in forward
                handles.append(modules["layer1"].register_forward_pre_hook(
                    lambda module, inputs: record.__setitem__("stem", inputs[0])))
                handles.append(modules["layer1"].register_forward_hook(keep(lambda n: ["layer1"])))
            for prefix, stage, m in self.exchange_modules:
                if prefix not in modules:  # off the S.M convention: no maps for it
                    continue
                handles.append(modules[prefix].register_forward_hook(
                    keep(lambda n, stage=stage, m=m: [output_key(stage, m, b) for b in range(n)])))
            out = self(x)
        finally:
            for handle in handles:
                handle.remove()
        return record, out

    def forward(self, x: torch.Tensor):
        feats = self.forward_features(x)
        if not self.head_names:
            return feats
        return self.final_layer(feats[-1])


def build_network(cfg: NetworkConfig) -> NetworkModel:
    """The model of ``cfg`` on the current default device, PyTorch's default initialisation."""
    return NetworkModel(cfg, cfg.spec.build(cfg.backbone))


__all__ = ["NetworkModel", "build_network"]
