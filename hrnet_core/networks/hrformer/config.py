"""The typed config section of HRFormer: the mmpose ``HRFormer`` backbone dict, parsed and validated once.

Source: mmpose 1.x ``mmpose/models/backbones/hrformer.py`` (``HRFormer.__init__``, ``_make_stage``) on top of
``hrnet.py`` (``HRNet.__init__``: which keys are read and their defaults), commit
``759b39c13fea6ba094afc1fa932f51dc1b11cbf9``. The section mirrors the backbone dict::

    backbone=dict(type='HRFormer', in_channels=3, norm_cfg=dict(type='SyncBN', requires_grad=True),
                  extra=dict(drop_path_rate=0.1, with_rpe=True,
                             stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK',
                                         num_blocks=(2,), num_channels=(64,)),
                             stage2=dict(num_modules=1, num_branches=2, block='HRFORMERBLOCK',
                                         num_blocks=(2, 2), num_channels=(32, 64), num_heads=[1, 2],
                                         mlp_ratios=[4, 4], window_sizes=[7, 7]),
                             stage3=..., stage4=...))

What mmpose reads (and so what is accepted here):

- top level: ``in_channels`` (3), ``norm_cfg`` (``BN``; ``SyncBN`` builds the same state_dict and is plain
  batch norm in eval, so it builds ``BatchNorm2d`` here), ``transformer_norm_cfg`` (``LN`` with eps 1e-6;
  a given ``dict(type='LN')`` without ``eps`` means PyTorch's 1e-5), ``extra``; ``init_cfg`` is accepted and
  dropped (it only names pretrained weights); ``conv_cfg`` / ``with_cp`` / ``norm_eval`` /
  ``zero_init_residual`` / ``frozen_stages`` are accepted at mmpose's defaults only (they change training,
  not the network);
- ``extra``: ``drop_path_rate`` (required: mmpose indexes it), ``with_rpe`` (True), ``with_pad_mask`` (False),
  ``upsample`` (``dict(mode='bilinear', align_corners=False)``: HRFormer's default, unlike HRNet's nearest),
  ``stage1`` .. ``stage4``;
- ``stage1``: only ``block`` (must be ``BOTTLENECK``: mmpose's ``_make_layer`` cannot build an HRFormer
  block), ``num_blocks[0]`` and ``num_channels[0]``; ``num_modules`` / ``num_branches`` are not read (accepted
  as 1), and the ``num_heads`` / ``mlp_ratios`` / ``num_mlp_ratios`` / ``window_sizes`` the official configs
  carry there are not read either (kept in ``unused`` so ``dump`` gives the dict back);
- ``stage2`` .. ``stage4``: ``num_modules``, ``num_branches``, ``block`` (must be ``HRFORMERBLOCK``: mmpose's
  ``HRFomerModule`` passes attention arguments that a Bottleneck refuses), ``num_blocks``, ``num_channels``,
  ``num_heads``, ``mlp_ratios``, ``window_sizes`` (all required); ``multiscale_output`` is read for stage 4
  only (default False: one output map); stages 2 and 3 always return every branch, so there only ``true`` is
  accepted. ``drop_path_rates`` (which mmpose writes into the dict itself) is ignored;
- ``with_fuse`` in ``stage2`` .. ``stage4`` (this project's extension for the fusion ablation, named after
  Lite-HRNet's ``stages_spec.with_fuse``; no mmpose config has it, mmpose's ``HRFomerModule`` always fuses): a
  bool for every module of the stage or a list of one bool per module, default true. A module without fusion
  builds no ``fuse_layers`` and passes each branch's map on unexchanged (no ReLU), as Lite-HRNet's
  ``LiteHRModule`` with ``with_fuse=False`` and the classic HRNet's ``fuse=False``; the last module of stage 4
  without ``multiscale_output`` then returns branch 0's map alone (the official Lite-HRNet code's
  ``out = [out[0]]``). ``dump`` writes the key only where a module does not fuse.

Quirks kept: the stochastic-depth rates are ``linspace(0, drop_path_rate, sum of num_blocks[0] * num_modules
over stages 2..4)`` and every branch of a module takes branch 0's rates block by block, so a branch cannot
have more blocks than branch 0 (mmpose fails with an IndexError; refused here).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ...config import MAX_BLOCKS, MAX_CHANNELS, MAX_MODULES, ConfigError, one_of, positive_int
from ...errors import quote

MAX_BRANCHES = 4  # 1/4 .. 1/32, the HRNet layout
MAX_WINDOW = 64  # tokens per window side; attention cost grows with its fourth power
MAX_MLP_RATIO = 16.0
NORM_TYPES = ("BN", "SyncBN")
UPSAMPLE_MODES = ("bilinear", "nearest")
STAGE1_BLOCKS = ("BOTTLENECK",)
STAGE_BLOCKS = ("HRFORMERBLOCK",)
STAGE1_UNUSED = ("num_heads", "mlp_ratios", "num_mlp_ratios", "window_sizes")
BOTTLENECK_EXPANSION = 4
STEM_CHANNELS = 64  # mmpose HRNet's stem is hard-coded to 64 channels
DEFAULT_LN_EPS = 1e-6
TORCH_LN_EPS = 1e-5
# Top-level HRFormer arguments that change training only, accepted at mmpose's default value.
DEFAULT_ONLY = {"conv_cfg": None, "with_cp": False, "norm_eval": False, "zero_init_residual": False,
                "frozen_stages": -1}


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _mapping(value: object, field: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise ConfigError(field, f"must be a mapping, got {quote(value)}")
    return value


def _no_unknown(mapping: Mapping, allowed, field: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise ConfigError(_join(field, str(key)), f"unknown key; expected one of {', '.join(allowed)}")


def _required(mapping: Mapping, key: str, field: str):
    if key not in mapping:
        raise ConfigError(_join(field, key), "is required")
    return mapping[key]


def _bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field, f"must be true or false, got {quote(value)}")
    return value


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(field, f"must be a number, got {quote(value)}")
    return value


def _list(value: object, field: str) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConfigError(field, f"must be a list, got {quote(value)}")
    if len(value) > 64:
        raise ConfigError(field, f"has {len(value)} entries; at most 64")
    return tuple(value)


def _check_len(values: tuple, n: int, field: str) -> None:
    if len(values) != n:
        raise ConfigError(field, f"has {len(values)} entries but num_branches is {n}")


def _relabel(err: ConfigError, prefix: str) -> ConfigError:
    return ConfigError(_join(prefix, err.field), err.message)


@dataclass(frozen=True)
class NormConfig:
    """``norm_cfg``: ``BN`` or ``SyncBN`` (both build ``BatchNorm2d`` here: same state_dict, same eval numbers;
    eps 1e-5, momentum 0.1 as mmcv leaves them); ``requires_grad`` False freezes every BatchNorm's affine."""

    type: str = "BN"
    requires_grad: bool = True

    def __post_init__(self) -> None:
        one_of(self.type, NORM_TYPES, "type", "norm type")
        _bool(self.requires_grad, "requires_grad")


@dataclass(frozen=True)
class UpsampleConfig:
    """``extra.upsample``: the fusion layers' ``nn.Upsample(scale_factor=2**(j-i), mode, align_corners)``.
    HRFormer's default is bilinear with ``align_corners=False``; ``nearest`` takes ``align_corners=None``."""

    mode: str = "bilinear"
    align_corners: bool | None = False

    def __post_init__(self) -> None:
        one_of(self.mode, UPSAMPLE_MODES, "mode", "mode")
        if self.mode == "nearest":
            if self.align_corners is not None:
                raise ConfigError("align_corners", f"must be null for mode 'nearest' (PyTorch refuses it), "
                                  f"got {quote(self.align_corners)}")
        else:
            _bool(self.align_corners, "align_corners")


@dataclass(frozen=True)
class Stage1Config:
    """``extra.stage1``: layer1, ``num_blocks[0]`` mmpose Bottlenecks of ``num_channels[0]`` planes
    (``4 * num_channels[0]`` output channels) at 1/4 resolution. ``unused``: the keys mmpose carries but
    never reads (``num_heads`` ... in the official configs), as ``(key, values)`` pairs, kept for ``dump``."""

    num_blocks: tuple[int, ...] = (2,)
    num_channels: tuple[int, ...] = (64,)
    block: str = "BOTTLENECK"
    num_modules: int = 1
    num_branches: int = 1
    unused: tuple[tuple[str, tuple], ...] = ()

    def __post_init__(self) -> None:
        one_of(self.block, STAGE1_BLOCKS, "block", "stage-1 block")
        for name in ("num_modules", "num_branches"):
            if type(getattr(self, name)) is not int or getattr(self, name) != 1:
                raise ConfigError(name, f"must be 1 (mmpose builds one branch of one layer1 and does not read "
                                  f"it), got {quote(getattr(self, name))}")
        for name, upper in (("num_blocks", MAX_BLOCKS), ("num_channels", MAX_CHANNELS)):
            values = getattr(self, name)
            if not isinstance(values, tuple):
                raise ConfigError(name, "must be a tuple")
            _check_len(values, 1, name)
            positive_int(values[0], f"{name}[0]", upper)
        if not isinstance(self.unused, tuple):
            raise ConfigError("", "unused must be a tuple of (key, values) pairs")
        for key, values in self.unused:
            if key not in STAGE1_UNUSED or not isinstance(values, tuple):
                raise ConfigError(str(key), f"unknown key; expected one of num_modules, num_branches, block, "
                                  f"num_blocks, num_channels, {', '.join(STAGE1_UNUSED)}")
            for i, v in enumerate(values):
                if _number(v, f"{key}[{i}]") <= 0:
                    raise ConfigError(f"{key}[{i}]", f"must be positive, got {quote(v)}")

    @property
    def out_channels(self) -> int:
        return self.num_channels[0] * BOTTLENECK_EXPANSION


@dataclass(frozen=True)
class StageConfig:
    """``extra.stage2`` .. ``stage4``: ``num_modules`` HRFormer modules over ``num_branches`` branches; branch
    b (1/4 * 2**-b resolution) has ``num_blocks[b]`` HRFormer blocks of ``num_channels[b]`` channels,
    ``num_heads[b]`` heads over ``window_sizes[b]`` x ``window_sizes[b]`` windows and an FFN of
    ``int(num_channels[b] * mlp_ratios[b])`` hidden channels. ``multiscale_output``: whether the last module
    fuses into (and returns) every branch or branch 0 only -- read by mmpose for stage 4 only."""

    num_modules: int
    num_branches: int
    num_blocks: tuple[int, ...]
    num_channels: tuple[int, ...]
    num_heads: tuple[int, ...]
    mlp_ratios: tuple[float, ...]
    window_sizes: tuple[int, ...]
    block: str = "HRFORMERBLOCK"
    multiscale_output: bool = True
    with_fuse: bool | tuple[bool, ...] = True

    def __post_init__(self) -> None:
        positive_int(self.num_modules, "num_modules", MAX_MODULES)
        if isinstance(self.with_fuse, tuple):
            if len(self.with_fuse) != self.num_modules:
                raise ConfigError("with_fuse", f"has {len(self.with_fuse)} entries but num_modules is "
                                  f"{self.num_modules} (a bool for the whole stage, or one per module)")
            for m, flag in enumerate(self.with_fuse):
                _bool(flag, f"with_fuse[{m}]")
        else:
            _bool(self.with_fuse, "with_fuse")
        positive_int(self.num_branches, "num_branches", MAX_BRANCHES)
        one_of(self.block, STAGE_BLOCKS, "block", "block")
        n = self.num_branches
        for name in ("num_blocks", "num_channels", "num_heads", "mlp_ratios", "window_sizes"):
            if not isinstance(getattr(self, name), tuple):
                raise ConfigError(name, "must be a tuple")
            _check_len(getattr(self, name), n, name)
        for b in range(n):
            positive_int(self.num_blocks[b], f"num_blocks[{b}]", MAX_BLOCKS)
            positive_int(self.num_channels[b], f"num_channels[{b}]", MAX_CHANNELS)
            positive_int(self.num_heads[b], f"num_heads[{b}]", MAX_CHANNELS)
            positive_int(self.window_sizes[b], f"window_sizes[{b}]", MAX_WINDOW)
            r = _number(self.mlp_ratios[b], f"mlp_ratios[{b}]")
            if not 0 < r <= MAX_MLP_RATIO:
                raise ConfigError(f"mlp_ratios[{b}]", f"must be in (0, {MAX_MLP_RATIO:g}], got {quote(r)}")
            if self.num_channels[b] % self.num_heads[b]:
                raise ConfigError(f"num_heads[{b}]", f"{self.num_channels[b]} channels (num_channels[{b}]) are "
                                  f"not divisible by {self.num_heads[b]} heads")
            if int(self.num_channels[b] * r) < 1:
                raise ConfigError(f"mlp_ratios[{b}]", f"{quote(r)} x {self.num_channels[b]} channels leaves an "
                                  "FFN of no hidden channels")
            if self.num_blocks[b] > self.num_blocks[0]:
                raise ConfigError(f"num_blocks[{b}]", f"{self.num_blocks[b]} blocks exceed branch 0's "
                                  f"{self.num_blocks[0]}: mmpose gives every branch the drop-path rates of "
                                  "branch 0's blocks (it fails with an IndexError)")
        _bool(self.multiscale_output, "multiscale_output")

    def fuses(self, m: int) -> bool:
        """Whether module ``m`` (0-based) ends with the multi-resolution fusion (``with_fuse``)."""
        flag = self.with_fuse
        return bool(flag[m]) if isinstance(flag, tuple) else bool(flag)

    def schedule(self) -> tuple[bool, ...]:
        """``fuses(m)`` for every module of the stage."""
        return tuple(self.fuses(m) for m in range(self.num_modules))

    def out_rows(self, m: int) -> int:
        """How many maps module ``m`` returns: branch 0's alone for the last module without
        ``multiscale_output`` (stages 2 and 3 always have it: ``HRFormerSection`` checks); else every branch's."""
        return 1 if (m == self.num_modules - 1 and not self.multiscale_output) else self.num_branches

    def fused_rows(self, m: int) -> int:
        """How many branches module ``m`` fuses into: none with one branch or without fusion (``fuses(m)``
        False: no ``fuse_layers``); else ``out_rows(m)``."""
        if self.num_branches == 1 or not self.fuses(m):
            return 0
        return self.out_rows(m)

    def hidden(self, b: int) -> int:
        """FFN hidden channels of branch ``b``: ``int(num_channels[b] * mlp_ratios[b])`` as mmpose."""
        return int(self.num_channels[b] * self.mlp_ratios[b])


@dataclass(frozen=True)
class HRFormerSection:
    """The HRFormer backbone (mmpose ``HRFormer``): stem (two stride-2 3x3 convs, 64 channels) -> layer1
    (``stage1``) -> stages 2..4 of HRFormer modules (``stages``), returning the stage-4 maps."""

    stage1: Stage1Config
    stage2: StageConfig
    stage3: StageConfig
    stage4: StageConfig
    drop_path_rate: float = 0.0
    with_rpe: bool = True
    with_pad_mask: bool = False
    upsample: UpsampleConfig = UpsampleConfig()
    in_channels: int = 3
    norm_cfg: NormConfig = NormConfig()
    transformer_norm_eps: float = DEFAULT_LN_EPS

    def __post_init__(self) -> None:
        positive_int(self.in_channels, "in_channels", MAX_CHANNELS)
        for name, cls in (("norm_cfg", NormConfig), ("extra.upsample", UpsampleConfig),
                          ("extra.stage1", Stage1Config)):
            if not isinstance(getattr(self, name.rsplit(".", 1)[-1]), cls):
                raise ConfigError(name, f"must be a {cls.__name__}")
        for s, stage in enumerate(self.stages, start=2):
            if not isinstance(stage, StageConfig):
                raise ConfigError(f"extra.stage{s}", "must be a StageConfig")
            if s < 4 and stage.multiscale_output is not True:
                raise ConfigError(f"extra.stage{s}.multiscale_output", "mmpose reads multiscale_output in stage4 "
                                  "only (stages 2 and 3 always return every branch); only true is accepted")
        pre = (self.stage1.out_channels,)
        for s, stage in enumerate(self.stages, start=2):
            for i in range(min(len(pre), stage.num_branches)):
                if stage.num_channels[i] != pre[i] and i != len(pre) - 1:
                    raise ConfigError(f"extra.stage{s}.num_channels[{i}]", f"{stage.num_channels[i]} differs from "
                                      f"the previous stage's {pre[i]}: mmpose applies that transition to the last "
                                      "branch's map (y_list[-1]), which only works for the last branch")
            pre = stage.num_channels
        rate = _number(self.drop_path_rate, "extra.drop_path_rate")
        if not 0 <= rate < 1:
            raise ConfigError("extra.drop_path_rate", f"must be in [0, 1), got {quote(rate)}")
        _bool(self.with_rpe, "extra.with_rpe")
        _bool(self.with_pad_mask, "extra.with_pad_mask")
        eps = _number(self.transformer_norm_eps, "transformer_norm_cfg.eps")
        if not 0 < eps < 1:
            raise ConfigError("transformer_norm_cfg.eps", f"must be in (0, 1), got {quote(eps)}")

    @property
    def stages(self) -> tuple[StageConfig, StageConfig, StageConfig]:
        return (self.stage2, self.stage3, self.stage4)

    @property
    def out_branches(self) -> int:
        """How many maps the backbone returns (stage 4's branches, or 1 without ``multiscale_output``)."""
        last = self.stage4
        return last.num_branches if last.multiscale_output else 1

    def drop_path_rates(self) -> tuple[tuple[float, ...], ...]:
        """Per stage (2..4), the rates of its ``num_blocks[0] * num_modules`` block slots in order: module m's
        block k takes entry ``m * num_blocks[0] + k`` on every branch. ``linspace(0, drop_path_rate, total)``
        in float32 as mmpose (``torch.linspace(...)[i].item()``), so the rates are bit-identical."""
        import torch

        depths = [st.num_blocks[0] * st.num_modules for st in self.stages]
        dpr = [x.item() for x in torch.linspace(0, self.drop_path_rate, sum(depths), device="cpu")]
        out, start = [], 0
        for d in depths:
            out.append(tuple(dpr[start:start + d]))
            start += d
        return tuple(out)


# ----------------------------------------------------------------------------------------------------- parsing

def _parse_norm(value: object, field: str) -> NormConfig:
    m = _mapping(value, field)
    _no_unknown(m, ("type", "requires_grad"), field)
    try:
        return NormConfig(type=_required(m, "type", ""), requires_grad=m.get("requires_grad", True))
    except ConfigError as err:
        raise _relabel(err, field) from None


def _parse_ln_eps(value: object, field: str) -> float:
    m = _mapping(value, field)
    _no_unknown(m, ("type", "eps", "requires_grad"), field)
    one_of(_required(m, "type", field), ("LN",), _join(field, "type"), "transformer norm type")
    if m.get("requires_grad", True) is not True:
        raise ConfigError(_join(field, "requires_grad"), "only true (the default) is supported")
    return _number(m.get("eps", TORCH_LN_EPS), _join(field, "eps"))


def _parse_upsample(value: object, field: str) -> UpsampleConfig:
    m = _mapping(value, field)
    _no_unknown(m, ("mode", "align_corners"), field)
    try:  # mmpose indexes both keys
        return UpsampleConfig(mode=_required(m, "mode", ""), align_corners=_required(m, "align_corners", ""))
    except ConfigError as err:
        raise _relabel(err, field) from None


def _parse_stage1(value: object, field: str) -> Stage1Config:
    m = _mapping(value, field)
    _no_unknown(m, ("num_modules", "num_branches", "block", "num_blocks", "num_channels") + STAGE1_UNUSED, field)
    try:
        unused = tuple((k, _list(m[k], k)) for k in STAGE1_UNUSED if k in m)
        return Stage1Config(num_blocks=_list(_required(m, "num_blocks", ""), "num_blocks"),
                            num_channels=_list(_required(m, "num_channels", ""), "num_channels"),
                            block=_required(m, "block", ""), num_modules=m.get("num_modules", 1),
                            num_branches=m.get("num_branches", 1), unused=unused)
    except ConfigError as err:
        raise _relabel(err, field) from None


_STAGE_LISTS = ("num_blocks", "num_channels", "num_heads", "mlp_ratios", "window_sizes")


def _parse_stage(value: object, field: str, s: int) -> StageConfig:
    m = _mapping(value, field)
    _no_unknown(m, ("num_modules", "num_branches", "block") + _STAGE_LISTS + ("multiscale_output",
                                                                             "drop_path_rates", "with_fuse"), field)
    try:
        lists = {k: _list(_required(m, k, ""), k) for k in _STAGE_LISTS}
        fuse = m.get("with_fuse", True)
        if isinstance(fuse, (list, tuple)):  # one bool per module (this project's extension)
            fuse = _list(fuse, "with_fuse")
        return StageConfig(num_modules=_required(m, "num_modules", ""), num_branches=_required(m, "num_branches", ""),
                           block=_required(m, "block", ""), multiscale_output=m.get("multiscale_output", s < 4),
                           with_fuse=fuse, **lists)
    except ConfigError as err:
        raise _relabel(err, field) from None


def parse(mapping: Mapping, field: str = "backbone") -> HRFormerSection:
    """The mmpose ``HRFormer`` backbone dict (``type`` optional) -> ``HRFormerSection``; ``ConfigError`` naming
    the offending entry under ``field`` (``backbone.extra.stage3.num_heads[2]``)."""
    m = _mapping(mapping, field)
    _no_unknown(m, ("type", "in_channels", "norm_cfg", "transformer_norm_cfg", "extra", "init_cfg")
                + tuple(DEFAULT_ONLY), field)
    if "type" in m and m["type"] != "HRFormer":
        raise ConfigError(_join(field, "type"), f"must be 'HRFormer', got {quote(m['type'])}")
    for key, default in DEFAULT_ONLY.items():
        if key in m and (m[key] != default or type(m[key]) is not type(default)):
            raise ConfigError(_join(field, key), f"only mmpose's default {default!r} is supported "
                              f"(it changes training, not the network), got {quote(m[key])}")
    extra_field = _join(field, "extra")
    extra = _mapping(_required(m, "extra", field), extra_field)
    _no_unknown(extra, ("drop_path_rate", "with_rpe", "with_pad_mask", "upsample", "stage1", "stage2", "stage3",
                        "stage4"), extra_field)
    kwargs = {
        "stage1": _parse_stage1(_required(extra, "stage1", extra_field), _join(extra_field, "stage1")),
        **{f"stage{s}": _parse_stage(_required(extra, f"stage{s}", extra_field), _join(extra_field, f"stage{s}"), s)
           for s in (2, 3, 4)},
        "drop_path_rate": _required(extra, "drop_path_rate", extra_field),
        "with_rpe": extra.get("with_rpe", True),
        "with_pad_mask": extra.get("with_pad_mask", False),
        "in_channels": m.get("in_channels", 3),
    }
    if "upsample" in extra:
        kwargs["upsample"] = _parse_upsample(extra["upsample"], _join(extra_field, "upsample"))
    if "norm_cfg" in m:
        kwargs["norm_cfg"] = _parse_norm(m["norm_cfg"], _join(field, "norm_cfg"))
    if "transformer_norm_cfg" in m:
        kwargs["transformer_norm_eps"] = _parse_ln_eps(m["transformer_norm_cfg"], _join(field, "transformer_norm_cfg"))
    try:
        return HRFormerSection(**kwargs)
    except ConfigError as err:
        raise _relabel(err, field) from None


def dump(section: HRFormerSection) -> dict:
    """The section as an mmpose ``HRFormer`` backbone dict (``type`` included, plain lists):
    ``parse(dump(s)) == s``; stage 4's ``multiscale_output`` is written out, stages 2/3 never carry it."""
    s1 = section.stage1
    stage1 = {"num_modules": 1, "num_branches": 1, "block": s1.block, "num_blocks": list(s1.num_blocks),
              "num_channels": list(s1.num_channels)}
    stage1.update({k: list(v) for k, v in s1.unused})
    extra: dict = {"drop_path_rate": section.drop_path_rate, "with_rpe": section.with_rpe}
    if section.with_pad_mask:
        extra["with_pad_mask"] = True
    if section.upsample != UpsampleConfig():
        extra["upsample"] = {"mode": section.upsample.mode, "align_corners": section.upsample.align_corners}
    extra["stage1"] = stage1
    for s, st in enumerate(section.stages, start=2):
        d = {"num_modules": st.num_modules, "num_branches": st.num_branches, "block": st.block,
             **{k: list(getattr(st, k)) for k in _STAGE_LISTS}}
        if s == 4:
            d["multiscale_output"] = st.multiscale_output
        if st.with_fuse is not True:
            d["with_fuse"] = list(st.with_fuse) if isinstance(st.with_fuse, tuple) else st.with_fuse
        extra[f"stage{s}"] = d
    out = {"type": "HRFormer", "in_channels": section.in_channels,
           "norm_cfg": {"type": section.norm_cfg.type, "requires_grad": section.norm_cfg.requires_grad}}
    if section.transformer_norm_eps != DEFAULT_LN_EPS:
        out["transformer_norm_cfg"] = {"type": "LN", "eps": section.transformer_norm_eps}
    out["extra"] = extra
    return out


def fusion_schedule(section: HRFormerSection) -> tuple[tuple[bool, ...], ...]:
    """Per stage 2..4, per module: whether it fuses (``StageConfig.fuses``), as HRNet's ``fusion_schedule``."""
    return tuple(st.schedule() for st in section.stages)


def with_schedule(section: HRFormerSection, schedule) -> HRFormerSection:
    """A copy with fusion ``schedule`` (per stage 2..4, one bool per module); a stage whose modules agree is
    written as one bool (``True``: mmpose's own module). Raises ``ConfigError`` (field ``fusion``) for a schedule
    of the wrong shape."""
    from dataclasses import replace

    rows = tuple(tuple(bool(f) for f in row) for row in schedule)
    modules = tuple(st.num_modules for st in section.stages)
    if tuple(map(len, rows)) != modules:
        raise ConfigError("fusion", f"a schedule of {list(map(len, rows))} modules per stage; the network has "
                                    f"{list(modules)}")
    flags = [row[0] if len(set(row)) == 1 else row for row in rows]
    return replace(section, **{f"stage{s}": replace(st, with_fuse=f)
                               for s, st, f in zip((2, 3, 4), section.stages, flags)})


__all__ = ["MAX_BRANCHES", "MAX_MLP_RATIO", "MAX_WINDOW", "HRFormerSection", "NormConfig", "Stage1Config",
           "StageConfig", "UpsampleConfig", "dump", "fusion_schedule", "parse", "with_schedule"]
