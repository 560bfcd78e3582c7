"""Lite-HRNet (Yu et al. 2021, "Lite-HRNet: A Lightweight High-Resolution Network", arXiv 2104.06403) with
mmpose 1.x ``LiteHRNet`` semantics and parameter names (``mmpose/models/backbones/litehrnet.py``).

- ``config``: the frozen ``LiteHRNetSection`` and ``parse`` / ``dump`` of mmpose's backbone dict;
- ``modules``: the ``nn.Module`` s (``build(section)``);
- ``counts``: closed-form params / MACs / fvcore FLOPs / activations per part, and the parts plan.

Importing this package registers the network ``litehrnet`` (``hrnet_core.networks.registry``).
"""

from __future__ import annotations

from ..registry import Knob, NetworkSpec, register
from .config import (
    LiteHRNetSection,
    NormSpec,
    StagesSpec,
    StemSpec,
    dump,
    lite_hrnet_18,
    lite_hrnet_30,
    parse,
    with_schedule,
    with_widths,
)
from .counts import check_input, counts, param_count, parts
from .infer import NOT_IN_WEIGHTS, infer
from .modules import LiteHRNet, build


def out_channels(section: LiteHRNetSection) -> tuple[int, ...]:
    """Channels of the one map the backbone returns (branch 0 of the last stage)."""
    return section.out_channels


def out_strides(section: LiteHRNetSection) -> tuple[int, ...]:
    """Reduction of the one map the backbone returns: 1/4 of the input."""
    return (4,)


def resize(section: LiteHRNetSection, overrides) -> LiteHRNetSection:
    """``section`` with an ablation recipe's size overrides (``analysis.ablation.recipes``): ``width`` -> branch
    widths ``width * 2**k``, ``blocks`` -> every stage's ``num_blocks``, ``stem`` -> the stem's
    ``stem_channels`` and ``out_channels``; ``stage1_blocks`` / ``stage1_planes`` (HRNet's bottleneck stage) have
    no Lite-HRNet counterpart and are ignored. Modules, module types and the fusion are kept."""
    from dataclasses import replace

    sp = section.stages_spec
    if "width" in overrides:
        section = with_widths(section, [overrides["width"] * 2**k for k in range(max(sp.num_branches))])
    if "blocks" in overrides:
        section = replace(section, stages_spec=replace(section.stages_spec,
                                                       num_blocks=(overrides["blocks"],) * section.num_stages))
    if "stem" in overrides:
        section = replace(section, stem=replace(section.stem, stem_channels=overrides["stem"],
                                                out_channels=overrides["stem"]))
    return parse(dump(section), "backbone")  # re-validated: widths even, wide enough for the weighting


KNOBS = (
    Knob("extra.stages_spec.num_channels", "int_list",
         "branch widths, highest resolution first (Lite-HRNet-18/30: 40, 80, 160, 320); stage s takes the first "
         "num_branches[s] (litehrnet.with_widths); each even, at least 8 in a LITE stage"),
    Knob("extra.stages_spec.num_modules", "int_list", "modules per stage (Lite-HRNet-18: 2, 4, 2; -30: 3, 8, 3)"),
    Knob("extra.stages_spec.num_blocks", "int_list", "weighting blocks (LITE) or shuffle units per branch (NAIVE) "
                                                     "in each module, per stage"),
    Knob("extra.stages_spec.module_type", "choice", "per stage: LITE (conditional channel weighting) or NAIVE "
                                                    "(ShuffleNet-v2 units per branch)"),
    Knob("extra.stages_spec.with_fuse", "bool", "per stage: whether each module ends with the multi-resolution "
                                                "fusion (or a list: one bool per module)"),
    Knob("extra.stages_spec.reduce_ratios", "int_list", "per stage: the cross-resolution weighting's channel "
                                                        "reduction (8 in the papers' models)"),
    Knob("extra.stem.stem_channels", "int", "stem width (even)"),
    Knob("extra.with_head", "bool", "the iterative head that refines the maps from low to high resolution"),
)

SPEC = register(NetworkSpec(
    name="litehrnet",
    title="Lite-HRNet",
    mmpose_type="LiteHRNet",
    section_type=LiteHRNetSection,
    parse=parse,
    dump=dump,
    build=build,
    out_channels=out_channels,
    out_strides=out_strides,
    counts=counts,
    parts=parts,
    knobs=KNOBS,
    infer=infer, not_in_weights=NOT_IN_WEIGHTS,
    fusion_schedule=lambda section: section.stages_spec.schedule(),
    with_fusion=with_schedule,
    resize=resize,
))

__all__ = ["KNOBS", "LiteHRNet", "LiteHRNetSection", "NormSpec", "SPEC", "StagesSpec", "StemSpec", "build",
           "check_input", "counts", "dump", "lite_hrnet_18", "lite_hrnet_30", "out_channels", "out_strides",
           "param_count", "parse", "parts", "resize", "with_schedule", "with_widths"]
