"""``NetworkConfig``: a whole model of a registered network other than the classic HRNet (which keeps its own
``HRNetConfig``): the network's typed backbone section, the head, the input size and the names.

Parsed and validated at the edge (concise YAML with ``arch:``, mmpose ``.py`` configs,
``hrnet_core.config_from_mmpose``); constructors never see raw mappings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..config import (
    FAMILIES,
    MAX_DESCRIPTION_CHARS,
    MAX_INPUT_SIDE,
    MAX_NAME_CHARS,
    ConfigError,
    HeadConfig,
    check_text,
    fusion_preset,
    one_of,
    positive_int,
)
from .registry import CLASSIC, network_names, network_spec


@dataclass(frozen=True)
class NetworkConfig:
    """A model of network ``arch`` (``litehrnet``, ``hrformer``, ...).

    ``backbone``: that network's frozen config section (``network_spec(arch).section_type``); ``head``: the
    heatmap head on the backbone's last returned map (mmpose ``HeatmapHead`` with a final 1x1 conv:
    ``HeadConfig(kind="v1", outputs=K)``), or None for a headless model whose forward returns the backbone's
    list of maps in mmpose's order; ``family``: the task (``pose`` ...); ``input_hw``: ``(H, W)`` pixels.
    Raises ``ConfigError`` naming the field.
    """

    arch: str
    backbone: Any
    head: HeadConfig | None = None
    family: str = "pose"
    input_hw: tuple[int, int] = (256, 192)
    name: str = "network"
    description: str = ""

    def __post_init__(self) -> None:
        one_of(self.arch, network_names(), "arch", "network")
        if self.arch == CLASSIC:
            raise ConfigError("arch", "the classic HRNet's model is an HRNetConfig (it takes HRNet's own heads): "
                              "hrnet_core.networks.hrnet.model_config(section, head, input_hw)")
        spec = network_spec(self.arch)
        if not isinstance(self.backbone, spec.section_type):
            raise ConfigError("backbone", f"must be a {spec.section_type.__name__} for arch {self.arch!r}")
        one_of(self.family, FAMILIES, "family", "family")
        if self.head is not None and not isinstance(self.head, HeadConfig):
            raise ConfigError("head", "must be a HeadConfig or None")
        if self.head is not None and self.head.kind != "v1":
            raise ConfigError("head.kind", f"arch {self.arch!r} takes the heatmap head (v1) or none, "
                              f"got {self.head.kind!r}")
        if not isinstance(self.input_hw, tuple) or len(self.input_hw) != 2:
            raise ConfigError("input_size", "must be [H, W]")
        for side, v in zip("HW", self.input_hw):
            positive_int(v, f"input_size.{side}", MAX_INPUT_SIDE)
        check_text(self.name, "name", MAX_NAME_CHARS)
        check_text(self.description, "description", MAX_DESCRIPTION_CHARS)

    @property
    def spec(self):
        """The registered ``NetworkSpec`` of ``arch``."""
        return network_spec(self.arch)

    def _fusion_spec(self):
        spec = self.spec
        if spec.fusion_schedule is None or spec.with_fusion is None:
            raise ConfigError("fusion", f"{spec.title} has no per-module fusion switch (its modules always fuse); "
                              "fusion schedules and the fusion ablation take the networks that have one "
                              "(HRNet, Lite-HRNet, HRFormer)")
        return spec

    @property
    def fusion_schedule(self) -> tuple[tuple[bool, ...], ...]:
        """Per stage, per module: whether it ends with the multi-resolution fusion. Raises ``ConfigError`` for a
        network without a fusion switch."""
        return tuple(tuple(row) for row in self._fusion_spec().fusion_schedule(self.backbone))

    @property
    def stage_modules(self) -> tuple[int, ...]:
        """Modules per exchange stage (the shape of ``fusion_schedule``)."""
        return tuple(map(len, self.fusion_schedule))

    @property
    def num_fusions(self) -> int:
        return sum(sum(row) for row in self.fusion_schedule)

    @property
    def num_modules(self) -> int:
        return sum(self.stage_modules)

    def with_fusion(self, schedule) -> NetworkConfig:
        """A copy with another fusion schedule: a preset name (``all``, ``across_stage``, ``final_only``,
        ``none``: paper section 4.4, as HRNet's) or one tuple of bools per stage. Raises ``ConfigError`` for a
        network without a fusion switch (``NetworkSpec.with_fusion`` None) or a schedule of the wrong shape."""
        spec = self._fusion_spec()
        if isinstance(schedule, str):
            schedule = fusion_preset(self.stage_modules, schedule)
        return replace(self, backbone=spec.with_fusion(self.backbone, schedule))

    def resized(self, overrides) -> NetworkConfig:
        """A copy with an ablation recipe's size overrides (``NetworkSpec.resize``); unchanged without any.
        Raises ``ConfigError`` when the network takes none or the result is invalid."""
        if not overrides:
            return self
        if self.spec.resize is None:
            raise ConfigError("model", f"{self.spec.title} takes no recipe size overrides")
        return replace(self, backbone=self.spec.resize(self.backbone, overrides))

    def with_input(self, input_hw: tuple[int, int]) -> NetworkConfig:
        """A copy for input ``(H, W)`` pixels."""
        return replace(self, input_hw=(int(input_hw[0]), int(input_hw[1])))


def network_label(cfg) -> str:
    """A short name of ``cfg``'s network for headers: ``HRNet-W32`` (the classic HRNet, by its branch-0 width)
    or the registered network's title (``Lite-HRNet``, ``HRFormer``)."""
    if isinstance(cfg, NetworkConfig):
        return cfg.spec.title
    return f"HRNet-W{cfg.stages[0].channels[0]}"


def hrnet_only(cfg, what: str):
    """``cfg`` if it is a classic HRNet (``HRNetConfig``); else ``ConfigError`` (field ``arch``) saying that
    ``what`` (e.g. ``the diagram``) does not take the other networks yet."""
    if isinstance(cfg, NetworkConfig):
        raise ConfigError("arch", f"{what} is not available for arch {cfg.arch} yet (HRNet only); inspect, analyze, "
                          "export and bench/latency.py take every network")
    return cfg


__all__ = ["NetworkConfig", "hrnet_only", "network_label"]
