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
from .config import HRFormerSection, dump, parse
from .counts import counts, parts
from .infer import NOT_IN_WEIGHTS, infer
from .modules import HRFormer, build


def out_channels(section: HRFormerSection) -> tuple[int, ...]:
    """Channels of each returned map: stage 4's branches (branch 0 only without ``multiscale_output``)."""
    return tuple(section.stage4.num_channels[:section.out_branches])


def out_strides(section: HRFormerSection) -> tuple[int, ...]:
    """Reduction of each returned map: 4, 8, 16, 32."""
    return tuple(4 * 2 ** b for b in range(section.out_branches))


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
    counts=counts, parts=parts, knobs=KNOBS, infer=infer, not_in_weights=NOT_IN_WEIGHTS))

__all__ = ["KNOBS", "SPEC", "HRFormer", "HRFormerSection", "build", "counts", "dump", "out_channels",
           "out_strides", "parse", "parts"]
