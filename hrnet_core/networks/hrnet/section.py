"""``HRNetSection``: the classic HRNet's backbone (Sun et al. 2019, Section 3; the official
``pose_hrnet.py`` / mmpose ``HRNet``) as a network-registry section: stem, stage 1, the multi-resolution stages
and the fusion's upsampling. ``HRNetConfig`` (the whole model: these parts plus the task, the head and the input
size) stays the classic HRNet's model config: its heads (V1 / V2 / V2p / cls / OCR / HigherHRNet) are HRNet's
own. ``section_of`` / ``model_config`` go between the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ...config import (
    ConfigError,
    HeadConfig,
    HRNetConfig,
    Stage1Config,
    StageConfig,
    StemConfig,
    UpsampleConfig,
)

# the V1 head: HRNetV1 reads branch 0, as mmpose's HRNet returns it (``multiscale_output=False``)
BACKBONE_HEAD = HeadConfig(kind="v1", outputs=1)


@dataclass(frozen=True)
class HRNetSection:
    """The backbone of an HRNet. ``stages``: stage 2, 3, ... (branch k at 1/4 * 2**-k of the input); the backbone
    returns stage-last's branch 0 ``(N, C, H/4, W/4)``, C = ``stages[-1].out_channels[0]``, as mmpose's
    ``HRNet`` with ``multiscale_output=False``. Raises ``ConfigError`` as ``HRNetConfig`` does (its checks)."""

    stages: tuple[StageConfig, ...]
    stem: StemConfig = field(default_factory=StemConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    upsample: UpsampleConfig = field(default_factory=UpsampleConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.stages, tuple):
            raise ConfigError("stages", "must be a tuple of StageConfig")
        side = 2 ** (len(self.stages) + 2)  # the smallest input every branch takes
        model_config(self, BACKBONE_HEAD, (side, side))  # HRNetConfig's checks, one place

    @property
    def min_input_multiple(self) -> int:
        """Stride of the lowest-resolution branch."""
        return 2 ** (len(self.stages) + 2)


def section_of(cfg: HRNetConfig) -> HRNetSection:
    """The backbone section of an ``HRNetConfig``."""
    return HRNetSection(stages=cfg.stages, stem=cfg.stem, stage1=cfg.stage1, upsample=cfg.upsample)


def model_config(section: HRNetSection, head: HeadConfig = BACKBONE_HEAD, input_hw: tuple[int, int] = (256, 192),
                 family: str = "pose", name: str = "hrnet") -> HRNetConfig:
    """The ``HRNetConfig`` of ``section`` with ``head`` at ``input_hw`` (H, W). Raises ``ConfigError``."""
    return HRNetConfig(family=family, stages=section.stages, head=head, input_hw=tuple(input_hw), stem=section.stem,
                       stage1=section.stage1, upsample=section.upsample, name=name)


def with_section(cfg: HRNetConfig, section: HRNetSection) -> HRNetConfig:
    """``cfg`` with another backbone (head, task, input size and names kept)."""
    return replace(cfg, stages=section.stages, stem=section.stem, stage1=section.stage1, upsample=section.upsample)


__all__ = ["BACKBONE_HEAD", "HRNetSection", "model_config", "section_of", "with_section"]
