"""The concise YAML of a model of a registered network other than the classic HRNet::

    arch: litehrnet          # a registered network (hrnet_core.networks.network_names()); default hrnet
    family: pose             # the task
    input_size: [256, 192]   # H, W
    backbone:                # the network's mmpose backbone dict, as in mmpose's config (``type`` may be left out)
      in_channels: 3
      extra: {...}
    head: {outputs: 17}      # the heatmap head (final 1x1 conv on the last map); ``head: none``: headless
    name: litehrnet_18_256x192
    description: ...

Read by ``parse_network_concise`` (field-path errors), written by ``dump_network_concise``; the classic HRNet keeps
its own schema (``hrnet_core.concise_yaml``), so configs without ``arch`` read as before.
"""

from __future__ import annotations

from collections.abc import Mapping

import yaml

from ..config import ConfigError, HeadConfig, check_kernel, positive_int
from ..errors import quote
from ..fields import as_mapping, hw_pair
from .model_config import NetworkConfig
from .registry import CLASSIC, network_names, network_spec

TOP_KEYS = {"arch", "family", "input_size", "backbone", "head", "name", "description"}
HEAD_KEYS = {"kind", "outputs", "final_conv_kernel"}


def parse_head(raw, path: str = "head") -> HeadConfig | None:
    """The heatmap head of a network config: ``{outputs: K, final_conv_kernel: 1}``, or None for ``none``."""
    if raw in (None, "none"):
        return None
    h = as_mapping(raw, path)
    unknown = sorted(set(map(str, h)) - HEAD_KEYS)
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}", f"unknown key; allowed: {', '.join(sorted(HEAD_KEYS))}")
    kind = h.get("kind", "v1")
    if kind not in ("v1", "heatmap"):
        raise ConfigError(f"{path}.kind", f"these networks take the heatmap head (v1), got {quote(kind)}")
    return HeadConfig(kind="v1", outputs=positive_int(h.get("outputs", 17), f"{path}.outputs", 100_000),
                      final_conv_kernel=check_kernel(h.get("final_conv_kernel", 1), f"{path}.final_conv_kernel"))


def parse_backbone(arch: str, raw, path: str = "backbone"):
    """The typed section of network ``arch`` from its mmpose backbone dict (``type``, if given, must match)."""
    spec = network_spec(arch)
    bb = dict(as_mapping(raw, path, required=True))
    given = bb.pop("type", spec.mmpose_type)
    if given != spec.mmpose_type:
        raise ConfigError(f"{path}.type", f"{quote(given)} is not the backbone of arch {arch!r} "
                          f"(expected {spec.mmpose_type!r})")
    return spec.parse(bb, path)


def parse_network_concise(data: Mapping, name: str = "network") -> NetworkConfig:
    """A ``NetworkConfig`` from the concise mapping (``arch`` other than ``hrnet``). Raises ``ConfigError``."""
    unknown = sorted(set(map(str, data)) - TOP_KEYS)
    if unknown:
        raise ConfigError(unknown[0], f"unknown key for arch {data.get('arch')!r}; allowed: {', '.join(sorted(TOP_KEYS))}")
    arch = data["arch"]
    if not isinstance(arch, str) or arch not in network_names() or arch == CLASSIC:
        known = tuple(dict.fromkeys((CLASSIC, *network_names())))  # the classic HRNet reads through concise_yaml
        raise ConfigError("arch", f"unknown network {quote(arch)}; expected one of {', '.join(known)}")
    input_hw = hw_pair(data["input_size"], "input_size", "hw") if "input_size" in data else (256, 192)
    return NetworkConfig(arch=arch, backbone=parse_backbone(arch, data.get("backbone"), "backbone"),
                         head=parse_head(data.get("head", {}), "head"), family=data.get("family", "pose"),
                         input_hw=input_hw, name=data.get("name", name), description=data.get("description", ""))


def to_network_dict(cfg: NetworkConfig) -> dict:
    """``cfg`` as the concise mapping (``parse_network_concise(to_network_dict(c)) == c``)."""
    out = {"name": cfg.name, "arch": cfg.arch, "family": cfg.family, "input_size": list(cfg.input_hw),
           "backbone": cfg.spec.dump(cfg.backbone)}
    out["head"] = "none" if cfg.head is None else {"outputs": cfg.head.outputs,
                                                   "final_conv_kernel": cfg.head.final_conv_kernel}
    if cfg.description:
        out["description"] = cfg.description
    return out


def dump_network_concise(cfg: NetworkConfig) -> str:
    """``cfg`` as concise YAML text."""
    return yaml.safe_dump(to_network_dict(cfg), sort_keys=False, default_flow_style=None, width=110)


__all__ = ["dump_network_concise", "parse_backbone", "parse_head", "parse_network_concise", "to_network_dict"]
