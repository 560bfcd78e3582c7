"""Complexity of a model of another registered network (Lite-HRNet, HRFormer; ``hrnet_core.networks``): the same
``ComplexityReport`` as for HRNet, one breakdown row per part of the network's parts plan.

Columns as in ``analysis.complexity.analytic``, with these differences: ``operator`` is ``part`` (one row per
part, not per operator call); ``macs`` = Conv2d + Linear multiply-accumulates, bias excluded, every call counted
(Lite-HRNet runs each ``fuse_layers[i][0]``, i >= 1, twice per forward: both are counted);
``attention_macs`` (report total) = the window-attention matrix products (``q @ k^T``, ``attn @ v``), which are
neither Conv2d nor Linear and so stay out of ``macs`` and ``gflops_paper``; ``flops`` = fvcore's default
handles (conv, linear, matmul, batch_norm, layer_norm, upsampling, adaptive pooling); ``torch_flops`` =
2 x (``macs`` + ``attention_macs``); ``activations`` = elements written by Conv2d, Linear and matmul outputs
(fvcore's ``ActivationCountAnalysis`` convention; the HRNet counter counts every written tensor instead);
``torchstat_flops`` (report total only) = the torchstat "Flops" behind Lite-HRNet's published FLOPs (backbone +
head; ``analysis.complexity.torchstat_count``), None for a network torchstat cannot count (HRFormer).

Backends: ``analytic`` reads ``NetworkSpec.counts`` (closed form, no model built); ``fvcore`` builds the model and
measures it with ``fvcore.nn.FlopCountAnalysis`` / ``ActivationCountAnalysis`` per part (the two are equal:
``tests/test_network_family.py``).
"""

from __future__ import annotations

import torch

from analysis.complexity.report import ComplexityReport, breakdown_frame
from hrnet_core.networks.model_config import NetworkConfig
from hrnet_core.networks.registry import PartCount, PartPlan

COMPONENT = {"stem": "stem", "layer1": "layer1", "transition": "transition", "branch": "branch_blocks",
             "fusion": "fusion", "head": "head"}


def _head_count(cfg: NetworkConfig) -> tuple[PartPlan, PartCount] | None:
    """The ``final_layer`` of the heatmap head as a part: a k x k conv with bias on the last map."""
    if cfg.head is None:
        return None
    spec = cfg.spec
    cin, stride = spec.out_channels(cfg.backbone)[-1], spec.out_strides(cfg.backbone)[-1]
    h, w = (-(-v // stride) for v in cfg.input_hw)
    k, k_out = cfg.head.final_conv_kernel, cfg.head.outputs
    macs = cin * k_out * k * k * h * w
    plan = PartPlan("head.final_layer", "head", ("final_layer",), "head", resolution=stride, block="conv")
    return plan, PartCount("head.final_layer", params=cin * k_out * k * k + k_out, conv_linear_macs=macs,
                           fvcore_flops=macs, activations=k_out * h * w,
                           torchstat_flops=macs + k_out * h * w)  # torchstat: the bias adds too


def _torchstat_total(plans: list[PartPlan], counts: dict[str, PartCount]) -> int | None:
    values = [counts[p.key].torchstat_flops for p in plans]
    return None if any(v is None for v in values) else sum(values)


def _report(cfg: NetworkConfig, backend: str, batch: int, plans: list[PartPlan], counts: dict[str, PartCount],
            torchstat: int | None = None):
    rows = []
    for p in plans:
        c = counts[p.key]
        res = "global" if p.resolution is None else f"1/{p.resolution}"
        macs, att = c.conv_linear_macs * batch, c.attention_macs * batch
        rows.append((p.prefixes[0] if p.prefixes else p.key, p.stage, p.module, p.branch, p.source, res,
                     COMPONENT.get(p.kind, p.kind), "part", c.params, c.fvcore_flops * batch, macs, 2 * (macs + att),
                     c.activations * batch, None, True))
    total = {f: sum(getattr(counts[p.key], f) for p in plans) for f in
             ("params", "conv_linear_macs", "attention_macs", "fvcore_flops", "activations")}
    return ComplexityReport(
        name=cfg.name, family=cfg.family, head="v1" if cfg.head else "none", backend=backend,
        input_hw=tuple(cfg.input_hw), batch=batch, fusion="custom", params=total["params"],
        conv_linear_macs=total["conv_linear_macs"] * batch, gflops_paper=total["conv_linear_macs"] * batch / 2**30,
        fvcore_flops=total["fvcore_flops"] * batch,
        torch_flops=2 * (total["conv_linear_macs"] + total["attention_macs"]) * batch,
        activations=total["activations"] * batch, unsupported_ops={}, uncounted_elements={}, untraced_flops=0,
        breakdown=breakdown_frame(rows), description=cfg.description, arch=cfg.arch,
        attention_macs=total["attention_macs"] * batch,
        torchstat_flops=None if torchstat is None else torchstat * batch)


def plans_and_counts(cfg: NetworkConfig) -> tuple[list[PartPlan], dict[str, PartCount]]:
    """The parts (backbone, then the head's ``final_layer``) and their closed-form counts at batch 1."""
    spec = cfg.spec
    plans = list(spec.parts(cfg.backbone))
    counts = {c.key: c for c in spec.counts(cfg.backbone, tuple(cfg.input_hw))}
    head = _head_count(cfg)
    if head:
        plans.append(head[0])
        counts[head[0].key] = head[1]
    return plans, counts


def analyze_network(cfg: NetworkConfig, backend: str = "analytic", batch: int = 1) -> ComplexityReport:
    """The complexity report of ``cfg`` at its input size and ``batch`` (see the module docstring)."""
    plans, counts = plans_and_counts(cfg)
    torchstat = _torchstat_total(plans, counts)
    if backend == "fvcore":
        counts = measured_counts(cfg, plans)
        torchstat = measured_torchstat(cfg)
        if UNATTRIBUTED.key in counts:
            plans = [*plans, UNATTRIBUTED]
    return _report(cfg, backend, batch, plans, counts, torchstat)


def measured_torchstat(cfg: NetworkConfig) -> int | None:
    """torchstat's total for ``cfg``'s model (batch 1, eval, float32 CPU) by its own rules on the built model
    (``analysis.complexity.torchstat_count``); None where torchstat cannot count the network."""
    from analysis.complexity.torchstat_count import TorchstatError, torchstat_by_module
    from hrnet_core.model import build_model

    model = build_model(cfg)
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    try:
        return sum(torchstat_by_module(model, torch.zeros(1, first.in_channels, *cfg.input_hw)).values())
    except TorchstatError:
        return None


def _owner(name: str, plans: list[PartPlan]) -> str | None:
    for p in plans:
        if any(name == q or name.startswith(q + ".") for q in p.prefixes):
            return p.key
    return None


def measured_counts(cfg: NetworkConfig, plans: list[PartPlan]) -> dict[str, PartCount]:
    """Per-part counts measured on the built model (batch 1, eval, float32 CPU): params from the module tree,
    fvcore flops / activations from ``FlopCountAnalysis`` / ``ActivationCountAnalysis`` ``by_module``, the
    Conv2d / Linear MACs from forward hooks (every call)."""
    from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis
    from torch import nn

    from hrnet_core.model import build_model

    model = build_model(cfg).eval()
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))  # the stem reads the image
    x = torch.zeros(1, first.in_channels, *cfg.input_hw)
    acc = {p.key: dict(params=0, conv_linear_macs=0, attention_macs=0, fvcore_flops=0, activations=0) for p in plans}

    def add(name, field, value):
        key = _owner(name, plans)
        if key is not None:
            acc[key][field] += value

    for name, prm in model.named_parameters():
        add(name, "params", prm.numel())
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            def hook(m, inp, out, name=name):
                if isinstance(m, nn.Conv2d):
                    macs = out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                else:
                    macs = out.numel() * m.in_features
                add(name, "conv_linear_macs", macs)
            hooks.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for hk in hooks:
        hk.remove()
    flops = FlopCountAnalysis(model, x)
    acts = ActivationCountAnalysis(model, x)
    for counter in (flops, acts):
        counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    by_flops, by_acts, by_op = flops.by_module(), acts.by_module(), flops.by_module_and_operator()
    for p in plans:  # fvcore's by_module totals include a module's children: sum each part's own prefixes
        for q in p.prefixes:
            acc[p.key]["fvcore_flops"] += int(by_flops.get(q, 0))
            acc[p.key]["activations"] += int(by_acts.get(q, 0))
            acc[p.key]["attention_macs"] += int(by_op.get(q, {}).get("matmul", 0))
    out = {k: PartCount(k, **v) for k, v in acc.items()}
    # operators a parent module runs itself (outside every part's prefixes) are booked on it by fvcore
    rest = {"fvcore_flops": int(flops.total()) - sum(c.fvcore_flops for c in out.values()),
            "activations": int(acts.total()) - sum(c.activations for c in out.values()),
            "attention_macs": int(by_op.get("", {}).get("matmul", 0)) - sum(c.attention_macs for c in out.values())}
    if any(rest.values()):
        out[UNATTRIBUTED.key] = PartCount(UNATTRIBUTED.key, **{k: max(v, 0) for k, v in rest.items()})
    return out


UNATTRIBUTED = PartPlan("unattributed", "other", (), "other")


__all__ = ["analyze_network", "measured_counts", "measured_torchstat", "plans_and_counts"]
