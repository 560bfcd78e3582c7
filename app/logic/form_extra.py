"""The Build form's controls beyond ``app.logic.config_edit.form_values``: the stem, stage 1, the residual unit
of every stage and how low-resolution branches are upsampled; and which head settings a head uses.

``extra_values(cfg)`` gives the controls' values; ``apply_extra(cfg, values)`` returns ``cfg`` with them (a
``ConfigError`` names the field, in the project schema's words). Upsampling mode matters wherever a branch is
brought up (fusion and V2 heads): ``nearest`` needs input sides that are multiples of 32, ``bilinear`` resizes to
the target size; ``align_corners`` only applies to ``bilinear``.
"""

from __future__ import annotations

from dataclasses import replace

from app.logic.config_edit import positive_int
from hrnet_core import ConfigError, HRNetConfig
from hrnet_core.config import BLOCK_EXPANSION, Stage1Config, StemConfig, UpsampleConfig
from hrnet_core.heads import head_spec

BLOCKS = tuple(BLOCK_EXPANSION)  # BASIC, BOTTLENECK
UPSAMPLE_MODES = ("nearest", "bilinear")


def extra_values(cfg: HRNetConfig) -> dict:
    """``stem_channels``, ``stage1_block``, ``stage1_blocks``, ``stage1_planes``, ``stage_block`` (one per
    stage 2..), ``upsample_mode``, ``align_corners`` of ``cfg``."""
    return {
        "stem_channels": cfg.stem.channels,
        "stage1_block": cfg.stage1.block,
        "stage1_blocks": cfg.stage1.blocks,
        "stage1_planes": cfg.stage1.planes,
        "stage_block": [st.block for st in cfg.stages],
        "upsample_mode": cfg.upsample.mode,
        "align_corners": cfg.upsample.align_corners,
    }


def _int(values: dict, key: str, field: str) -> int:
    return positive_int(values[key], field)


def apply_extra(cfg: HRNetConfig, values: dict) -> HRNetConfig:
    """``cfg`` with the values of ``extra_values``' keys present in ``values`` (absent ones are kept)."""
    have = extra_values(cfg)
    merged = {**have, **{k: v for k, v in values.items() if k in have}}
    stem = StemConfig(_int(merged, "stem_channels", "stem.channels"))
    stage1 = Stage1Config(merged["stage1_block"], _int(merged, "stage1_blocks", "stage1.blocks"),
                          _int(merged, "stage1_planes", "stage1.planes"))
    blocks = list(merged["stage_block"])
    if len(blocks) != len(cfg.stages):
        raise ConfigError("stages.block", f"needs one block per stage ({len(cfg.stages)}), got {len(blocks)}")
    stages = tuple(replace(st, block=b) for st, b in zip(cfg.stages, blocks))
    mode = merged["upsample_mode"]
    upsample = UpsampleConfig(mode, bool(merged["align_corners"]) if mode == "bilinear" else False)
    return replace(cfg, stem=stem, stage1=stage1, stages=stages, upsample=upsample)


def head_uses_outputs(cfg: HRNetConfig) -> bool:
    """Whether the form's "Head outputs" control changes ``cfg``'s model: its head kind reads ``outputs``
    (``hrnet_core.heads`` registry; not the V2p pyramid)."""
    return "outputs" in head_spec(cfg.head.kind).fields
