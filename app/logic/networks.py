"""What the app shows for a model of another registered network (Lite-HRNet, HRFormer: ``hrnet_core.networks``),
free of Streamlit.

- ``is_network`` / ``network_title``: whether a config is a ``NetworkConfig``, and its network as papers write it;
- ``unavailable``: the one line a page shows where one of its features does not take that network yet (the
  ``FEATURES`` table below is the one place that says which);
- ``module_counts`` / ``output_shapes`` / ``stage_table``: the Build page's numbers of any config, read off the
  parts plan and the analytic report (no model is built);
- ``caption``: the one-line description of a network model (header of every page, sidebar).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from hrnet_core.networks.model_config import NetworkConfig


def is_network(cfg) -> bool:
    """Whether ``cfg`` is a model of another registered network (a ``NetworkConfig``), not the classic HRNet."""
    return isinstance(cfg, NetworkConfig)


def network_title(cfg) -> str:
    """The network of ``cfg`` as papers write it: ``HRNet``, ``Lite-HRNet``, ``HRFormer`` ..."""
    return cfg.spec.title if is_network(cfg) else "HRNet"


# ---- which page features take the other networks ------------------------------------------------------------


@dataclass(frozen=True)
class Feature:
    """A page feature: ``phrase`` starts the sentence (``The diagram``), ``plural`` picks "are" over "is",
    ``takes(cfg)`` says whether it takes a given network's model, ``hint`` why not / what to use instead."""

    phrase: str
    plural: bool = False
    takes: Callable[[NetworkConfig], bool] = lambda cfg: False
    hint: str = ""


def _every_network(cfg: NetworkConfig) -> bool:
    return True


def _has_fusion_switch(cfg: NetworkConfig) -> bool:
    """Whether the network has per-module fusion flags (``NetworkSpec.with_fusion``): Lite-HRNet, not HRFormer."""
    return cfg.spec.with_fusion is not None


# ``takes`` says which networks the analysis function behind a feature takes; the pages call it for every such
# network with no other change.
FEATURES: dict[str, Feature] = {
    "diagram": Feature("The diagram", takes=_every_network),  # analysis.diagram: Architecture, the Build preview
    "feature maps": Feature("Feature maps", plural=True, takes=_every_network),  # analysis.features.capture
    "latency profile": Feature("The latency profile by part", takes=_every_network),  # analysis.complexity.profiler
    "fusion ablation": Feature("The fusion ablation", takes=_has_fusion_switch,  # the Ablation page's Start
                               hint="its modules always fuse: there is no per-module fusion switch to vary"),
    "fusion presets": Feature("The fusion presets", plural=True, takes=_has_fusion_switch,  # Complexity's compare
                              hint="its modules always fuse"),
}


def unavailable(cfg, feature: str) -> str | None:
    """The one line to show instead of ``feature`` (a key of ``FEATURES``) for ``cfg``, e.g. "The diagram is not
    available for Lite-HRNet yet."; ``None`` where the feature takes ``cfg`` (always for a classic HRNet).
    An unknown ``feature`` is a ``KeyError`` (a page's bug, not the user's)."""
    f = FEATURES[feature]
    if not is_network(cfg) or f.takes(cfg):
        return None
    line = f"{f.phrase} {'are' if f.plural else 'is'} not available for {network_title(cfg)}"
    return f"{line} ({f.hint})." if f.hint else f"{line}."


# ---- numbers of a network model -------------------------------------------------------------------------------


def module_counts(cfg) -> tuple[int, int]:
    """``(fusing modules, modules)`` of any config: HRNet's own counts, or a network's read off its parts plan
    (a module fuses when it has a fusion part)."""
    if not is_network(cfg):
        return cfg.num_fusions, cfg.num_modules
    parts = cfg.spec.parts(cfg.backbone)
    modules = {(p.stage, p.module) for p in parts if p.kind in ("branch", "fusion") and p.module is not None}
    fusing = {(p.stage, p.module) for p in parts if p.kind == "fusion" and p.module is not None}
    return len(fusing), len(modules)


def output_shapes(cfg: NetworkConfig) -> tuple[tuple[int, ...], ...]:
    """The shapes (batch 1) a network model returns: the heatmap head's one map on the backbone's last map, or,
    headless, the backbone's maps (``NetworkSpec.out_channels`` / ``out_strides``; sides rounded up, as the
    stride-2 convolutions do)."""
    h, w = cfg.input_hw
    chans, strides = cfg.spec.out_channels(cfg.backbone), cfg.spec.out_strides(cfg.backbone)
    if cfg.head is not None:
        chans, strides = (cfg.head.outputs,), strides[-1:]
    return tuple((1, c, -(-h // s), -(-w // s)) for c, s in zip(chans, strides))


def stage_table(report) -> pd.DataFrame:
    """One row per stage of an analytic report: params, GFLOPs (Conv2d + Linear MACs / 2^30), the attention
    matrix products where there are any (HRFormer), and the shares of the totals."""
    df = report.by("stage")
    out = pd.DataFrame({"stage": df["stage"], "params": df["params"], "gflops_paper": df["macs"] / 2**30})
    attention = df["torch_flops"] // 2 - df["macs"]  # torch_flops = 2 x (macs + attention MACs)
    if int(attention.sum()):
        out["attention_macs"] = attention
    out["params_share"] = df["params_share"]
    out["macs_share"] = df["macs_share"]
    return out


def caption(cfg: NetworkConfig, params: int, gflops: float, attention_macs: int, fusions: int, modules: int) -> str:
    """The one-line description of a network model, as ``app.common.model_caption`` writes HRNet's."""
    h, w = cfg.input_hw
    size = f"{params / 1e6:.1f}M" if params >= 1e5 else f"{params / 1e3:.1f}K"
    head = f"heatmap head, {cfg.head.outputs} outputs" if cfg.head is not None else "no head"
    attention = f" + {attention_macs / 2**30:.2f} G attention MACs" if attention_macs else ""
    return (f"**{cfg.name}** · {network_title(cfg)} · {cfg.family} · {head} · {size} params · "
            f"{gflops:.2f} GFLOPs{attention} · {fusions}/{modules} modules fuse · input {h}x{w}")


__all__ = ["FEATURES", "Feature", "caption", "is_network", "module_counts", "network_title", "output_shapes",
           "stage_table", "unavailable"]
