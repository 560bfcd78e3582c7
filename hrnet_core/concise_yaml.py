"""The project's concise YAML schema: read (``parse_concise``) and write (``dump_concise``).

Shorthand form::

    family: pose            # pose | cls | seg | face | det (state_dict naming, defaults)
    input_size: [256, 192]  # H, W
    width: 32               # branch channels 32/64/128/256
    modules: [1, 4, 3]      # modules of stages 2, 3, 4 (default)
    blocks: 4               # residual units per branch: one int, or one per stage
    fusion: all             # all | across_stage | final_only | none | [[true], [false, ...], ...]
    head: {kind: v1, outputs: 17}
    # HigherHRNet: head: {kind: higher, outputs: 17, tag_per_joint: true, with_ae: [true, false],
    #                     deconv_channels: [32], deconv_kernels: [4], deconv_blocks: 4, cat_output: [true]}
    # (defaults: one deconvolution stage as wide as branch 0, kernel 4, 4 blocks, tags on the 1/4 prediction)

Explicit form (what ``dump_concise`` writes): ``stages`` as a list of
``{modules, block, blocks: [...], channels: [...], fusion: [...]}``; ``stage1``, ``stem``, ``upsample``
and ``head`` spelled out. Unknown keys are errors (a typo must not silently build another model).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from .config import (
    DEFAULT_HEAD,
    FAMILIES,
    HIGHER_FIELDS,
    MAX_DESCRIPTION_CHARS,
    MAX_NAME_CHARS,
    ConfigError,
    HeadConfig,
    HRNetConfig,
    Stage1Config,
    StageConfig,
    StemConfig,
    UpsampleConfig,
    apply_fusion,
    check_block,
    check_kernel,
    check_text,
    named_fusion,
    one_of,
    positive_int,
)
from .errors import quote
from .fields import as_mapping, bool_list, boolean, hw_pair, int_list, integer, section
from .heads.registry import head_kinds

TOP_KEYS = {"name", "family", "input_size", "width", "modules", "blocks", "block", "stages", "stage1", "stem",
            "fusion", "upsample", "head", "description"}
DEFAULT_INPUT_HW = {"pose": (256, 192), "cls": (224, 224), "seg": (512, 1024), "face": (256, 256), "det": (512, 512)}
DEFAULT_OUTPUTS = {"pose": 17, "cls": 1000, "seg": 19, "face": 98, "det": 80}
DEFAULT_UPSAMPLE = {
    "pose": UpsampleConfig("nearest", False),
    "cls": UpsampleConfig("nearest", False),
    "seg": UpsampleConfig("bilinear", True),
    "face": UpsampleConfig("bilinear", False),
    "det": UpsampleConfig("bilinear", False),
}


def _check_keys(mapping: Mapping, allowed: set[str], path: str) -> None:
    where = f"{path}." if path else ""
    for key in mapping:
        if not isinstance(key, str):
            raise ConfigError(path or "config", f"keys must be strings, got {quote(key)}")
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(f"{where}{quote(unknown[0], bare=True)}", f"unknown key; allowed: {', '.join(sorted(allowed))}")


def _flags(row: Any, modules: int, path: str) -> tuple[bool, ...]:
    """One true/false per module of a stage: a stage's fusion schedule."""
    if not isinstance(row, list) or len(row) != modules:
        raise ConfigError(path, f"needs one true/false per module ({modules})")
    return tuple(boolean(f, f"{path}[{j}]") for j, f in enumerate(row))


def _explicit_stages(raw: Any) -> tuple[StageConfig, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("stages", "must be a non-empty list of stages")
    stages = []
    for i, st in enumerate(raw):
        path = f"stages[{i}]"
        st = as_mapping(st, path)
        _check_keys(st, {"modules", "block", "blocks", "channels", "fusion"}, path)
        channels = int_list(st.get("channels"), f"{path}.channels")
        if len(channels) != i + 2:
            raise ConfigError(f"{path}.channels", f"stage {i + 2} has {i + 2} branches, got {len(channels)} channels")
        modules = integer(st, "modules", f"{path}.modules", 1)
        blocks_raw = st.get("blocks", 4)
        blocks = (blocks_raw,) * len(channels) if isinstance(blocks_raw, int) and not isinstance(blocks_raw, bool) \
            else int_list(blocks_raw, f"{path}.blocks")
        if len(blocks) != len(channels):
            raise ConfigError(f"{path}.blocks", f"has {len(blocks)} entries for {len(channels)} branches")
        fuse = () if st.get("fusion") is None else _flags(st["fusion"], modules, f"{path}.fusion")
        stages.append(StageConfig(modules, check_block(st.get("block", "BASIC"), f"{path}.block"), blocks, channels,
                                  fuse, name=f"stage{i + 2}"))
    return tuple(stages)


def _shorthand_stages(data: Mapping) -> tuple[StageConfig, ...]:
    if "width" not in data:
        raise ConfigError("width", "is missing (give width, or an explicit stages list)")
    width = integer(data, "width", "width")
    modules = int_list(data.get("modules", [1, 4, 3]), "modules")
    block = check_block(data.get("block", "BASIC"), "block")
    blocks_raw = data.get("blocks", 4)
    if isinstance(blocks_raw, int) and not isinstance(blocks_raw, bool):
        per_stage = (positive_int(blocks_raw, "blocks"),) * len(modules)
    else:
        per_stage = int_list(blocks_raw, "blocks")
        if len(per_stage) != len(modules):
            raise ConfigError("blocks", f"has {len(per_stage)} entries but modules has {len(modules)} stages")
    return tuple(
        StageConfig(m, block, (b,) * (i + 2), tuple(width * 2**k for k in range(i + 2)), name=f"stage{i + 2}")
        for i, (m, b) in enumerate(zip(modules, per_stage))
    )


def _fusion(value: Any, stages: tuple[StageConfig, ...]) -> tuple[StageConfig, ...]:
    if isinstance(value, str):
        return apply_fusion(stages, value)
    if not isinstance(value, list) or len(value) != len(stages):
        raise ConfigError("fusion", f"must be a preset name or one list of true/false per stage ({len(stages)})")
    return apply_fusion(stages, [_flags(row, st.modules, f"fusion[{s}]") for s, (row, st) in enumerate(zip(value, stages))])


HIGHER_KEYS = HIGHER_FIELDS


def _list_or_empty(value: Any, path: str, reader) -> tuple:
    return () if isinstance(value, list) and not value else reader(value, path)


def _higher_fields(h: Mapping, kind: str, stages: tuple[StageConfig, ...]) -> dict:
    """The HigherHRNet head's fields (``HeadConfig`` keyword arguments); refused for the other heads."""
    given = [k for k in HIGHER_KEYS if k in h]
    if kind != "higher":
        if given:
            raise ConfigError(f"head.{given[0]}", f"is a HigherHRNet head setting; head.kind is {quote(kind)}")
        return {}
    channels = _list_or_empty(h.get("deconv_channels", [stages[-1].out_channels[0]]), "head.deconv_channels", int_list)
    n = len(channels)
    blocks = h.get("deconv_blocks", 4)
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 0:
        raise ConfigError("head.deconv_blocks", f"must be a non-negative integer, got {quote(blocks)}")
    return {
        "tag_per_joint": boolean(h.get("tag_per_joint", True), "head.tag_per_joint"),
        "with_ae": bool_list(h.get("with_ae", [True] + [False] * n), "head.with_ae"),
        "deconv_channels": channels,
        "deconv_kernels": _list_or_empty(h.get("deconv_kernels", [4] * n), "head.deconv_kernels", int_list),
        "deconv_blocks": blocks,
        "cat_output": _list_or_empty(h.get("cat_output", [True] * n), "head.cat_output", bool_list),
    }


def parse_concise(data: Mapping, name: str = "hrnet") -> HRNetConfig:
    """An ``HRNetConfig`` from the concise schema (module docstring). Raises ``ConfigError``."""
    _check_keys(data, TOP_KEYS, "")
    family = one_of(data.get("family", "pose"), FAMILIES, "family", "family")
    if "stages" in data:
        clash = sorted({"width", "modules", "blocks", "block"} & set(data))
        if clash:
            raise ConfigError(clash[0], "cannot be combined with an explicit stages list")
        stages = _explicit_stages(data["stages"])
    else:
        stages = _shorthand_stages(data)
    if "fusion" in data:
        if any("fusion" in as_mapping(s, "stages") for s in data.get("stages") or []):
            raise ConfigError("fusion", "give the fusion schedule either at the top or per stage, not both")
        stages = _fusion(data["fusion"], stages)

    stem = data.get("stem", 64)
    if isinstance(stem, Mapping):
        _check_keys(stem, {"channels"}, "stem")
    stem_ch = stem.get("channels", 64) if isinstance(stem, Mapping) else stem
    s1 = section(data, "stage1", "stage1")
    _check_keys(s1, {"block", "blocks", "planes"}, "stage1")
    stage1 = Stage1Config(
        check_block(s1.get("block", "BOTTLENECK"), "stage1.block"),
        integer(s1, "blocks", "stage1.blocks", 4),
        integer(s1, "planes", "stage1.planes", 64),
    )

    up = data.get("upsample", None)
    if up is None:
        upsample = DEFAULT_UPSAMPLE[family]
    else:
        up = {"mode": up} if isinstance(up, str) else as_mapping(up, "upsample")
        _check_keys(up, {"mode", "align_corners"}, "upsample")
        mode = one_of(up.get("mode", "nearest"), ("nearest", "bilinear"), "upsample.mode", "mode")
        upsample = UpsampleConfig(mode, boolean(up.get("align_corners", False), "upsample.align_corners"))

    h = section(data, "head", "head")
    _check_keys(h, {"kind", "outputs", "final_conv_kernel", "channels", "levels", "key_channels", *HIGHER_KEYS}, "head")
    kind = one_of(h.get("kind", DEFAULT_HEAD[family]), head_kinds(), "head.kind", "head")
    head = HeadConfig(
        kind=kind,
        outputs=integer(h, "outputs", "head.outputs", DEFAULT_OUTPUTS[family]),
        final_conv_kernel=check_kernel(h.get("final_conv_kernel", 1), "head.final_conv_kernel"),
        channels=integer(h, "channels", "head.channels", 512 if kind == "ocr" else 256),
        levels=integer(h, "levels", "head.levels", 5),
        key_channels=integer(h, "key_channels", "head.key_channels", 256),
        **_higher_fields(h, kind, stages),
    )
    input_hw = hw_pair(data.get("input_size", DEFAULT_INPUT_HW[family]), "input_size", order="hw")
    cfg_name = data.get("name", name)
    description = data.get("description", "")
    check_text(cfg_name, "name", MAX_NAME_CHARS)
    check_text(description, "description", MAX_DESCRIPTION_CHARS)
    return HRNetConfig(
        family=family,
        stages=stages,
        head=head,
        input_hw=input_hw,
        stem=StemConfig(positive_int(stem_ch, "stem.channels")),
        stage1=stage1,
        upsample=upsample,
        name=cfg_name,
        description=description,
    )


def to_concise_dict(cfg: HRNetConfig) -> dict:
    """The explicit concise form of ``cfg`` as plain Python data (``parse_concise`` inverts it; for another
    network's ``NetworkConfig``: ``hrnet_core.networks.concise.to_network_dict``, and ``load_config`` reads
    either)."""
    if not isinstance(cfg, HRNetConfig):
        from .networks.concise import to_network_dict  # the networks build on this module: imported when used

        return to_network_dict(cfg)
    out: dict[str, Any] = {"name": cfg.name}
    if cfg.description:
        out["description"] = cfg.description
    out |= {
        "family": cfg.family,
        "input_size": list(cfg.input_hw),
        "stem": cfg.stem.channels,
        "stage1": {"block": cfg.stage1.block, "blocks": cfg.stage1.blocks, "planes": cfg.stage1.planes},
        "stages": [
            {"modules": st.modules, "block": st.block, "blocks": list(st.blocks), "channels": list(st.channels)}
            for st in cfg.stages
        ],
        "upsample": {"mode": cfg.upsample.mode, "align_corners": cfg.upsample.align_corners},
        "head": {"kind": cfg.head.kind, "outputs": cfg.head.outputs, "final_conv_kernel": cfg.head.final_conv_kernel},
    }
    if cfg.head.kind == "v2p":
        out["head"].update(channels=cfg.head.channels, levels=cfg.head.levels)
    if cfg.head.kind == "ocr":
        out["head"].update(channels=cfg.head.channels, key_channels=cfg.head.key_channels)
    if cfg.head.kind == "higher":
        hd = cfg.head
        out["head"].update(tag_per_joint=hd.tag_per_joint, with_ae=list(hd.with_ae),
                           deconv_channels=list(hd.deconv_channels), deconv_kernels=list(hd.deconv_kernels),
                           deconv_blocks=hd.deconv_blocks, cat_output=list(hd.cat_output))
    preset = named_fusion(cfg)
    if preset is not None:
        out["fusion"] = preset
    else:
        out["fusion"] = [list(st.fuse) for st in cfg.stages]
    return out


def dump_concise(cfg: HRNetConfig) -> str:
    """``cfg`` as concise YAML text; ``load_config(dump_config(cfg)) == cfg``."""
    return yaml.safe_dump(to_concise_dict(cfg), sort_keys=False, default_flow_style=None)
