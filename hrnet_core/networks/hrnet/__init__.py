"""The classic HRNet (Sun et al. 2019, "Deep High-Resolution Representation Learning for Human Pose
Estimation"; Wang et al. 2019, HRNetV2) behind the network registry, as Lite-HRNet and HRFormer are.
Registers the network ``hrnet`` (mmpose type ``HRNet``) on import.

- ``section``: ``HRNetSection`` (stem, stage 1, stages, upsampling) and the way to and from ``HRNetConfig``, the
  classic HRNet's model config, which keeps HRNet's own heads (V1 / V2 / V2p / cls / OCR / HigherHRNet);
- ``mmpose_section``: mmpose's ``type='HRNet'`` backbone dict, parsed and dumped;
- ``backbone``: the ``nn.Module`` (``hrnet_core.model.HRNet``, official parameter names) without a head;
- ``operator_counts``: the closed-form count of every operator call (the engine of ``analysis.complexity``);
  ``counts``: the same per part, and the parts plan.

Knob keys are dotted paths into ``dump(section)`` (the mmpose backbone dict), e.g. ``extra.stage3.num_channels``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ...config import Stage1Config, StemConfig, apply_fusion
from ..registry import Knob, NetworkSpec, register
from .backbone import build
from .counts import counts, parts
from .mmpose_section import check_backbone, dump_backbone, parse_backbone
from .section import HRNetSection, model_config, section_of, with_section


def parse(mapping: Mapping, field: str) -> HRNetSection:
    """The section of mmpose's HRNet backbone dict ``mapping`` (``type`` left out); ``ConfigError`` naming
    ``{field}.extra.stage3.num_channels[1]`` and the like."""
    extra = check_backbone(mapping, field)
    side = 2 ** (len([k for k in ("stage2", "stage3", "stage4") if k in extra]) + 2)
    cfg = parse_backbone(extra, field, outputs=1, kernel=1, kernel_path=f"{field}.extra", head_path=field,
                         input_hw=(side, side), size_path=field, name="hrnet")
    return section_of(cfg)


def dump(section: HRNetSection) -> dict:
    """``section`` as mmpose's HRNet backbone dict: ``parse(dump(s)) == s``."""
    return dump_backbone(section.stem, section.stage1, section.stages, section.upsample)


def out_channels(section: HRNetSection) -> tuple[int, ...]:
    """Channels of the one map the backbone returns: the last stage's branch 0 (x block expansion)."""
    return (section.stages[-1].out_channels[0],)


def out_strides(section: HRNetSection) -> tuple[int, ...]:
    """Reduction of the one map the backbone returns: 1/4 of the input."""
    return (4,)


def fusion_schedule(section: HRNetSection) -> tuple[tuple[bool, ...], ...]:
    """Per stage 2.., per module: whether it ends with the multi-resolution fusion."""
    return tuple(st.fuse for st in section.stages)


def with_fusion(section: HRNetSection, schedule) -> HRNetSection:
    """A copy with another schedule (a preset name, ``hrnet_core.config.fusion_preset``, or one sequence of bools
    per stage); ``ConfigError`` for a bad one."""
    return replace(section, stages=apply_fusion(section.stages, schedule))


def resize(section: HRNetSection, overrides: Mapping) -> HRNetSection:
    """``section`` with an ablation recipe's size overrides (``analysis.ablation.recipes``): ``width`` -> branch k
    of every stage ``width * 2**k`` channels, ``blocks`` -> every branch's units, ``stem`` -> the stem's width,
    ``stage1_blocks`` / ``stage1_planes`` -> layer1. Modules and fusion are kept."""
    stages = []
    for st in section.stages:
        ch = tuple(overrides["width"] * 2**k for k in range(st.branches)) if "width" in overrides else st.channels
        bl = (overrides["blocks"],) * st.branches if "blocks" in overrides else st.blocks
        stages.append(replace(st, channels=ch, blocks=bl))
    stem = StemConfig(overrides["stem"]) if "stem" in overrides else section.stem
    stage1 = Stage1Config(section.stage1.block, overrides.get("stage1_blocks", section.stage1.blocks),
                          overrides.get("stage1_planes", section.stage1.planes))
    return replace(section, stages=tuple(stages), stem=stem, stage1=stage1)


KNOBS = (
    Knob("extra.stage2.num_channels", "int_list", "branch widths of stage 2 (W32: 32, 64); stages 3 and 4 "
                                                  "take their own lists"),
    Knob("extra.stage3.num_channels", "int_list", "branch widths of stage 3 (W32: 32, 64, 128)"),
    Knob("extra.stage4.num_channels", "int_list", "branch widths of stage 4 (W32: 32, 64, 128, 256)"),
    Knob("extra.stage2.num_modules", "int", "exchange modules of stage 2 (1 in every official model)"),
    Knob("extra.stage3.num_modules", "int", "exchange modules of stage 3 (4)"),
    Knob("extra.stage4.num_modules", "int", "exchange modules of stage 4 (3)"),
    Knob("extra.stage3.num_blocks", "int_list", "residual units per branch in each module of stage 3 (4)"),
    Knob("extra.stage3.block", "choice", "BASIC or BOTTLENECK units"),
    Knob("extra.stage3.with_fuse", "bool", "per stage: whether each module ends with the multi-resolution fusion "
                                           "(or a list: one bool per module)"),
    Knob("extra.stage1.num_blocks", "int_list", "layer1's bottleneck units (4)"),
    Knob("extra.stem_channels", "int", "stem width (64 in every official model)"),
)

SPEC = register(NetworkSpec(
    name="hrnet",
    title="HRNet",
    mmpose_type="HRNet",
    section_type=HRNetSection,
    parse=parse,
    dump=dump,
    build=build,
    out_channels=out_channels,
    out_strides=out_strides,
    counts=counts,
    parts=parts,
    knobs=KNOBS,
    fusion_schedule=fusion_schedule,
    with_fusion=with_fusion,
    resize=resize,
))

__all__ = ["KNOBS", "SPEC", "HRNetSection", "build", "counts", "dump", "fusion_schedule",
           "model_config", "out_channels", "out_strides", "parse", "parts", "resize", "section_of", "with_fusion",
           "with_section"]
