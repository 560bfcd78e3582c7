"""The classic HRNet's closed-form counts per part and its parts plan, for the network registry
(``NetworkSpec.counts`` / ``parts``): the backbone rows of ``operator_counts`` (the analytic engine behind
``analysis.complexity.analyze``, equal to fvcore per operator) summed per part, and the parts of
``hrnet_core.architecture``."""

from __future__ import annotations

from ...graph import architecture
from ...keys import part_key
from ..registry import PartCount, PartPlan
from .operator_counts import operator_counts
from .section import BACKBONE_HEAD, HRNetSection, model_config

# analytic row component -> part kind (``hrnet_core.keys.PART_KINDS``)
KINDS = {"stem": "stem", "layer1": "layer1", "transition": "transition", "branch_blocks": "branch", "fusion": "fusion"}
# the operators whose outputs fvcore's ActivationCountAnalysis counts
ACTIVATION_OPS = ("conv", "conv_transpose", "linear", "matmul")


def _row_key(stage: str, module, branch, source, component: str) -> str | None:
    kind = KINDS.get(component)
    if kind is None or (kind == "fusion" and source is None):
        return None  # the head; a fusion's closing ReLU (no parameters, no MACs, no fvcore flops)
    snum = int(stage[len("stage"):]) if kind in ("transition", "branch", "fusion") else None
    return part_key(kind, snum, module, branch, source)


def counts(section: HRNetSection, input_hw: tuple[int, int]) -> tuple[PartCount, ...]:
    """``PartCount`` of every backbone part (``parts``' keys, in order) at input ``(1, 3, H, W)``, ``input_hw`` =
    (H, W): params, Conv2d MACs (bias excluded), fvcore flops (0 for what its trace drops: the branches that never
    reach branch 0's output), activations (conv outputs). Raises ``ConfigError`` for an input the model cannot
    take."""
    em = operator_counts(model_config(section, BACKBONE_HEAD, tuple(input_hw)), 1)
    tally: dict[str, list[int]] = {p.key: [0, 0, 0, 0] for p in parts(section)}
    for (_, stage, module, branch, source, _, component, op, params, flops, macs, _, acts, _, live) in em.rows:
        key = _row_key(stage, module, branch, source, component)
        if key is None:
            continue
        t = tally[key]
        t[0] += params
        t[1] += macs
        t[2] += flops
        t[3] += acts if (live and op in ACTIVATION_OPS) else 0
    return tuple(PartCount(key, params=t[0], conv_linear_macs=t[1], fvcore_flops=t[2], activations=t[3])
                 for key, t in tally.items())


def parts(section: HRNetSection) -> tuple[PartPlan, ...]:
    """The backbone's parts in forward order (``hrnet_core.architecture``'s, without the head): stem, layer1,
    transitions, each module's branches and fusion terms ``fuse.i<-j``; every parameter in exactly one."""
    side = section.min_input_multiple
    graph = architecture(model_config(section, BACKBONE_HEAD, (side, side)))
    blocks = {"stem": "conv", "layer1": section.stage1.block, "transition": "conv", "fusion": "fusion"}
    out = []
    for p in graph.parts:
        if p.kind == "head":
            continue
        block = section.stages[int(p.stage[len("stage"):]) - 2].block if p.kind == "branch" else blocks[p.kind]
        out.append(PartPlan(p.key, p.kind, p.prefixes, p.stage, p.module, p.branch, p.source, p.resolution, block))
    return tuple(out)


__all__ = ["counts", "parts"]
