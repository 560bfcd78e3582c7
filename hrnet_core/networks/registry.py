"""The network registry: one ``NetworkSpec`` per network (HRNet, Lite-HRNet, HRFormer), registered by the
network's own folder under ``hrnet_core/networks/``.

"Network" is which backbone family builds the multi-resolution features (``arch`` in the concise YAML,
mmpose's backbone ``type``); "task" (pose / cls / seg ...) is what the head predicts. Adding a network = one
folder that defines its typed config section, modules, closed-form counts and parts plan and calls
``register(NetworkSpec(...))``, plus one import line in ``hrnet_core/networks/__init__.py``. Everything else
(``load_config``, mmpose configs, ``build_model``, ``architecture``, the counters, the CLI) looks it up here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass(frozen=True)
class PartPlan:
    """One part of a network's backbone for ``hrnet_core.architecture`` (diagram, feature maps, profiler
    "by part").

    ``key``: stable key (``stem``, ``stage1.module0.branch1``, ``stage1.module0.fuse.0<-1``, ...); ``kind``: one of
    ``stem``, ``layer1``, ``transition``, ``branch``, ``fusion``, ``head`` (the backbone's own final layer,
    e.g. Lite-HRNet's ``head_layer``); ``prefixes``: the module-name prefixes (state_dict names) it owns;
    ``stage``: ``stem``, ``stage1`` .., ``head``; ``module`` / ``branch`` / ``source``: 0-based indices or None;
    ``resolution``: output reduction (4 = 1/4 of the input); ``block``: what the part is made of, for the
    diagram (``BOTTLENECK``, ``CCW`` (conditional channel weighting), ``SHUFFLE``, ``HRFORMER`` ...).
    """

    key: str
    kind: str
    prefixes: tuple[str, ...]
    stage: str
    module: int | None = None
    branch: int | None = None
    source: int | None = None
    resolution: int | None = None
    block: str = ""


@dataclass(frozen=True)
class PartCount:
    """Closed-form counts of one part at one input size, batch 1 (one multiply-accumulate = 1).

    ``params``: parameters the part owns; ``conv_linear_macs``: Conv2d + Linear multiply-accumulates, bias
    excluded, every call counted (the paper convention before dividing by 2**30); ``attention_macs``: the
    window-attention matrix products (``q @ k^T``, ``attn @ v``), not Conv2d/Linear, so their own column;
    ``fvcore_flops``: what ``fvcore.nn.FlopCountAnalysis`` charges this part with its default op handles (conv,
    linear, matmul/bmm/einsum, batch_norm, layer_norm, upsample_nearest2d/bilinear2d, adaptive_avg_pool2d);
    ``activations``: elements written by the part's Conv2d, Linear and matmul outputs (fvcore's
    ``ActivationCountAnalysis`` convention); ``torchstat_flops``: the torchstat "Flops" column behind Lite-HRNet's
    published FLOPs (Conv2d with bias, BatchNorm, ReLU, pooling, ``nn.Upsample``; each leaf module once, at its
    last call: ``hrnet_core.networks.litehrnet.counts``), or None for a network that torchstat cannot count
    (HRFormer: torchstat's Linear rule takes 2-D inputs only, and its Linears run on token tensors).
    """

    key: str
    params: int = 0
    conv_linear_macs: int = 0
    attention_macs: int = 0
    fvcore_flops: int = 0
    activations: int = 0
    torchstat_flops: int | None = None


@dataclass(frozen=True)
class Knob:
    """A design-space knob of a network: a dotted key of its concise section and the kind of value."""

    key: str
    kind: str  # "int", "float", "choice", "bool", "int_list"
    help: str = ""


@dataclass(frozen=True)
class NetworkSpec:
    """A network.

    - ``name``: the ``arch`` value (``hrnet``, ``litehrnet``, ``hrformer``); ``title``: as papers write it;
      ``mmpose_type``: mmpose's backbone ``type`` (``LiteHRNet``, ``HRFormer``);
    - ``parse(mapping, field)``: the mmpose backbone dict (``in_channels``, ``extra``, ``norm_cfg`` ...; ``type``
      already checked) -> the network's frozen config section; raises ``ConfigError`` with a field path under
      ``field`` (e.g. ``backbone.extra.stages_spec.num_channels[1]``);
    - ``dump(section)``: the section as an mmpose backbone dict (``type`` included; plain lists, ints, strs):
      ``parse(dump(s)) == s``;
    - ``build(section)``: the backbone ``nn.Module`` with mmpose's own parameter names; ``forward(x)`` takes
      ``(N, in_channels, H, W)`` and returns the list of maps mmpose returns, in order;
    - ``out_channels(section)`` / ``out_strides(section)``: channels and reduction of each returned map;
    - ``counts(section, input_hw)``: closed-form ``PartCount`` per part (``parts``' keys), no model built;
    - ``parts(section)``: the ``PartPlan`` of the backbone, in forward order;
    - ``knobs``: what a design space may vary;
    - ``infer(shapes)`` (optional): the mmpose backbone dict whose model has a state_dict of ``shapes`` (tensor
      name -> shape, no ``backbone.`` prefix), or None when the names are not this network's; a candidate that
      ``hrnet_core.infer_config`` parses, builds and checks key by key; ``not_in_weights``: the backbone fields
      it cannot read from weights (defaults used);
    - ``fusion_schedule(section)`` / ``with_fusion(section, schedule)`` (optional): the per-stage, per-module
      fusion flags (as HRNet's ``fusion_schedule``) and a copy with others, for the fusion ablation;
    - ``resize(section, overrides)`` (optional): a copy with an ablation recipe's size overrides (``width``,
      ``blocks``, ``stem``, ...; ``analysis.ablation.recipes.apply_model_overrides``).
    """

    name: str
    title: str
    mmpose_type: str
    section_type: type
    parse: Callable[[Mapping, str], Any]
    dump: Callable[[Any], dict]
    build: Callable[[Any], nn.Module]
    out_channels: Callable[[Any], tuple[int, ...]]
    out_strides: Callable[[Any], tuple[int, ...]]
    counts: Callable[[Any, tuple[int, int]], tuple[PartCount, ...]]
    parts: Callable[[Any], tuple[PartPlan, ...]]
    knobs: tuple[Knob, ...] = field(default=())
    infer: Callable[[Mapping[str, tuple]], dict | None] | None = None
    not_in_weights: tuple[str, ...] = ()
    fusion_schedule: Callable[[Any], tuple[tuple[bool, ...], ...]] | None = None
    with_fusion: Callable[[Any, Any], Any] | None = None
    resize: Callable[[Any, Mapping], Any] | None = None


def network_modules(plans) -> tuple[tuple[str, str, int], ...]:
    """``(module-name prefix, stage, module)`` of every exchange module of a parts plan, in forward order. The
    convention every network keeps: module ``M`` of stage ``S`` is the backbone child ``S.M`` (as HRNet's
    ``stage2.0``), and its forward returns the list of per-branch maps after its fusion."""
    return tuple(dict.fromkeys((f"{p.stage}.{p.module}", p.stage, p.module)
                               for p in plans if p.kind in ("branch", "fusion") and p.module is not None))


BUILTIN_NETWORKS = ("hrnet", "litehrnet", "hrformer")
# The classic HRNet: registered like the others (its folder ``hrnet_core.networks.hrnet``), but its models are
# ``HRNetConfig`` s (they take HRNet's own heads: V1 / V2 / V2p / cls / OCR / HigherHRNet), never a ``NetworkConfig``.
CLASSIC = "hrnet"
_SPECS: dict[str, NetworkSpec] = {}


def register(spec: NetworkSpec) -> NetworkSpec:
    """Add (or replace) the network ``spec.name``; returns ``spec``."""
    _SPECS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a network (a test's throwaway network); unknown names are ignored."""
    _SPECS.pop(name, None)


def network_names() -> tuple[str, ...]:
    """Every registered network: the built-in ones first, in ``BUILTIN_NETWORKS`` order."""
    return tuple(n for n in BUILTIN_NETWORKS if n in _SPECS) + tuple(n for n in _SPECS if n not in BUILTIN_NETWORKS)


def network_spec(name: str) -> NetworkSpec:
    """The spec of ``name``; ``KeyError`` naming the known networks if it is not registered."""
    try:
        return _SPECS[name]
    except KeyError:
        raise KeyError(f"arch: unknown {name!r}; expected one of {', '.join(network_names())}") from None


def spec_for_mmpose_type(type_name: str) -> NetworkSpec | None:
    """The network whose mmpose backbone ``type`` is ``type_name``, or None."""
    return next((s for s in _SPECS.values() if s.mmpose_type == type_name), None)


def mmpose_types() -> tuple[str, ...]:
    """Every registered mmpose backbone ``type``, for error messages."""
    return tuple(_SPECS[n].mmpose_type for n in network_names())


__all__ = ["BUILTIN_NETWORKS", "CLASSIC", "Knob", "NetworkSpec", "PartCount", "PartPlan", "mmpose_types", "network_modules", "network_names",
           "network_spec", "register", "spec_for_mmpose_type", "unregister"]
