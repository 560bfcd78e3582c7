"""The ``torchstat`` convention measured on a built model: the "Flops" column behind Lite-HRNet's published FLOPs.

Lite-HRNet (Yu et al. 2021, arXiv 2104.06403) publishes 205.2M FLOPs for Lite-HRNet-18 at 256x192 (319.2M for
-30): the official repository's ``tools/summary_network.py`` runs Microsoft tensorwatch's fork of Swall0w's
torchstat (``tools/torchstat_utils.py``) on the top-down model (backbone + heatmap head) with a ``(1, 3, H, W)``
input and prints the sum in binary units (``/ 2**20``). Its rules, implemented here from their description
(no torchstat code is used):

- a forward hook on every leaf module (``named_modules``: a module reachable under two names counts once); each
  call *replaces* the module's figure, so a module run twice (Lite-HRNet's ``fuse_layers[i][0]``, a shared
  ``ReLU``) counts once, at its last call;
- ``nn.Conv2d``: ``k_h * k_w * in_ch * (out_ch // groups) * N * out_h * out_w``, plus ``out_ch * N * out_h *
  out_w`` with a bias; ``nn.BatchNorm2d``: input elements, doubled when affine; ``nn.ReLU`` / ``ReLU6`` /
  ``PReLU`` / ``ELU`` / ``LeakyReLU``: input elements; ``nn.AvgPool2d`` / ``MaxPool2d``: ``N * C * out_h *
  out_w * k_h * k_w``; ``nn.AdaptiveAvgPool2d`` / ``AdaptiveMaxPool2d``: per output cell ``N * C`` times its
  window's rows + 1 times its columns + 1; ``nn.Upsample``: ``N * out_h * out_w`` (channels not counted);
  ``nn.Linear`` on a 2-D input: ``N * in_features * out_features``; every other module, and every functional
  operator, 0.

``TorchstatError`` for a model torchstat itself cannot count (an ``nn.Linear`` on a tensor that is not 2-D,
e.g. HRFormer's token tensors: torchstat's Linear rule asserts a 2-D input).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hrnet_core.errors import UserInputError

RELUS = (nn.ReLU, nn.ReLU6, nn.PReLU, nn.ELU, nn.LeakyReLU)


class TorchstatError(UserInputError):
    """The model has a module torchstat cannot count (its rules assert on the input's shape)."""


def _adaptive_pool(x: torch.Tensor, out: torch.Tensor) -> int:
    n, c, h, w = x.shape
    oh, ow = out.shape[-2:]
    rows = sum(math.ceil((a + 1) * h / oh) - math.floor(a * h / oh) + 1 for a in range(oh))
    cols = sum(math.ceil((b + 1) * w / ow) - math.floor(b * w / ow) + 1 for b in range(ow))
    return n * c * rows * cols


def module_flops(module: nn.Module, x: torch.Tensor, out: torch.Tensor, name: str = "") -> int:
    """torchstat's figure for one call of leaf ``module`` on input ``x`` giving ``out`` (rules above)."""
    if isinstance(module, nn.Conv2d):
        n, cin = x.shape[:2]
        cout, oh, ow = out.shape[1:]
        kh, kw = module.kernel_size
        positions = n * oh * ow
        return kh * kw * cin * (cout // module.groups) * positions + (cout * positions if module.bias is not None
                                                                      else 0)
    if isinstance(module, nn.BatchNorm2d):
        return x.numel() * (2 if module.affine else 1)
    if isinstance(module, RELUS):
        return x.numel()
    if isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)):
        k = module.kernel_size if isinstance(module.kernel_size, tuple) else (module.kernel_size,) * 2
        return x.shape[0] * x.shape[1] * out.shape[-2] * out.shape[-1] * k[0] * k[1]
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return _adaptive_pool(x, out)
    if isinstance(module, nn.Upsample):
        return x.shape[0] * out.shape[-2] * out.shape[-1]
    if isinstance(module, nn.Linear):
        if x.dim() != 2:
            raise TorchstatError(f"{name or type(module).__name__}: torchstat counts nn.Linear on 2-D inputs only, "
                                 f"this one takes {tuple(x.shape)}")
        return x.shape[0] * x.shape[1] * out.shape[1]
    return 0


def torchstat_by_module(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """``{leaf module name: its torchstat figure at its last call}`` for one eval-mode forward of ``x``
    (``(N, C, H, W)``; torchstat itself uses N = 1). Leaves that never run are left out. Raises
    ``TorchstatError`` (see the module docstring)."""
    last: dict[str, int] = {}
    handles = []

    def hook(name):
        def record(module, inputs, output):
            first = output if torch.is_tensor(output) else output[0]
            last[name] = int(module_flops(module, inputs[0], first, name))
        return record

    for name, mod in model.named_modules():
        if next(mod.children(), None) is None:
            handles.append(mod.register_forward_hook(hook(name)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return last


__all__ = ["RELUS", "TorchstatError", "module_flops", "torchstat_by_module"]
