"""HRFormer (Yuan et al. 2021, "HRFormer: High-Resolution Vision Transformer for Dense Prediction",
arXiv 2110.09408) as mmpose 1.x builds it (``mmpose/models/backbones/hrformer.py``): the HRNet layout with
local-window self-attention blocks in stages 2..4. Registers the network ``hrformer`` on import.

- ``config``: ``HRFormerSection`` (the mmpose backbone dict, typed), ``parse`` / ``dump``;
- ``modules``: the ``nn.Module`` tree with mmpose's state_dict names;
- ``counts``: closed-form params / MACs / fvcore FLOPs / activations per part, and the parts plan.

Knob keys are dotted paths into ``dump(section)`` (the mmpose backbone dict), e.g.
``extra.stage3.num_channels``.
"""

from __future__ import annotations

from ..registry import Knob, NetworkSpec, register
from .config import HRFormerSection, dump, fusion_schedule, parse, with_schedule
from .counts import counts, parts
from .infer import NOT_IN_WEIGHTS, infer
from .modules import HRFormer, build


def out_channels(section: HRFormerSection) -> tuple[int, ...]:
    """Channels of each returned map: stage 4's branches (branch 0 only without ``multiscale_output``)."""
    return tuple(section.stage4.num_channels[:section.out_branches])


def out_strides(section: HRFormerSection) -> tuple[int, ...]:
    """Reduction of each returned map: 4, 8, 16, 32."""
    return tuple(4 * 2 ** b for b in range(section.out_branches))


def resize(section: HRFormerSection, overrides) -> HRFormerSection:
    """``section`` with an ablation recipe's size overrides (``analysis.ablation.recipes``): ``width`` -> stage
    ``s``'s branch widths ``width * 2**b``, each branch's ``num_heads`` cut to ``gcd(heads, width)`` where the
    new width no longer divides by it; ``blocks`` -> every branch's ``num_blocks`` in stages 2..4;
    ``stage1_blocks`` / ``stage1_planes`` -> layer1's Bottlenecks and planes; ``stem`` is ignored (mmpose's stem
    is hard-coded to 64 channels). Modules, windows, MLP ratios and the fusion flags are kept. Raises
    ``ConfigError`` when the result is not a valid section (it is parsed again)."""
    import math
    from dataclasses import replace

    stages = {}
    for s, st in enumerate(section.stages, start=2):
        nb = st.num_branches
        if "width" in overrides:
            widths = tuple(overrides["width"] * 2**b for b in range(nb))
            st = replace(st, num_channels=widths,
                         num_heads=tuple(h if w % h == 0 else math.gcd(h, w) for h, w in zip(st.num_heads, widths)))
        if "blocks" in overrides:
            st = replace(st, num_blocks=(overrides["blocks"],) * nb)
        stages[f"stage{s}"] = st
    s1 = section.stage1
    if "stage1_blocks" in overrides:
        s1 = replace(s1, num_blocks=(overrides["stage1_blocks"],))
    if "stage1_planes" in overrides:
        s1 = replace(s1, num_channels=(overrides["stage1_planes"],))
    return parse(dump(replace(section, stage1=s1, **stages)), "backbone")


def _stage_knobs(s: int) -> tuple[Knob, ...]:
    p = f"extra.stage{s}"
    return (Knob(f"{p}.num_modules", "int", f"HRFormer modules in stage {s}"),
            Knob(f"{p}.num_blocks", "int_list", f"HRFormer blocks per branch in stage {s} (at most branch 0's)"),
            Knob(f"{p}.num_channels", "int_list", f"width of each branch in stage {s}"),
            Knob(f"{p}.num_heads", "int_list", f"attention heads per branch in stage {s} (dividing its width)"),
            Knob(f"{p}.window_sizes", "int_list", f"attention window side per branch in stage {s}"),
            Knob(f"{p}.mlp_ratios", "int_list", f"FFN expansion per branch in stage {s}"))


KNOBS = (Knob("extra.stage1.num_blocks", "int_list", "Bottlenecks in layer1 (one entry)"),
         Knob("extra.stage1.num_channels", "int_list", "Bottleneck planes in layer1 (output = 4x)"),
         *_stage_knobs(2), *_stage_knobs(3), *_stage_knobs(4),
         Knob("extra.stage4.multiscale_output", "bool", "return every stage-4 branch, not only the 1/4 map"),
         Knob("extra.drop_path_rate", "float", "stochastic depth at the last block (linear from 0)"),
         Knob("extra.with_rpe", "bool", "relative position bias in the window attention"),
         Knob("norm_cfg.type", "choice", "BN or SyncBN (the same network here)"))

SPEC = register(NetworkSpec(
    name="hrformer", title="HRFormer", mmpose_type="HRFormer", section_type=HRFormerSection,
    parse=parse, dump=dump, build=build, out_channels=out_channels, out_strides=out_strides,
    counts=counts, parts=parts, knobs=KNOBS, infer=infer, not_in_weights=NOT_IN_WEIGHTS,
    fusion_schedule=fusion_schedule, with_fusion=with_schedule, resize=resize))

__all__ = ["KNOBS", "SPEC", "HRFormer", "HRFormerSection", "build", "counts", "dump", "fusion_schedule",
           "out_channels", "out_strides", "parse", "parts", "resize", "with_schedule"]
