"""Params and GFLOPs per diagram node: sums over the model's submodules, built on the meta device.

A diagram node names the submodules it stands for by their state_dict prefixes (``conv1``,
``stage3.1.branches.2``, ``stage3.1.fuse_layers.0.2``, ``transition2.3``, ``final_layer``...);
``CostTable.params(prefixes)`` / ``macs(prefixes)`` add up every parameter / every Conv2d and Linear
multiply-add under them. MACs follow the paper convention (the official ``get_model_summary``):
Conv2d and Linear only, bias excluded, batch 1; GFLOPs = MACs / 2**30.

The counts come from ``analysis.complexity.analyze(cfg).breakdown`` (rows named by module, as here),
so the diagram and the complexity tables agree; without that module, from the model built on the
meta device with hooks on its Conv2d and Linear layers (the same numbers; the tests compare them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hrnet_core import HRNetConfig
from hrnet_core.model import build_on_meta


@dataclass(frozen=True)
class CostTable:
    """Per leaf submodule (state_dict prefix): parameter count and paper-convention MACs."""

    leaf_params: dict[str, int]
    leaf_macs: dict[str, int]
    input_hw: tuple[int, int]

    @staticmethod
    def _sum(table: dict[str, int], prefixes) -> int:
        total = 0
        for name, v in table.items():
            for p in prefixes:
                if name == p or name.startswith(p + "."):
                    total += v
                    break
        return total

    def params(self, prefixes) -> int:
        return self._sum(self.leaf_params, prefixes)

    def macs(self, prefixes) -> int:
        return self._sum(self.leaf_macs, prefixes)

    def gflops(self, prefixes) -> float:
        return self.macs(prefixes) / 2**30

    @property
    def total_params(self) -> int:
        return sum(self.leaf_params.values())

    @property
    def total_gflops(self) -> float:
        return sum(self.leaf_macs.values()) / 2**30


def cost_table(cfg: HRNetConfig, input_hw: tuple[int, int] | None = None, source: str = "auto") -> CostTable:
    """Params and paper-convention MACs per leaf module of ``cfg``'s model at ``input_hw``.

    ``source``: ``complexity`` (the rows of ``analysis.complexity.analyze(cfg).breakdown``, named by
    module as here), ``meta`` (the model built on the meta device, run once with hooks on Conv2d and
    Linear: shapes only) or ``auto`` (complexity when that module is importable, else meta).
    """
    if source not in ("auto", "complexity", "meta"):
        raise ValueError(f"unknown cost source {source!r}")
    hw = tuple(input_hw or cfg.input_hw)
    if source in ("auto", "complexity"):
        table = _from_complexity(cfg, hw)
        if table is not None:
            return table
        if source == "complexity":
            raise RuntimeError("analysis.complexity is not available")
    return _from_meta(cfg, hw)


def _from_complexity(cfg: HRNetConfig, hw: tuple[int, int]) -> CostTable | None:
    try:
        from .complexity import analyze
    except ImportError:
        return None
    try:
        df = analyze(cfg, input_hw=hw).breakdown
    except Exception:  # e.g. a head kind it does not know yet: count on the meta device instead
        return None
    params = df.groupby("name", sort=False)["params"].sum()
    macs = df.groupby("name", sort=False)["macs"].sum()
    return CostTable({k: int(v) for k, v in params.items() if v}, {k: int(v) for k, v in macs.items() if v}, hw)


def _from_meta(cfg: HRNetConfig, hw: tuple[int, int]) -> CostTable:
    h, w = hw
    model = build_on_meta(cfg).eval()
    leaf_params: dict[str, int] = {}
    leaf_macs: dict[str, int] = {}
    hooks = []
    for name, mod in model.named_modules():
        own = sum(p.numel() for p in mod.parameters(recurse=False))
        if own:
            leaf_params[name] = own
        if isinstance(mod, nn.Conv2d):
            def conv_hook(m, inp, out, name=name):
                kh, kw = m.kernel_size
                leaf_macs[name] = leaf_macs.get(name, 0) + out.numel() * (m.in_channels // m.groups) * kh * kw
            hooks.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.Linear):
            def linear_hook(m, inp, out, name=name):
                leaf_macs[name] = leaf_macs.get(name, 0) + out.numel() * m.in_features
            hooks.append(mod.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            model(torch.empty(1, 3, h, w, device="meta"))
    finally:
        for hk in hooks:
            hk.remove()
    return CostTable(leaf_params, leaf_macs, (h, w))


def fmt_params(n: int) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.2f}M params"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K params"
    return f"{n} params"


def fmt_gflops(g: float) -> str:
    return f"{g:.3f} GFLOPs" if g < 10 else f"{g:.1f} GFLOPs"


__all__ = ["CostTable", "cost_table", "fmt_gflops", "fmt_params"]
