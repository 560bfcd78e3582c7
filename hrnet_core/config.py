"""Typed, frozen configuration of an HRNet model.

Everything the builder needs is here, validated once in ``__post_init__``; YAML and dicts are
parsed at the edge (``hrnet_core.official_yaml``, ``hrnet_core.concise_yaml``) and never reach the
constructors. Layout follows Sun et al. 2019 (arXiv 1902.09212), section 3: a stem that reduces the
input to 1/4 resolution, stage 1 (one branch of residual units), then stages 2..4 that each add one
lower-resolution branch (1/8, 1/16, 1/32) and are made of modules (exchange blocks) whose fusion
(exchange unit) can be switched on or off per module (section 4.4 ablation).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from .errors import UserInputError, quote
from .heads.registry import BUILTIN_KINDS, head_kinds, head_spec

BlockName = Literal["BASIC", "BOTTLENECK"]
Family = Literal["pose", "cls", "seg", "face", "det"]
HeadKind = Literal["v1", "v2", "v2p", "cls", "ocr", "higher"]
UpsampleMode = Literal["nearest", "bilinear"]
FusionPreset = Literal["all", "across_stage", "final_only", "none"]

BLOCK_EXPANSION = {"BASIC": 1, "BOTTLENECK": 4}
FAMILIES = ("pose", "cls", "seg", "face", "det")
HEAD_KINDS = BUILTIN_KINDS  # the built-in kinds; hrnet_core.heads.head_kinds() has every registered one
DECONV_KERNELS = (2, 3, 4)  # the kernel sizes the official HigherHRNet ``_get_deconv_cfg`` knows
# HeadConfig fields read by the HigherHRNet head only.
HIGHER_FIELDS = ("tag_per_joint", "with_ae", "deconv_channels", "deconv_kernels", "deconv_blocks", "cat_output")
MAX_DECONVS = 2  # 1/4 -> 1/2 -> 1/1: no prediction above the input resolution
FUSION_PRESETS = ("all", "across_stage", "final_only", "none")
DEFAULT_HEAD = {"pose": "v1", "cls": "cls", "seg": "v2", "face": "v2", "det": "v2p"}

# Bounds that keep a typo (``NUM_MODULES: 400``) from hanging the builder; the parameter bound
# itself is checked in ``hrnet_core.model.check_buildable`` before anything is allocated.
MAX_STAGES = 4
MAX_MODULES = 32
MAX_BLOCKS = 64
MAX_CHANNELS = 4096
MAX_INPUT_SIDE = 8192
MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 2000


class ConfigError(UserInputError):
    """An invalid HRNet configuration; ``field`` names the offending entry (e.g. ``STAGE3.NUM_CHANNELS``)."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


def positive_int(value: object, field: str, upper: int | None = None) -> int:
    """``value`` if it is an int (not a bool, not a float) in 1..``upper``; else ``ConfigError`` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be a positive integer, got {quote(value)}")
    if value <= 0:
        raise ConfigError(field, f"must be a positive integer, got {quote(value)}")
    if upper is not None and value > upper:
        raise ConfigError(field, f"{quote(value)} exceeds the supported maximum {upper}")
    return value


def one_of(value: object, choices, field: str, what: str) -> str:
    """``value`` if it is a string among ``choices``; else ``ConfigError`` naming ``field`` (never a
    ``TypeError``: a list or a mapping is not hashable)."""
    if not isinstance(value, str) or value not in choices:
        expected = " or ".join(choices) if len(choices) == 2 else "one of " + ", ".join(choices)
        raise ConfigError(field, f"unknown {what} {quote(value)}; expected {expected}")
    return value


def check_text(value: object, field: str, limit: int) -> str:
    """``value`` if it is a string of at most ``limit`` characters that is valid UTF-8 text (no NUL, no
    unpaired surrogate); else ``ConfigError`` naming ``field``."""
    if not isinstance(value, str):
        raise ConfigError(field, f"must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise ConfigError(field, f"has {len(value)} characters; at most {limit}")
    if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
        raise ConfigError(field, f"{quote(value)} contains a NUL or an unpaired surrogate: not valid UTF-8 text")
    return value


def check_block(value: object, field: str) -> str:
    """``value`` if it is ``BASIC`` or ``BOTTLENECK``; else ``ConfigError`` naming ``field``."""
    return one_of(value, tuple(BLOCK_EXPANSION), field, "block")  # type: ignore[return-value]


def check_kernel(value: object, field: str) -> int:
    """``value`` if it is the int 1 or 3 (``1.0`` and ``true`` compare equal to 1 but are refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in (1, 3):
        raise ConfigError(field, f"must be 1 or 3, got {quote(value)}")
    return value


@dataclass(frozen=True)
class StemConfig:
    """Two stride-2 3x3 convolutions (input -> 1/4 resolution), as in every official HRNet."""

    channels: int = 64

    def __post_init__(self) -> None:
        positive_int(self.channels, "stem.channels", MAX_CHANNELS)


@dataclass(frozen=True)
class Stage1Config:
    """Stage 1: one branch at 1/4 resolution, ``blocks`` residual units with ``planes`` planes."""

    block: BlockName = "BOTTLENECK"
    blocks: int = 4
    planes: int = 64

    def __post_init__(self) -> None:
        check_block(self.block, "stage1.block")
        positive_int(self.blocks, "stage1.blocks", MAX_BLOCKS)
        positive_int(self.planes, "stage1.planes", MAX_CHANNELS)

    @property
    def out_channels(self) -> int:
        return self.planes * BLOCK_EXPANSION[self.block]


@dataclass(frozen=True)
class StageConfig:
    """A multi-resolution stage (stage 2, 3 or 4): ``modules`` exchange blocks over ``branches``.

    ``blocks[k]`` residual units and ``channels[k]`` planes on branch k (resolution 1/4 * 2**-k);
    ``fuse[m]`` says whether module m ends with a fusion (exchange unit).
    """

    modules: int
    block: BlockName
    blocks: tuple[int, ...]
    channels: tuple[int, ...]
    fuse: tuple[bool, ...] = ()
    name: str = "stage"

    def __post_init__(self) -> None:
        n = self.name.upper()
        positive_int(self.modules, f"{n}.NUM_MODULES", MAX_MODULES)
        check_block(self.block, f"{n}.BLOCK")
        if not isinstance(self.blocks, tuple) or not isinstance(self.channels, tuple):
            raise ConfigError(n, "blocks and channels must be tuples")
        for i, b in enumerate(self.blocks):
            positive_int(b, f"{n}.NUM_BLOCKS[{i}]", MAX_BLOCKS)
        for i, c in enumerate(self.channels):
            positive_int(c, f"{n}.NUM_CHANNELS[{i}]", MAX_CHANNELS)
        if len(self.channels) != len(self.blocks):
            raise ConfigError(
                f"{n}.NUM_CHANNELS",
                f"has {len(self.channels)} entries but NUM_BLOCKS has {len(self.blocks)}",
            )
        if not self.fuse:
            object.__setattr__(self, "fuse", (True,) * self.modules)
        if len(self.fuse) != self.modules or not all(isinstance(f, bool) for f in self.fuse):
            raise ConfigError(
                f"{n}.fusion",
                f"needs one true/false per module ({self.modules}), got {quote(list(self.fuse))}",
            )

    @property
    def branches(self) -> int:
        return len(self.channels)

    @property
    def out_channels(self) -> tuple[int, ...]:
        return tuple(c * BLOCK_EXPANSION[self.block] for c in self.channels)


@dataclass(frozen=True)
class UpsampleConfig:
    """How fusion and V2 heads bring a low-resolution branch up.

    ``nearest``: ``nn.Upsample(scale_factor=2**k)`` (pose, cls: input sides must be multiples of 32).
    ``bilinear``: ``F.interpolate`` to the target size (seg honours ``align_corners``; face uses False).
    """

    mode: UpsampleMode = "nearest"
    align_corners: bool = False

    def __post_init__(self) -> None:
        one_of(self.mode, ("nearest", "bilinear"), "upsample.mode", "mode")
        if not isinstance(self.align_corners, bool):
            raise ConfigError("upsample.align_corners", "must be true or false")


@dataclass(frozen=True)
class HeadConfig:
    """The head on top of the final branches.

    ``v1``: pose heatmaps from the 1/4 branch (HRNetV1). ``v2``: upsample + concat of all branches
    (HRNetV2: segmentation classes or landmark heatmaps). ``v2p``: V2 followed by a feature pyramid of
    ``levels`` maps with ``channels`` each (HRNetV2p, detection). ``cls``: incremental bottlenecks,
    strided downsampling to 1/32, a 2048-d feature and a linear classifier (HRNet-W*-C).
    ``ocr``: HRNet + OCR segmentation head (``seg_hrnet_ocr.py``): ``channels`` is MODEL.OCR.MID_CHANNELS
    (official default 512) and ``key_channels`` MODEL.OCR.KEY_CHANNELS (256).
    ``higher``: HigherHRNet (Cheng et al. 2020, ``pose_higher_hrnet.py``): heatmaps + associative-embedding
    tags from the 1/4 branch, then per deconvolution stage a stride-2 ``ConvTranspose2d`` (``deconv_kernels``,
    ``deconv_channels``) on the features concatenated with the previous prediction (``cat_output``),
    ``deconv_blocks`` BasicBlocks and another prediction at twice the resolution. ``with_ae[i]`` says whether
    prediction i carries tag maps (official ``LOSS.WITH_AE_LOSS``); ``tag_per_joint``: one tag map per joint
    (else one in all) (``MODEL.TAG_PER_JOINT``).
    ``outputs`` is joints, classes or landmarks (unused by ``v2p``).
    """

    kind: HeadKind = "v1"
    outputs: int = 17
    final_conv_kernel: int = 1
    channels: int = 256
    levels: int = 5
    key_channels: int = 256
    tag_per_joint: bool = True
    with_ae: tuple[bool, ...] = (True, False)
    deconv_channels: tuple[int, ...] = (32,)
    deconv_kernels: tuple[int, ...] = (4,)
    deconv_blocks: int = 4
    cat_output: tuple[bool, ...] = (True,)

    def __post_init__(self) -> None:
        one_of(self.kind, head_kinds(), "head.kind", "head")
        positive_int(self.outputs, "head.outputs", 100_000)
        check_kernel(self.final_conv_kernel, "head.final_conv_kernel")
        positive_int(self.channels, "head.channels", MAX_CHANNELS)
        positive_int(self.levels, "head.levels", 8)
        positive_int(self.key_channels, "head.key_channels", MAX_CHANNELS)
        self._check_deconvs()

    def _check_deconvs(self) -> None:
        if not isinstance(self.tag_per_joint, bool):
            raise ConfigError("head.tag_per_joint", f"must be true or false, got {quote(self.tag_per_joint)}")
        for name in ("with_ae", "deconv_channels", "deconv_kernels", "cat_output"):
            if not isinstance(getattr(self, name), tuple):
                raise ConfigError(f"head.{name}", "must be a tuple")
        n = len(self.deconv_channels)
        if n > MAX_DECONVS:
            raise ConfigError("head.deconv_channels", f"{n} deconvolution stages exceed the supported maximum {MAX_DECONVS}")
        for i, c in enumerate(self.deconv_channels):
            positive_int(c, f"head.deconv_channels[{i}]", MAX_CHANNELS)
        for name in ("deconv_kernels", "cat_output"):
            if len(getattr(self, name)) != n:
                raise ConfigError(f"head.{name}", f"needs one entry per deconvolution stage ({n}), "
                                  f"got {len(getattr(self, name))}")
        for i, k in enumerate(self.deconv_kernels):
            if isinstance(k, bool) or k not in DECONV_KERNELS:
                raise ConfigError(f"head.deconv_kernels[{i}]", f"must be 2, 3 or 4, got {quote(k)}")
        for name, flags in (("cat_output", self.cat_output), ("with_ae", self.with_ae)):
            if not all(isinstance(f, bool) for f in flags):
                raise ConfigError(f"head.{name}", f"must be true/false values, got {quote(list(flags))}")
        if len(self.with_ae) != n + 1:
            raise ConfigError("head.with_ae", f"needs one true/false per prediction (1 + {n} deconvolution stages), "
                              f"got {len(self.with_ae)}")
        if isinstance(self.deconv_blocks, bool) or not isinstance(self.deconv_blocks, int) or not \
                0 <= self.deconv_blocks <= MAX_BLOCKS:
            raise ConfigError("head.deconv_blocks", f"must be an integer in 0..{MAX_BLOCKS}, got {quote(self.deconv_blocks)}")

    @property
    def reads_branch0_only(self) -> bool:
        """True for heads built on branch 0 alone (``v1``, ``higher``)."""
        return head_spec(self.kind).reads_branch0

    @property
    def tag_channels(self) -> int:
        """Associative-embedding tag maps of a prediction with tags: one per joint, or one."""
        return self.outputs if self.tag_per_joint else 1

    @property
    def prediction_channels(self) -> tuple[int, ...]:
        """Channels of each HigherHRNet prediction (1/4, then one per deconvolution stage): joints, plus tags
        where ``with_ae`` says so (official ``_make_final_layers``)."""
        return tuple(self.outputs + (self.tag_channels if ae else 0) for ae in self.with_ae)


@dataclass(frozen=True)
class HRNetConfig:
    """A complete HRNet: family (state_dict naming), stem, stage 1, stages 2.., upsampling, head.

    ``input_hw`` is the default input size ``(H, W)`` in pixels.
    Raises ``ConfigError`` naming the field on any inconsistency.
    """

    family: Family
    stages: tuple[StageConfig, ...]
    head: HeadConfig
    input_hw: tuple[int, int] = (256, 192)
    stem: StemConfig = field(default_factory=StemConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    upsample: UpsampleConfig = field(default_factory=UpsampleConfig)
    name: str = "hrnet"
    description: str = ""

    def __post_init__(self) -> None:
        one_of(self.family, FAMILIES, "family", "family")
        check_text(self.name, "name", MAX_NAME_CHARS)
        check_text(self.description, "description", MAX_DESCRIPTION_CHARS)
        if not isinstance(self.stages, tuple) or not all(isinstance(st, StageConfig) for st in self.stages):
            raise ConfigError("stages", "must be a tuple of StageConfig")
        if not self.stages or len(self.stages) > MAX_STAGES - 1:
            raise ConfigError("stages", f"need 1 to {MAX_STAGES - 1} multi-resolution stages, got {len(self.stages)}")
        for i, st in enumerate(self.stages):
            expected = i + 2
            if st.branches != expected:
                raise ConfigError(
                    f"{st.name.upper()}.NUM_BRANCHES",
                    f"stage {i + 2} must have {expected} branches (one more than the stage before), got {st.branches}",
                )
        if len(self.input_hw) != 2:
            raise ConfigError("input_size", "must be [H, W]")
        for side, v in zip("HW", self.input_hw):
            positive_int(v, f"input_size.{side}", MAX_INPUT_SIDE)
        stride = self.min_input_multiple
        if self.upsample.mode == "nearest" and any(v % stride for v in self.input_hw):
            raise ConfigError(
                "input_size",
                f"{self.input_hw[0]}x{self.input_hw[1]} must be a multiple of {stride} in both sides "
                "with nearest (scale-factor) upsampling",
            )
        if self.head.kind == "v2p":
            # The pyramid average-pools the 1/4 map (ceil(side / 4) after the two stride-2 stem convs) by
            # 2**(levels - 1) at most; a smaller map cannot be pooled.
            h4, w4 = (-(-v // 4) for v in self.input_hw)
            k = 2 ** (self.head.levels - 1)
            if h4 < k or w4 < k:
                raise ConfigError("head.levels", f"{self.head.levels} pyramid levels need a 1/4 map of at least "
                                  f"{k}x{k}, got {h4}x{w4}")
        if self.head.kind == "cls" and self.family != "cls":
            raise ConfigError("head.kind", "the classification head needs family 'cls' (its state_dict naming)")
        if self.family == "cls" and self.head.kind != "cls":
            raise ConfigError("head.kind", "family 'cls' uses the classification head")

    # ---- derived views -------------------------------------------------------------------
    @property
    def num_branches(self) -> int:
        return self.stages[-1].branches

    @property
    def fusion_schedule(self) -> tuple[tuple[bool, ...], ...]:
        return tuple(st.fuse for st in self.stages)

    @property
    def stage_modules(self) -> tuple[int, ...]:
        """Modules per stage 2..4 (the shape of ``fusion_schedule``)."""
        return tuple(st.modules for st in self.stages)

    @property
    def num_fusions(self) -> int:
        return sum(sum(st.fuse) for st in self.stages)

    @property
    def num_modules(self) -> int:
        return sum(st.modules for st in self.stages)

    @property
    def min_input_multiple(self) -> int:
        """Stride of the lowest-resolution branch: 1/4 after the stem, halved per added branch."""
        return 2 ** (len(self.stages) + 2)

    def fuse_outputs(self, s: int, m: int) -> int:
        """How many branches module ``m`` of stage index ``s`` (0 = stage 2) fuses into: 0 with its fusion
        off; 1 for the very last module under the V1 and HigherHRNet heads, which read branch 0 only (official
        pose models: ``multi_scale_output=False``); else all of the stage's branches."""
        st = self.stages[s]
        if not st.fuse[m]:
            return 0
        last = s == len(self.stages) - 1 and m == st.modules - 1
        return 1 if (last and self.head.reads_branch0_only) else st.branches

    def with_fusion(self, schedule: str | tuple[tuple[bool, ...], ...] | list) -> HRNetConfig:
        """A copy with another fusion schedule: a preset name or one tuple of bools per stage."""
        return replace(self, stages=apply_fusion(self.stages, schedule))

    def with_input(self, input_hw: tuple[int, int]) -> HRNetConfig:
        """A copy for input ``(H, W)`` pixels; raises ``ConfigError`` if the model cannot take that size."""
        return replace(self, input_hw=(int(input_hw[0]), int(input_hw[1])))

    @property
    def arch(self) -> str:
        """The network (``hrnet_core.networks``): ``hrnet``; its registry view: ``hrnet_core.networks.views``."""
        return "hrnet"


def fusion_preset(stages_modules: tuple[int, ...], preset: str) -> tuple[tuple[bool, ...], ...]:
    """Per-module fusion flags for a preset (paper section 4.4).

    ``all``: every module fuses (8 for modules 1/4/3); ``across_stage``: only the last module of each
    stage (3); ``final_only``: only the very last module (1); ``none``: no module fuses.
    Raises ``ConfigError`` for an unknown name.
    """
    one_of(preset, FUSION_PRESETS, "fusion", "fusion preset")
    out = []
    n = len(stages_modules)
    for s, m in enumerate(stages_modules):
        if preset == "all":
            flags = [True] * m
        elif preset == "none":
            flags = [False] * m
        elif preset == "across_stage":
            flags = [i == m - 1 for i in range(m)]
        else:  # final_only
            flags = [s == n - 1 and i == m - 1 for i in range(m)]
        out.append(tuple(flags))
    return tuple(out)


def apply_fusion(stages: tuple[StageConfig, ...], schedule) -> tuple[StageConfig, ...]:
    """``stages`` with the fusion flags of ``schedule`` (a preset name or one sequence of bools per stage).

    Raises ``ConfigError`` for an unknown preset or a schedule of the wrong length.
    """
    if isinstance(schedule, str):
        flags = fusion_preset(tuple(st.modules for st in stages), schedule)
    else:
        flags = tuple(tuple(f) for f in schedule)
        if len(flags) != len(stages):
            raise ConfigError("fusion", f"needs one list per stage ({len(stages)}), got {len(flags)}")
    return tuple(replace(st, fuse=tuple(f)) for st, f in zip(stages, flags))


def named_fusion(cfg: HRNetConfig) -> str | None:
    """The preset name matching ``cfg``'s schedule, or None for a custom schedule."""
    for name in FUSION_PRESETS:
        if fusion_preset(tuple(st.modules for st in cfg.stages), name) == cfg.fusion_schedule:
            return name
    return None
