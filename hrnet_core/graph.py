"""One description of a built HRNet: every part, its state_dict prefix, kind, resolution, shapes and edges.

``architecture(cfg)`` derives it once per config and input size from the model built on PyTorch's meta device
(shapes propagate, nothing is allocated), so it names exactly what ``build_model(cfg)`` holds. Analyses read
module names, branch resolutions and feature-map keys from here instead of spelling them.

Parts, in forward order (``M`` modules, branches and sources 0-based; ``S`` = 2 .. 4):

=====================================  ============  =====================================================
key                                    kind          state_dict prefix (official names)
=====================================  ============  =====================================================
``stem``                               stem          ``conv1``, ``bn1``, ``conv2``, ``bn2``
``layer1``                             layer1        ``layer1``
``transition{S-1}.branch{k}``          transition    ``transition{S-1}.{k}`` (``nn.Identity`` if unchanged)
``stage{S}.module{M}.branch{k}``       branch        ``stage{S}.{M}.branches.{k}`` (residual units)
``stage{S}.module{M}.fuse.{i}<-{j}``   fusion        ``stage{S}.{M}.fuse_layers.{i}.{j}`` (term into i from j)
``head.{child}[.{k}]``                 head          the head's top-level children (``final_layer``, ...)
=====================================  ============  =====================================================

Shapes are ``(N, C, H, W)`` (or ``(N, F)`` for pooled head parts) of the part module's own input and output at
the given input size; a fusion term from a lower resolution (j > i) is upsampled after its module, in the sum.
``resolution`` is the part's output reduction: 4 for 1/4 of the input ... 32 for 1/32 (``None`` when pooled).

Sources: ``PoseHighResolutionNet`` (deep-high-resolution-net.pytorch ``lib/models/pose_hrnet.py``), Sun et al. 2019
section 3; timm ``feature_info`` (``timm/models/hrnet.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from .config import HRNetConfig
from .keys import PART_KINDS, output_key, part_key, split_output_key
from .model import build_on_meta
from .networks.registry import PartPlan, network_modules

STEM_PREFIXES = ("conv1", "bn1", "conv2", "bn2")
# The stem also runs the model's parameter-free top-level ``relu`` (after bn1 and after bn2).
STEM_MODULES = ("conv1", "bn1", "relu", "conv2", "bn2")


@dataclass(frozen=True)
class Part:
    """One part of the built model (see the module table)."""

    key: str
    kind: str
    prefixes: tuple[str, ...]  # state_dict / module-name prefixes of its layers
    stage: str  # "stem", "stage1" (layer1) ... "stage4", "head"
    module: int | None
    branch: int | None  # the branch it works on or fuses into
    source: int | None  # fusion: the branch it reads
    resolution: int | None  # output reduction (4 = 1/4 of the input)
    in_shape: tuple[int, ...] | None
    out_shape: tuple[int, ...] | None
    params: int
    modules: tuple[str, ...] = ()  # module-name prefixes it runs (= prefixes, plus the stem's shared relu)

    @property
    def prefix(self) -> str:
        """The first (for all parts but the stem, the only) prefix."""
        return self.prefixes[0]

    def owns(self, name: str) -> bool:
        """Whether the module or parameter ``name`` (dotted) lies in this part."""
        return any(name == p or name.startswith(p + ".") for p in self.modules or self.prefixes)


@dataclass(frozen=True)
class FeatureMap:
    """One entry of ``HRNet.forward_intermediates``: its key, where it comes from and its shape."""

    key: str
    stage: str
    module: int | None
    branch: int
    resolution: int
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Layer:
    """One leaf layer of a head part, in the order it runs: its module name (= state_dict prefix), the part it
    belongs to, ``op`` (``conv``, ``conv_transpose``, ``batch_norm``, ``relu``, ``linear`` or the lower-case class
    name), shapes, own parameters, and for convolutions ``kernel``, ``stride``, ``padding``, ``groups``, ``bias``."""

    name: str
    part: str
    op: str
    in_shape: tuple[int, ...] | None
    out_shape: tuple[int, ...] | None
    params: int
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    groups: int = 1
    bias: bool = False
    inplace: bool = False


_OPS = {nn.Conv2d: "conv", nn.ConvTranspose2d: "conv_transpose", nn.BatchNorm2d: "batch_norm", nn.ReLU: "relu",
        nn.Linear: "linear"}


def _layer(name: str, part: str, module: nn.Module, shapes) -> Layer:
    op = _OPS.get(type(module), type(module).__name__.lower())
    extra = {}
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        extra = {"kernel": module.kernel_size[0], "stride": module.stride[0], "padding": module.padding[0],
                 "groups": module.groups, "bias": module.bias is not None}
    elif isinstance(module, nn.Linear):
        extra = {"bias": module.bias is not None}
    elif isinstance(module, nn.ReLU):
        extra = {"inplace": module.inplace}
    return Layer(name, part, op, shapes[0], shapes[1], sum(p.numel() for p in module.parameters(recurse=False)),
                 **extra)


@dataclass(frozen=True)
class ArchGraph:
    """The parts of a built model, the edges between them (``(from key, to key)``, in forward order) and the
    per-module output maps, for ``input_hw`` and ``batch``."""

    name: str
    input_hw: tuple[int, int]
    batch: int
    parts: tuple[Part, ...]
    edges: tuple[tuple[str, str], ...]
    maps: tuple[FeatureMap, ...]
    head_layers: tuple[Layer, ...] = ()
    exchange_modules: tuple[tuple[str, str, int], ...] = ()  # (module-name prefix, stage, module) per module

    def exchange_module(self, name: str) -> tuple[str, int] | None:
        """``(stage, module)`` of the exchange module that module ``name`` lies in (its branches, fusion terms or
        the sums and ReLUs the module runs itself), or ``None``."""
        for prefix, stage, module in self.exchange_modules:
            if name == prefix or name.startswith(prefix + "."):
                return stage, module
        return None

    def part(self, key: str) -> Part:
        """The part with ``key``; ``KeyError`` naming it if there is none."""
        for p in self.parts:
            if p.key == key:
                return p
        raise KeyError(f"no part {key!r} in {self.name}")

    def of_kind(self, kind: str) -> tuple[Part, ...]:
        return tuple(p for p in self.parts if p.kind == kind)

    def owner(self, name: str) -> Part | None:
        """The part holding module / parameter ``name`` (longest prefix wins), or ``None`` (e.g. the root)."""
        best, length = None, -1
        for p in self.parts:
            for pre in p.modules or p.prefixes:
                if (name == pre or name.startswith(pre + ".")) and len(pre) > length:
                    best, length = p, len(pre)
        return best

    def feature_info(self) -> list[dict]:
        """timm-style ``feature_info`` of the final branches: ``{'num_chs', 'reduction', 'module'}`` per map that
        ``HRNet.forward_features`` returns (module = the last exchange module's prefix)."""
        last = [m for m in self.maps if m.module is not None]
        if not last:
            return []
        final = [m for m in last if (m.stage, m.module) == (last[-1].stage, last[-1].module)]
        module = f"{final[0].stage}.{final[0].module}"
        return [{"num_chs": m.shape[1], "reduction": m.resolution, "module": module} for m in final]


def _shape(t) -> tuple[int, ...] | None:
    if isinstance(t, torch.Tensor):
        return tuple(t.shape)
    if isinstance(t, (list, tuple)) and t and isinstance(t[0], torch.Tensor):
        return tuple(t[0].shape)
    return None


def _shape_hooks(seen: dict[str, tuple]):
    """``hook(prefix)``: a forward hook that records ``(input shape, output shape, call order)`` of the module at
    ``prefix`` into ``seen`` at its first call."""
    def hook(prefix):
        def _h(module, inputs, output):
            seen.setdefault(prefix, (_shape(inputs[0]) if inputs else None, _shape(output), len(seen)))
        return _h
    return hook


def _own_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _parts_plan(model: nn.Module) -> list[tuple[str, str, tuple[str, ...], int | None, int | None, int | None]]:
    """``(kind, stage, prefixes, module, branch, source)`` in forward order, read from the built model."""
    plan = [("stem", "stem", STEM_PREFIXES, None, None, None), ("layer1", "stage1", ("layer1",), None, 0, None)]
    for s, sname in enumerate(model.stage_names):
        for k in range(len(getattr(model, f"transition{s + 1}"))):
            plan.append(("transition", sname, (f"transition{s + 1}.{k}",), None, k, None))
        for m, mod in enumerate(getattr(model, sname)):
            for k in range(len(mod.branches)):
                plan.append(("branch", sname, (f"{sname}.{m}.branches.{k}",), m, k, None))
            for i, row in enumerate(mod.fuse_layers):
                for j in range(len(row)):
                    plan.append(("fusion", sname, (f"{sname}.{m}.fuse_layers.{i}.{j}",), m, i, j))
    for name, child in model.head_module.named_children():
        if isinstance(child, nn.ModuleList):
            plan += [("head", "head", (f"{name}.{k}",), None, None, None) for k in range(len(child))]
        else:
            plan.append(("head", "head", (name,), None, None, None))
    return plan


@lru_cache(maxsize=64)
def architecture(cfg: HRNetConfig, input_hw: tuple[int, int] | None = None, batch: int = 1) -> ArchGraph:
    """The ``ArchGraph`` of ``cfg``'s model for an input ``(batch, 3, H, W)``, ``input_hw = (H, W)`` (default:
    the config's). Builds the model on the meta device and runs it once there (no memory, milliseconds to a
    second). Raises ``ConfigError`` as ``build_model`` does for a config that cannot be built."""
    if not isinstance(cfg, HRNetConfig):  # another registered network (hrnet_core.networks)
        return _network_architecture(cfg, input_hw, batch)
    h, w = tuple(input_hw or cfg.input_hw)
    model = build_on_meta(cfg).eval()
    modules = dict(model.named_modules())
    plan = _parts_plan(model)
    seen: dict[str, tuple] = {}
    hooks = []
    hook = _shape_hooks(seen)

    for kind, _, prefixes, *_ in plan:
        for p in prefixes:
            hooks.append(modules[p].register_forward_hook(hook(p)))
            if kind == "head":  # every leaf layer of the head, for counters that walk it
                for sub, mod in modules[p].named_modules(prefix=p):
                    if sub != p and not any(True for _ in mod.children()):  # the part itself is hooked above
                        hooks.append(mod.register_forward_hook(hook(sub)))
    try:
        with torch.no_grad():
            maps = model.forward_intermediates(torch.empty(batch, 3, h, w, device="meta"))
            model.head_module(model.forward_features(torch.empty(batch, 3, h, w, device="meta")))
    finally:
        for handle in hooks:
            handle.remove()

    def reduction(shape):
        return None if shape is None or len(shape) != 4 else max(1, round(h / shape[2]))

    parts = []
    for kind, stage, prefixes, m, b, src in plan:
        first, last = seen.get(prefixes[0], (None, None, -1)), seen.get(prefixes[-1], (None, None, -1))
        name = prefixes[0] if kind == "head" else None
        snum = int(stage[len("stage"):]) if stage.startswith("stage") and kind in ("transition", "branch", "fusion") else None
        parts.append(Part(part_key(kind, snum, m, b, src, name), kind, prefixes, stage, m, b, src,
                          reduction(last[1]), first[0], last[1], sum(_own_params(modules[p]) for p in prefixes),
                          STEM_MODULES if kind == "stem" else prefixes))
    # head parts in the order they run (HigherHRNet: final_layers.0, deconv_layers.0, final_layers.1)
    head = sorted((p for p in parts if p.kind == "head"), key=lambda p: seen.get(p.prefix, (0, 0, 1 << 30))[2])
    parts = [p for p in parts if p.kind != "head"] + head
    feature_maps = []
    for key, t in maps.items():
        stage, mkey, branch = split_output_key(key)
        module = None if mkey in ("stem", "layer1") else int(mkey.rsplit("module", 1)[1])
        feature_maps.append(FeatureMap(key, stage, module, branch, reduction(tuple(t.shape)), tuple(t.shape)))
    layers = []
    for p in head:
        for sub, mod in modules[p.prefix].named_modules(prefix=p.prefix):
            if not any(True for _ in mod.children()) and sub in seen:
                layers.append((seen[sub][2], _layer(sub, p.key, mod, seen[sub])))
    head_layers = tuple(layer for _, layer in sorted(layers, key=lambda x: x[0]))
    exchange = tuple((f"{sname}.{m}", sname, m) for sname in model.stage_names
                     for m in range(len(getattr(model, sname))))
    return ArchGraph(cfg.name, (h, w), batch, tuple(parts), part_edges(parts), tuple(feature_maps), head_layers,
                     exchange)


def _module_outputs(seen: dict[str, list]):
    """``hook(prefix)``: a forward hook that records the list of per-branch output shapes of the exchange module
    at ``prefix`` into ``seen`` at its first call."""
    def hook(prefix):
        def _h(module, inputs, output):
            outs = output if isinstance(output, (list, tuple)) else [output]
            seen.setdefault(prefix, [tuple(t.shape) for t in outs])
        return _h
    return hook


def _network_architecture(cfg, input_hw: tuple[int, int] | None = None, batch: int = 1) -> ArchGraph:
    """``architecture()`` of a model of another registered network (a ``NetworkConfig``): its
    ``NetworkSpec.parts`` plan, with shapes and parameters read from the model built on the meta device. Maps: one
    per output of every exchange module, keyed ``stageS.moduleM.branchB`` as for HRNet (the module's output on
    branch B, after its fusion; what ``NetworkModel.forward_intermediates`` records)."""
    h, w = tuple(input_hw or cfg.input_hw)
    model = build_on_meta(cfg).eval()
    modules = dict(model.named_modules())
    plans = list(cfg.spec.parts(cfg.backbone))
    if cfg.head is not None:
        stride = cfg.spec.out_strides(cfg.backbone)[-1]
        plans.append(PartPlan("head.final_layer", "head", ("final_layer",), "head", resolution=stride, block="conv"))
    exchange = network_modules(plans)
    seen: dict[str, tuple] = {}
    outputs: dict[str, list] = {}
    hooks = []
    hook, module_hook = _shape_hooks(seen), _module_outputs(outputs)
    for p in plans:
        for q in p.prefixes:
            if q in modules:
                hooks.append(modules[q].register_forward_hook(hook(q)))
    for prefix, _, _ in exchange:
        if prefix in modules:  # a network off the registry's S.M convention simply has no maps
            hooks.append(modules[prefix].register_forward_hook(module_hook(prefix)))
    try:
        with torch.no_grad():
            model(torch.empty(batch, 3, h, w, device="meta"))
    finally:
        for handle in hooks:
            handle.remove()

    def reduction(shape):
        return None if shape is None or len(shape) != 4 else max(1, round(h / shape[2]))

    def params(prefix: str) -> int:
        mod = modules.get(prefix)
        return sum(t.numel() for t in mod.parameters()) if isinstance(mod, nn.Module) else 0

    parts = []
    for p in plans:
        first = seen.get(p.prefixes[0], (None, None, -1)) if p.prefixes else (None, None, -1)
        last = seen.get(p.prefixes[-1], (None, None, -1)) if p.prefixes else (None, None, -1)
        res = reduction(last[1]) or p.resolution
        parts.append(Part(p.key, p.kind, p.prefixes, p.stage, p.module, p.branch, p.source, res, first[0], last[1],
                          sum(params(q) for q in p.prefixes), p.prefixes))
    maps = [FeatureMap(output_key(stage, m, b), stage, m, b, reduction(shape), shape)
            for prefix, stage, m in exchange for b, shape in enumerate(outputs.get(prefix, ()))]
    return ArchGraph(cfg.name, (h, w), batch, tuple(parts), part_edges(parts), tuple(maps), (), exchange)


def part_edges(parts: list[Part]) -> tuple[tuple[str, str], ...]:
    """Data flow between parts: stem -> layer1 -> transitions -> each module's branches -> its fusion terms ->
    the next module (or transition, or head). Identity parts are kept, so every hop is an edge. A branch part
    with no branch (Lite-HRNet's cross-resolution weighting) reads every branch and feeds each of them."""
    keys = {p.key for p in parts}
    edges: list[tuple[str, str]] = [("stem", "layer1")] if {"stem", "layer1"} <= keys else []
    start = "layer1" if "layer1" in keys else "stem"
    outs: dict[int, list[str]] = {0: [start]}  # branch -> keys of the parts whose sum is its current output
    by_stage: dict[str, list[Part]] = {}
    for p in parts:
        by_stage.setdefault(p.stage, []).append(p)
    for group in by_stage.values():
        if not any(p.kind in ("transition", "branch", "fusion") for p in group):
            continue  # the stem, HRNet's layer1, the head
        new_outs = dict(outs)
        for t in (p for p in group if p.kind == "transition"):
            edges += [(src, t.key) for src in outs.get(t.branch, outs[max(outs)])]
            new_outs[t.branch] = [t.key]
        outs = new_outs
        for m in sorted({p.module for p in group if p.module is not None}):
            mixers = [p for p in group if p.module == m and p.kind == "branch" and p.branch is None]
            branches = [p for p in group if p.module == m and p.kind == "branch" and p.branch is not None]
            fusions = [p for p in group if p.module == m and p.kind == "fusion"]
            for mix in mixers:
                edges += [(src, mix.key) for b in sorted(outs) for src in outs[b]]
                outs = {b: [mix.key] for b in outs}
            for br in branches:
                edges += [(src, br.key) for src in outs.get(br.branch, outs[max(outs)])]
            by_branch = {b.branch: b.key for b in branches}
            if fusions:
                fused: dict[int, list[str]] = {}
                for f in fusions:
                    edges.append((by_branch.get(f.source, f.key), f.key))
                    fused.setdefault(f.branch, []).append(f.key)
                # a branch fuses its own output too (the identity term has no part)
                outs = {b: ([by_branch[b]] if b in by_branch else []) + fused.get(b, []) for b in by_branch} or fused
            else:
                outs = {b: [k] for b, k in by_branch.items()} or outs
    heads = [p for p in parts if p.kind == "head"]
    if heads:
        edges += [(key, heads[0].key) for b in sorted(outs) for key in outs[b]]
        edges += [(a.key, b.key) for a, b in zip(heads, heads[1:])]
    return tuple(e for e in dict.fromkeys(edges) if e[0] != e[1])


__all__ = ["PART_KINDS", "STEM_MODULES", "STEM_PREFIXES", "ArchGraph", "FeatureMap", "Layer", "Part", "architecture", "output_key", "part_edges", "part_key"]
