"""Params and GFLOPs per diagram node: sums over the model's submodules, built on the meta device.

A diagram node names the submodules it stands for by their state_dict prefixes (``conv1``,
``stage3.1.branches.2``, ``stage3.1.fuse_layers.0.2``, ``transition2.3``, ``final_layer``...);
``CostTable.params(prefixes)`` / ``macs(prefixes)`` add up every parameter / every Conv2d and Linear
multiply-add under them. MACs follow the paper convention (the official ``get_model_summary``):
Conv2d and Linear only, bias excluded, batch 1; GFLOPs = MACs / 2**30.

The counts come from ``analysis.complexity.analyze(cfg).breakdown`` (rows named by module, as here),
so the diagram and the complexity tables agree; ``source="meta"`` counts the model built on the meta
device with hooks on its Conv2d and Linear layers instead (the same numbers; the tests compare them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

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


def cost_table(cfg: HRNetConfig, input_hw: tuple[int, int] | None = None, source: str = "complexity") -> CostTable:
    """Params and paper-convention MACs per leaf module of ``cfg``'s model at ``input_hw`` (H, W; default:
    the config's), batch 1.

    ``source``: ``complexity`` (the rows of ``analysis.complexity.analyze(cfg).breakdown``, named by module
    as here) or ``meta`` (the model built on the meta device, run once with the official conv/linear hooks
    of ``analysis.complexity.fvcore_count.eager_counts``: shapes only, an independent count the tests compare).
    Raises ``ConfigError`` for an input size the model cannot take, ``ValueError`` for another source.
    """
    if source not in ("complexity", "meta"):
        raise ValueError(f"unknown cost source {source!r}")
    hw = tuple(input_hw or cfg.input_hw)
    if source == "meta":
        from analysis.complexity.fvcore_count import eager_counts, own_params

        model = build_on_meta(cfg).eval()
        macs = eager_counts(model, torch.empty(1, 3, *hw, device="meta")).official_macs
        return CostTable(own_params(model), macs, hw)
    from analysis.complexity import analyze  # pandas: only when a diagram is annotated

    df = analyze(cfg, input_hw=hw).breakdown
    params = df.groupby("name", sort=False)["params"].sum()
    macs = df.groupby("name", sort=False)["macs"].sum()
    return CostTable({k: int(v) for k, v in params.items() if v}, {k: int(v) for k, v in macs.items() if v}, hw)


def fmt_params(n: int) -> str:
    """``n`` parameters as a short label: ``28.54M params``, ``4.6K params``, ``12 params``."""
    if n >= 1e6:
        return f"{n / 1e6:.2f}M params"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K params"
    return f"{n} params"


def fmt_gflops(g: float) -> str:
    """Paper-convention GFLOPs (MACs / 2**30) as a label: 3 decimals below 10, else 1."""
    return f"{g:.3f} GFLOPs" if g < 10 else f"{g:.1f} GFLOPs"


__all__ = ["CostTable", "cost_table", "fmt_gflops", "fmt_params"]
