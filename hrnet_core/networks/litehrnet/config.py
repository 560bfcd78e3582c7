"""The typed, frozen config section of a Lite-HRNet backbone and its mmpose backbone dict (``parse`` / ``dump``).

The section mirrors mmpose 1.x ``LiteHRNet(extra, in_channels, conv_cfg, norm_cfg, norm_eval, with_cp)``
(``mmpose/models/backbones/litehrnet.py``): ``extra.stem`` (``stem_channels``, ``out_channels``,
``expand_ratio``), ``extra.num_stages``, ``extra.stages_spec`` (one entry per stage in each of ``num_modules``,
``num_branches``, ``num_blocks``, ``module_type``, ``with_fuse``, ``reduce_ratios``, ``num_channels``) and
``extra.with_head``.

Every field is checked once, in ``LiteHRNetSection.__post_init__``, with field paths relative to the backbone
dict (``extra.stages_spec.num_channels[1]``); ``parse(mapping, field)`` prefixes them with ``field``. Besides the
ranges of each value, the checks refuse what mmpose would only fail on at build or forward time: channels the
stem, a conditional channel weighting or a shuffle unit cannot halve (``chunk(2)`` + ``channel_shuffle(x, 2)``),
a weighting squeezed to zero channels, a one-branch LITE stage (mmpose's ``LiteHRModule.forward`` hands the
first weighting block a tensor instead of a list), and lists of a length other than ``num_stages`` /
``num_branches`` (mmpose silently ignores extra entries).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from dataclasses import field as dc_field

from ...budget import MAX_CONV_LAYERS, MAX_PARAMS
from ...config import MAX_BLOCKS, MAX_CHANNELS, MAX_MODULES, MAX_STAGES, ConfigError, one_of, positive_int
from ...errors import quote
from .counts import SW_RATIO, conv_layers, param_count

MMPOSE_TYPE = "LiteHRNet"
MODULE_TYPES = ("LITE", "NAIVE")
NORM_TYPES = ("BN", "SyncBN")
MAX_BRANCHES = 6  # 1/4 .. 1/128 of the input
MAX_EXPAND_RATIO = 16
# Lite-HRNet's convolutions are small (depthwise, 1x1) but each one costs the builder about as much as an
# HRNet one; Lite-HRNet-30 has about 500.
MAX_CONVS = 2 * MAX_CONV_LAYERS

TOP_KEYS = ("type", "in_channels", "extra", "conv_cfg", "norm_cfg", "norm_eval", "with_cp", "frozen_stages",
            "init_cfg")
EXTRA_KEYS = ("stem", "num_stages", "stages_spec", "with_head")
STEM_KEYS = ("stem_channels", "out_channels", "expand_ratio")
SPEC_KEYS = ("num_modules", "num_branches", "num_blocks", "module_type", "with_fuse", "reduce_ratios", "num_channels")
NORM_KEYS = ("type", "requires_grad", "eps", "momentum")


@dataclass(frozen=True)
class StemSpec:
    """``extra.stem``: a stride-2 3x3 conv to ``stem_channels``, then a ShuffleNet-v2 style stride-2 unit whose two
    halves (``stem_channels // 2`` each) are concatenated to ``out_channels`` and shuffled; its expanding branch
    is ``int(round(stem_channels * expand_ratio))`` wide."""

    stem_channels: int = 32
    out_channels: int = 32
    expand_ratio: int | float = 1

    @property
    def mid_channels(self) -> int:
        return int(round(self.stem_channels * self.expand_ratio))


@dataclass(frozen=True)
class StagesSpec:
    """``extra.stages_spec``: one entry per stage in every tuple (``num_channels[s]``: one width per branch).

    ``with_fuse[s]``: mmpose's bool for every module of stage ``s``, or (this project's extension, for the
    paper's per-module fusion ablation) a tuple of one bool per module; ``fuses(s, m)`` reads either."""

    num_modules: tuple[int, ...]
    num_branches: tuple[int, ...]
    num_blocks: tuple[int, ...]
    module_type: tuple[str, ...]
    with_fuse: tuple[bool | tuple[bool, ...], ...]
    reduce_ratios: tuple[int, ...]
    num_channels: tuple[tuple[int, ...], ...]

    def fuses(self, s: int, m: int) -> bool:
        """Whether module ``m`` of stage ``s`` ends with the multi-resolution fusion."""
        flag = self.with_fuse[s]
        return bool(flag[m]) if isinstance(flag, tuple) else bool(flag)

    def schedule(self) -> tuple[tuple[bool, ...], ...]:
        """Per stage, per module: ``fuses(s, m)`` (the fusion schedule, as HRNet's ``fusion_schedule``)."""
        return tuple(tuple(self.fuses(s, m) for m in range(n)) for s, n in enumerate(self.num_modules))


@dataclass(frozen=True)
class NormSpec:
    """``norm_cfg``: ``BN`` or ``SyncBN`` (both built as ``nn.BatchNorm2d``: same parameters and buffers, and
    SyncBN synchronises statistics only across processes), mmcv's ``requires_grad`` and the layer's ``eps`` /
    ``momentum``."""

    type: str = "BN"
    requires_grad: bool = True
    eps: float = 1e-5
    momentum: float | None = 0.1


@dataclass(frozen=True)
class LiteHRNetSection:
    """A Lite-HRNet backbone (Yu et al. 2021, arXiv 2104.06403), as mmpose's ``LiteHRNet`` arguments.

    ``frozen_stages`` is accepted and stored for configs that carry it (mmpose's ``LiteHRNet`` itself takes no
    such argument); ``init_cfg`` and ``conv_cfg`` (plain ``Conv2d`` only) are accepted by ``parse`` and not
    stored. Raises ``ConfigError`` whose field is relative to the backbone dict.
    """

    stem: StemSpec
    num_stages: int
    stages_spec: StagesSpec
    with_head: bool = True
    in_channels: int = 3
    norm_cfg: NormSpec = dc_field(default_factory=NormSpec)
    norm_eval: bool = False
    with_cp: bool = False
    frozen_stages: int = -1

    def __post_init__(self) -> None:
        if not isinstance(self.stem, StemSpec) or not isinstance(self.stages_spec, StagesSpec) \
                or not isinstance(self.norm_cfg, NormSpec):
            raise ConfigError("", "stem, stages_spec and norm_cfg must be StemSpec, StagesSpec and NormSpec")
        positive_int(self.in_channels, "in_channels", MAX_CHANNELS)
        _check_stem(self.stem)
        positive_int(self.num_stages, "extra.num_stages", MAX_STAGES)
        _check_stages(self.stages_spec, self.num_stages)
        for name in ("with_head", "norm_eval", "with_cp"):
            _check_bool(getattr(self, name), "extra.with_head" if name == "with_head" else name)
        fs = self.frozen_stages
        if isinstance(fs, bool) or not isinstance(fs, int) or not -1 <= fs <= self.num_stages:
            raise ConfigError("frozen_stages", f"must be an integer in -1..{self.num_stages}, got {quote(fs)}")
        _check_norm(self.norm_cfg)
        convs = conv_layers(self)
        if convs > MAX_CONVS:
            raise ConfigError("", f"{convs} convolutions exceed the bound of {MAX_CONVS}; reduce num_modules, "
                                  "num_blocks or num_branches")
        params = param_count(self)
        if params > MAX_PARAMS:
            raise ConfigError("", f"{params / 1e6:.1f}M parameters exceed the bound of {MAX_PARAMS / 1e6:.0f}M; "
                                  "reduce the widths (num_channels)")

    @property
    def stage_channels(self) -> tuple[tuple[int, ...], ...]:
        """The branch widths of every stage (= ``stages_spec.num_channels``)."""
        return self.stages_spec.num_channels

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Channels of the one map the backbone returns: branch 0 of the last stage (the iterative head keeps
        them)."""
        return (self.stages_spec.num_channels[-1][0],)


def _check_bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"must be true or false, got {quote(value)}")
    return value


def _check_stem(stem: StemSpec) -> None:
    p = "extra.stem"
    sc = positive_int(stem.stem_channels, f"{p}.stem_channels", MAX_CHANNELS)
    oc = positive_int(stem.out_channels, f"{p}.out_channels", MAX_CHANNELS)
    if sc % 2:
        raise ConfigError(f"{p}.stem_channels", f"{sc} must be even: the stem splits its channels into two halves")
    er = stem.expand_ratio
    if isinstance(er, bool) or not isinstance(er, (int, float)) or not math.isfinite(er) \
            or not 0 < er <= MAX_EXPAND_RATIO:
        raise ConfigError(f"{p}.expand_ratio", f"must be a number in (0, {MAX_EXPAND_RATIO}], got {quote(er)}")
    mid = stem.mid_channels
    if not 1 <= mid <= MAX_CHANNELS:
        raise ConfigError(f"{p}.expand_ratio", f"{quote(er)} gives int(round({sc} * {quote(er)})) = {mid} expanded "
                                               f"channels; need 1..{MAX_CHANNELS}")
    if oc < sc:
        raise ConfigError(f"{p}.out_channels", f"{oc} must equal stem_channels ({sc}) or exceed it: the stem "
                                               f"concatenates its {sc}-channel branch with out_channels - stem_channels")
    if oc % 2:
        raise ConfigError(f"{p}.out_channels", f"{oc} must be even: the stem ends with a channel shuffle in 2 groups")


def _check_stages(spec: StagesSpec, n: int) -> None:
    p = "extra.stages_spec"
    for key in SPEC_KEYS:
        value = getattr(spec, key)
        if not isinstance(value, tuple):
            raise ConfigError(f"{p}.{key}", f"must be a tuple with one entry per stage, got {type(value).__name__}")
        if len(value) != n:
            raise ConfigError(f"{p}.{key}", f"has {len(value)} entries, num_stages says {n}")
    for s in range(n):
        positive_int(spec.num_modules[s], f"{p}.num_modules[{s}]", MAX_MODULES)
        nb = positive_int(spec.num_branches[s], f"{p}.num_branches[{s}]", MAX_BRANCHES)
        positive_int(spec.num_blocks[s], f"{p}.num_blocks[{s}]", MAX_BLOCKS)
        mt = one_of(spec.module_type[s], MODULE_TYPES, f"{p}.module_type[{s}]", "module_type")
        fuse = spec.with_fuse[s]
        if isinstance(fuse, tuple):
            if len(fuse) != spec.num_modules[s]:
                raise ConfigError(f"{p}.with_fuse[{s}]", f"has {len(fuse)} entries, num_modules[{s}] says "
                                                         f"{spec.num_modules[s]} (a bool for the whole stage, or "
                                                         "one per module)")
            for m, flag in enumerate(fuse):
                _check_bool(flag, f"{p}.with_fuse[{s}][{m}]")
        else:
            _check_bool(fuse, f"{p}.with_fuse[{s}]")
        ratio = positive_int(spec.reduce_ratios[s], f"{p}.reduce_ratios[{s}]", MAX_CHANNELS)
        chans = spec.num_channels[s]
        if not isinstance(chans, tuple):
            raise ConfigError(f"{p}.num_channels[{s}]", f"must be a tuple of widths, got {type(chans).__name__}")
        if len(chans) != nb:
            raise ConfigError(f"{p}.num_channels[{s}]", f"has {len(chans)} entries, num_branches says {nb}")
        for k, c in enumerate(chans):
            positive_int(c, f"{p}.num_channels[{s}][{k}]", MAX_CHANNELS)
            if c % 2:
                what = "conditional channel weighting" if mt == "LITE" else "shuffle unit"
                raise ConfigError(f"{p}.num_channels[{s}][{k}]", f"{c} must be even: each {what} splits the "
                                                                 "channels into two halves and shuffles 2 groups")
            if mt == "LITE" and c // 2 // SW_RATIO < 1:
                raise ConfigError(f"{p}.num_channels[{s}][{k}]", f"{c} is too narrow for a LITE stage: the spatial "
                                                                 f"weighting squeezes {c // 2} channels by {SW_RATIO} "
                                                                 f"to none; need at least {2 * SW_RATIO}")
        if mt == "LITE":
            if nb == 1:
                raise ConfigError(f"{p}.num_branches[{s}]", "a LITE stage needs at least 2 branches (mmpose's "
                                                            "LiteHRModule cannot run one; use NAIVE)")
            total = sum(c // 2 for c in chans)
            if total // ratio < 1:
                raise ConfigError(f"{p}.reduce_ratios[{s}]", f"{ratio} squeezes the {total} cross-resolution "
                                                             "weighting channels to none")


def _check_norm(norm: NormSpec) -> None:
    one_of(norm.type, NORM_TYPES, "norm_cfg.type", "norm type")
    _check_bool(norm.requires_grad, "norm_cfg.requires_grad")
    eps = norm.eps
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or not 0 < eps < 1:
        raise ConfigError("norm_cfg.eps", f"must be a number in (0, 1), got {quote(eps)}")
    m = norm.momentum
    if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m <= 1):
        raise ConfigError("norm_cfg.momentum", f"must be a number in [0, 1] or null, got {quote(m)}")


# --- the mmpose backbone dict ---------------------------------------------------------------------------------


def _mapping(value: object, path: str, keys: tuple[str, ...], required: tuple[str, ...] = ()) -> Mapping:
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"must be a mapping, got {type(value).__name__}")
    for key in value:
        if key not in keys:
            raise ConfigError(path, f"unknown key {quote(key)}; expected {', '.join(keys)}")
    for key in required:
        if key not in value:
            raise ConfigError(f"{path}.{key}", "missing")
    return value


def _seq(value: object, path: str) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConfigError(path, f"must be a list, got {quote(value)}")
    return tuple(value)


def _join(field: str, rel: str) -> str:
    return f"{field}.{rel}" if field and rel else (field or rel)


def parse(mapping: Mapping, field: str = "backbone") -> LiteHRNetSection:
    """The mmpose ``LiteHRNet`` backbone dict (``type`` optional, and then ``LiteHRNet``) -> ``LiteHRNetSection``.

    Raises ``ConfigError`` whose field starts with ``field`` (e.g.
    ``model.backbone.extra.stages_spec.num_channels[1]: has 2 entries, num_branches says 3``)."""
    try:
        return _parse(mapping)
    except ConfigError as err:
        raise ConfigError(_join(field, err.field), err.message) from None


def _parse(mapping: Mapping) -> LiteHRNetSection:
    top = _mapping(mapping, "", TOP_KEYS, ("extra",))
    if "type" in top and top["type"] != MMPOSE_TYPE:
        raise ConfigError("type", f"must be {MMPOSE_TYPE!r} here, got {quote(top['type'])}")
    conv_cfg = top.get("conv_cfg")
    if conv_cfg is not None:
        _mapping(conv_cfg, "conv_cfg", ("type",), ("type",))
        if conv_cfg["type"] not in ("Conv", "Conv2d"):
            raise ConfigError("conv_cfg.type", f"only plain convolutions (Conv2d) are supported, got "
                                               f"{quote(conv_cfg['type'])}")
    extra = _mapping(top["extra"], "extra", EXTRA_KEYS, EXTRA_KEYS)
    stem = _mapping(extra["stem"], "extra.stem", STEM_KEYS, STEM_KEYS)
    spec = _mapping(extra["stages_spec"], "extra.stages_spec", SPEC_KEYS, SPEC_KEYS)
    lists = {}
    for key in SPEC_KEYS:
        lists[key] = _seq(spec[key], f"extra.stages_spec.{key}")
    channels = tuple(_seq(c, f"extra.stages_spec.num_channels[{s}]") for s, c in enumerate(lists["num_channels"]))
    fuse = tuple(tuple(f) if isinstance(f, list) else f for f in lists["with_fuse"])  # per module (extension)
    module_types = tuple(m.upper() if isinstance(m, str) and m.upper() in MODULE_TYPES else m
                         for m in lists["module_type"])  # mmpose compares module_type.upper()
    stages = StagesSpec(num_modules=lists["num_modules"], num_branches=lists["num_branches"],
                        num_blocks=lists["num_blocks"], module_type=module_types, with_fuse=fuse,
                        reduce_ratios=lists["reduce_ratios"], num_channels=channels)
    norm_cfg = top.get("norm_cfg")
    if norm_cfg is None:
        norm = NormSpec()
    else:
        n = _mapping(norm_cfg, "norm_cfg", NORM_KEYS, ("type",))
        norm = NormSpec(type=n["type"], requires_grad=n.get("requires_grad", True), eps=n.get("eps", 1e-5),
                        momentum=n.get("momentum", 0.1))
    return LiteHRNetSection(
        stem=StemSpec(stem_channels=stem["stem_channels"], out_channels=stem["out_channels"],
                      expand_ratio=stem["expand_ratio"]),
        num_stages=extra["num_stages"], stages_spec=stages, with_head=extra["with_head"],
        in_channels=top.get("in_channels", 3), norm_cfg=norm, norm_eval=top.get("norm_eval", False),
        with_cp=top.get("with_cp", False), frozen_stages=top.get("frozen_stages", -1))


def dump(section: LiteHRNetSection) -> dict:
    """The section as an mmpose backbone dict (``type`` included; plain lists, ints, strs, bools):
    ``parse(dump(s)) == s``. ``frozen_stages`` and the norm's ``requires_grad`` / ``eps`` / ``momentum`` appear
    only when they differ from their defaults (mmpose's ``LiteHRNet`` takes no ``frozen_stages``)."""
    sp = section.stages_spec
    norm: dict = {"type": section.norm_cfg.type}
    defaults = NormSpec()
    for key in ("requires_grad", "eps", "momentum"):
        if getattr(section.norm_cfg, key) != getattr(defaults, key):
            norm[key] = getattr(section.norm_cfg, key)
    out = {
        "type": MMPOSE_TYPE,
        "in_channels": section.in_channels,
        "extra": {
            "stem": {"stem_channels": section.stem.stem_channels, "out_channels": section.stem.out_channels,
                     "expand_ratio": section.stem.expand_ratio},
            "num_stages": section.num_stages,
            "stages_spec": {
                "num_modules": list(sp.num_modules), "num_branches": list(sp.num_branches),
                "num_blocks": list(sp.num_blocks), "module_type": list(sp.module_type),
                "with_fuse": [list(f) if isinstance(f, tuple) else f for f in sp.with_fuse],
                "reduce_ratios": list(sp.reduce_ratios),
                "num_channels": [list(c) for c in sp.num_channels],
            },
            "with_head": section.with_head,
        },
        "norm_cfg": norm,
        "norm_eval": section.norm_eval,
        "with_cp": section.with_cp,
    }
    if section.frozen_stages != -1:
        out["frozen_stages"] = section.frozen_stages
    return out


def with_schedule(section: LiteHRNetSection, schedule) -> LiteHRNetSection:
    """A copy with fusion ``schedule`` (per stage, one bool per module); a stage whose modules agree is written
    as mmpose's single bool. Raises ``ConfigError`` for a schedule of the wrong shape."""
    sp = section.stages_spec
    schedule = tuple(tuple(bool(f) for f in row) for row in schedule)
    if tuple(map(len, schedule)) != tuple(sp.num_modules):
        raise ConfigError("fusion", f"a schedule of {list(map(len, schedule))} modules per stage; the network has "
                                    f"{list(sp.num_modules)}")
    flags = tuple(row[0] if len(set(row)) == 1 else row for row in schedule)
    return replace(section, stages_spec=replace(sp, with_fuse=flags))


def with_widths(section: LiteHRNetSection, widths) -> LiteHRNetSection:
    """A copy whose stage ``s`` has the first ``num_branches[s]`` of ``widths`` as its branch widths (every
    published Lite-HRNet uses prefixes of one list, e.g. 40, 80, 160, 320)."""
    widths = tuple(widths)
    need = max(section.stages_spec.num_branches)
    if len(widths) < need:
        raise ConfigError("extra.stages_spec.num_channels", f"{len(widths)} widths for {need} branches")
    chans = tuple(widths[:nb] for nb in section.stages_spec.num_branches)
    return replace(section, stages_spec=replace(section.stages_spec, num_channels=chans))


def _preset(num_modules: tuple[int, ...]) -> LiteHRNetSection:
    return LiteHRNetSection(
        stem=StemSpec(32, 32, 1), num_stages=3,
        stages_spec=StagesSpec(num_modules=num_modules, num_branches=(2, 3, 4), num_blocks=(2, 2, 2),
                               module_type=("LITE",) * 3, with_fuse=(True,) * 3, reduce_ratios=(8, 8, 8),
                               num_channels=((40, 80), (40, 80, 160), (40, 80, 160, 320))),
        with_head=True)


def lite_hrnet_18() -> LiteHRNetSection:
    """Lite-HRNet-18 as mmpose's ``td-hm_litehrnet-18_8xb64-210e_coco-256x192.py`` configures it."""
    return _preset((2, 4, 2))


def lite_hrnet_30() -> LiteHRNetSection:
    """Lite-HRNet-30 (mmpose ``td-hm_litehrnet-30_8xb64-210e_coco-256x192.py``: 3, 8, 3 modules)."""
    return _preset((3, 8, 3))


__all__ = ["LiteHRNetSection", "MODULE_TYPES", "NORM_TYPES", "NormSpec", "StagesSpec", "StemSpec", "dump",
           "lite_hrnet_18", "lite_hrnet_30", "parse", "with_widths"]
