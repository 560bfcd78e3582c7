"""Any model config through its network's ``NetworkSpec``: the classic HRNet's ``HRNetConfig`` and every other
network's ``NetworkConfig`` alike (``spec_of``, ``backbone_of``, ``resized``), so code above the core asks the
registry once instead of telling the two config types apart."""

from __future__ import annotations

from collections.abc import Mapping

from ..config import HRNetConfig
from . import hrnet
from .model_config import NetworkConfig
from .registry import NetworkSpec


def spec_of(cfg: HRNetConfig | NetworkConfig) -> NetworkSpec:
    """The registered ``NetworkSpec`` of ``cfg``'s network."""
    return hrnet.SPEC if isinstance(cfg, HRNetConfig) else cfg.spec


def backbone_of(cfg: HRNetConfig | NetworkConfig):
    """``cfg``'s backbone as its network's section (``spec_of(cfg).section_type``)."""
    return hrnet.section_of(cfg) if isinstance(cfg, HRNetConfig) else cfg.backbone


def resized(cfg: HRNetConfig | NetworkConfig, overrides: Mapping) -> HRNetConfig | NetworkConfig:
    """``cfg`` with an ablation recipe's size overrides (``width``, ``blocks``, ``stem``, ``stage1_blocks``,
    ``stage1_planes``) mapped onto its section by ``NetworkSpec.resize``; head, task, input size and names kept.
    Raises ``ConfigError`` for a result that is not a valid section."""
    if isinstance(cfg, HRNetConfig):
        return hrnet.with_section(cfg, hrnet.SPEC.resize(hrnet.section_of(cfg), overrides))
    return cfg.resized(overrides)


__all__ = ["backbone_of", "resized", "spec_of"]
