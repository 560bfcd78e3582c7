"""The classic HRNet's backbone as mmpose 1.x writes it (``type='HRNet'``, ``mmpose/models/backbones/hrnet.py``):
the ``extra.stage1..stage4`` dicts, ``extra.upsample``, ``in_channels`` / ``conv_cfg`` / ``norm_cfg``.

``parse_backbone`` translates the stages into the official experiment YAML's ``MODEL.EXTRA`` and reads them with
``official_yaml.parse_official`` (its checks, its errors, renamed back to the mmpose fields:
``model.backbone.extra.stage3.num_channels[1]``); ``extra.stage1`` and ``extra.upsample`` are applied on top.
``dump_backbone`` is its inverse. Two keys go beyond mmpose, for the models this tool builds and mmpose cannot:
``extra.stageK.with_fuse`` (one bool per module, or one for the stage: the fusion ablation's schedules) and
``extra.stem_channels`` (mmpose's stem is 64 wide); ``dump_backbone`` writes them only where they differ.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ...config import (
    ConfigError,
    HRNetConfig,
    Stage1Config,
    StemConfig,
    UpsampleConfig,
    apply_fusion,
    check_block,
    positive_int,
)
from ...errors import quote
from ...fields import check_keys, dict_of, int_list
from ...official_yaml import parse_official

HRNET_KEYS = {"type", "extra", "in_channels", "conv_cfg", "norm_cfg", "norm_eval", "with_cp", "zero_init_residual",
              "frozen_stages", "init_cfg", "pretrained"}
EXTRA_KEYS = {"stage1", "stage2", "stage3", "stage4", "upsample", "stem_channels"}
STAGE_KEYS = {"num_modules", "num_branches", "block", "num_blocks", "num_channels"}
# Beyond mmpose (our HRNet's own knobs, written by ``dump`` only where they differ from mmpose's fixed values):
# per-module fusion flags, spelled as Lite-HRNet's mmpose key, and the stem's width (mmpose: 64).
FUSE_KEY = "with_fuse"
STEM_KEY = "stem_channels"
NORM_TYPES = ("BN", "SyncBN", "BN2d")


def renamer(bb: str, head: str, size: str, kernel: str):
    """Official-YAML / HRNetConfig field names -> the mmpose fields they came from."""
    fixed = {"MODEL.NUM_JOINTS": f"{head}.out_channels", "head.outputs": f"{head}.out_channels",
             "MODEL.IMAGE_SIZE": size, "input_size": size, "input_size.H": size, "input_size.W": size,
             "MODEL.EXTRA.FINAL_CONV_KERNEL": kernel, "head.final_conv_kernel": kernel,
             "stage1.blocks": f"{bb}.extra.stage1.num_blocks[0]", "stage1.planes": f"{bb}.extra.stage1.num_channels[0]",
             "stage1.block": f"{bb}.extra.stage1.block", "MODEL.EXTRA": f"{bb}.extra", "MODEL": bb}
    stage = re.compile(r"^(?:MODEL\.EXTRA\.)?STAGE(\d)(.*)$")

    def rename(field: str) -> str:
        if field in fixed:
            return fixed[field]
        m = stage.match(field)
        if m:
            return f"{bb}.extra.stage{m.group(1)}{m.group(2).lower()}"
        return field

    return rename


def parse_stage1(extra: Mapping, path: str) -> Stage1Config:
    if "stage1" not in extra:
        raise ConfigError(path, "is missing (mmpose's HRNet reads extra['stage1'])")
    raw = dict_of(extra["stage1"], path)
    check_keys(raw, STAGE_KEYS, path)
    for key in ("num_modules", "num_branches"):
        if key in raw and (isinstance(raw[key], bool) or raw[key] != 1):
            raise ConfigError(f"{path}.{key}", f"must be 1 (stage 1 is one layer on one branch), got {quote(raw[key])}")
    if "block" not in raw:
        raise ConfigError(f"{path}.block", "is missing")
    block = check_block(raw["block"], f"{path}.block")
    blocks = int_list(raw.get("num_blocks"), f"{path}.num_blocks")
    planes = int_list(raw.get("num_channels"), f"{path}.num_channels")
    for key, values in (("num_blocks", blocks), ("num_channels", planes)):
        if len(values) != 1:
            raise ConfigError(f"{path}.{key}", f"stage 1 has one branch: one entry, got {len(values)}")
    return Stage1Config(block=block, blocks=blocks[0], planes=planes[0])


def official_stage(raw: Any, k: int, path: str) -> dict:
    """An mmpose ``stageK`` dict as the official YAML's ``STAGEK``."""
    raw = dict_of(raw, path)
    allowed = STAGE_KEYS | {FUSE_KEY} | ({"multiscale_output"} if k == 4 else set())
    check_keys(raw, allowed, path)
    if k == 4 and raw.get("multiscale_output", False) is not False:
        raise ConfigError(f"{path}.multiscale_output", f"{quote(raw['multiscale_output'])}: only False (mmpose's "
                          "default: the last module fuses into branch 0, the one map the heatmap head reads) "
                          "is supported")
    if "block" not in raw:
        raise ConfigError(f"{path}.block", "is missing")
    official = {"BLOCK": raw["block"], "NUM_BLOCKS": raw.get("num_blocks"), "NUM_CHANNELS": raw.get("num_channels")}
    for key in ("num_modules", "num_branches"):
        if key in raw:
            official[key.upper()] = raw[key]
    return official


def parse_upsample(extra: Mapping, path: str) -> UpsampleConfig:
    raw = extra.get("upsample")
    if raw is None:
        return UpsampleConfig("nearest", False)
    raw = dict_of(raw, path)
    check_keys(raw, {"mode", "align_corners"}, path)
    mode = raw.get("mode", "nearest")
    corners = raw.get("align_corners")
    if mode == "nearest":
        if corners not in (None, False):
            raise ConfigError(f"{path}.align_corners", f"must be None with mode 'nearest', got {quote(corners)}")
        return UpsampleConfig("nearest", False)
    if mode == "bilinear":
        if corners is not None and not isinstance(corners, bool):
            raise ConfigError(f"{path}.align_corners", f"must be None, True or False, got {quote(corners)}")
        return UpsampleConfig("bilinear", bool(corners))
    raise ConfigError(f"{path}.mode", f"unknown {quote(mode)}; expected 'nearest' or 'bilinear'")


def check_backbone_keys(bb: Mapping, path: str) -> None:
    check_keys(bb, HRNET_KEYS, path)
    in_channels = bb.get("in_channels", 3)
    if isinstance(in_channels, bool) or in_channels != 3:
        raise ConfigError(f"{path}.in_channels", f"only 3 (RGB) is supported, got {quote(in_channels)}")
    conv = bb.get("conv_cfg")
    if conv is not None and (not isinstance(conv, Mapping) or set(conv) - {"type"} or
                             conv.get("type") not in ("Conv2d", "Conv")):
        raise ConfigError(f"{path}.conv_cfg", f"only None (plain Conv2d) is supported, got {quote(conv)}")
    norm = bb.get("norm_cfg")
    if norm is not None:
        norm = dict_of(norm, f"{path}.norm_cfg")
        check_keys(norm, {"type", "requires_grad", "momentum", "eps"}, f"{path}.norm_cfg")
        if norm.get("type") not in NORM_TYPES:
            raise ConfigError(f"{path}.norm_cfg.type", f"only batch norm ({', '.join(NORM_TYPES)}) is supported, got "
                              f"{quote(norm.get('type'))}")
        if norm.get("eps", 1e-5) != 1e-5:
            raise ConfigError(f"{path}.norm_cfg.eps", f"only 1e-5 (the official BatchNorm2d) is supported, got "
                              f"{quote(norm['eps'])}")


def check_backbone(bb: Mapping, path: str) -> Mapping:
    """The ``extra`` dict of an mmpose HRNet backbone dict ``bb`` (``type`` may be left out), after the checks of
    the keys mmpose's HRNet takes (``in_channels`` 3, plain convs, batch norm). Raises ``ConfigError`` under
    ``path``."""
    check_backbone_keys(bb, path)
    if "extra" not in bb:
        raise ConfigError(f"{path}.extra", "is missing (the stage1..stage4 dicts)")
    extra = dict_of(bb["extra"], f"{path}.extra")
    check_keys(extra, EXTRA_KEYS, f"{path}.extra")
    return extra


def _fuse_flags(raw: Any, modules: int, path: str) -> tuple[bool, ...] | None:
    if not isinstance(raw, Mapping) or FUSE_KEY not in raw:
        return None
    value = raw[FUSE_KEY]
    if isinstance(value, bool):
        return (value,) * modules
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, bool) for v in value):
        raise ConfigError(f"{path}.{FUSE_KEY}", f"must be true/false or one per module, got {quote(value)}")
    if len(value) != modules:
        raise ConfigError(f"{path}.{FUSE_KEY}", f"needs one bool per module ({modules}), got {len(value)}")
    return tuple(value)


def parse_backbone(extra: Mapping, bb_path: str, *, outputs: int | None, kernel: int, kernel_path: str,
                   head_path: str, input_hw: tuple[int, int], size_path: str, name: str) -> HRNetConfig:
    """The ``HRNetConfig`` (family ``pose``, the V1 head with ``outputs`` joints and a ``kernel`` x ``kernel``
    final conv) of a checked ``extra`` dict (``check_backbone``) at input ``input_hw`` (H, W). Raises
    ``ConfigError`` naming the mmpose field (``{bb_path}.extra.stage3.num_channels[1]``, ``{head_path}.out_channels``,
    ``size_path``, ``kernel_path``)."""
    stage1 = parse_stage1(extra, f"{bb_path}.extra.stage1")
    upsample = parse_upsample(extra, f"{bb_path}.extra.upsample")
    official_extra: dict[str, Any] = {"FINAL_CONV_KERNEL": kernel}
    for k in (2, 3, 4):
        key = f"stage{k}"
        if key not in extra:
            raise ConfigError(f"{bb_path}.extra.{key}", "is missing")
        official_extra[f"STAGE{k}"] = official_stage(extra[key], k, f"{bb_path}.extra.{key}")
    official = {"MODEL": {"NAME": "pose_hrnet", "IMAGE_SIZE": [input_hw[1], input_hw[0]], "EXTRA": official_extra}}
    if outputs is None:
        raise ConfigError(f"{head_path}.out_channels", "is missing")
    official["MODEL"]["NUM_JOINTS"] = outputs
    rename = renamer(bb_path, head_path, size_path, kernel_path)
    try:
        cfg = parse_official(official, name)
        cfg = replace(cfg, stage1=stage1, upsample=upsample)
        if STEM_KEY in extra:
            cfg = replace(cfg, stem=StemConfig(positive_int(extra[STEM_KEY], f"{bb_path}.extra.{STEM_KEY}")))
    except ConfigError as err:
        raise ConfigError(rename(err.field), err.message) from None
    flags = [_fuse_flags(extra[f"stage{k}"], st.modules, f"{bb_path}.extra.stage{k}")
             for k, st in zip((2, 3, 4), cfg.stages)]
    if any(f is not None for f in flags):
        cfg = replace(cfg, stages=apply_fusion(cfg.stages, [f or st.fuse for f, st in zip(flags, cfg.stages)]))
    return cfg


def dump_backbone(stem: StemConfig, stage1: Stage1Config, stages, upsample: UpsampleConfig) -> dict:
    """The mmpose HRNet backbone dict (``type`` included; plain lists, ints, strs, bools) of these parts: the
    inverse of ``check_backbone`` + ``parse_backbone``."""
    extra: dict[str, Any] = {"stage1": {"num_modules": 1, "num_branches": 1, "block": stage1.block,
                                        "num_blocks": [stage1.blocks], "num_channels": [stage1.planes]}}
    for k, st in enumerate(stages, start=2):
        d = {"num_modules": st.modules, "num_branches": st.branches, "block": st.block,
             "num_blocks": list(st.blocks), "num_channels": list(st.channels)}
        if not all(st.fuse):
            d[FUSE_KEY] = list(st.fuse)
        extra[f"stage{k}"] = d
    if upsample.mode != "nearest":
        extra["upsample"] = {"mode": upsample.mode, "align_corners": upsample.align_corners}
    if stem.channels != StemConfig().channels:
        extra[STEM_KEY] = stem.channels
    return {"type": "HRNet", "in_channels": 3, "extra": extra}
