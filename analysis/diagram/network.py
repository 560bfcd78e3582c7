"""Architecture diagrams of the registered networks other than the classic HRNet (Lite-HRNet, HRFormer, ...: a
``NetworkConfig``), drawn from the network's parts plan (``NetworkSpec.parts``) alone, in HRNet's paper layout.

Depth runs left to right and resolution top to bottom (branch 0, 1/4, on top): every column is one rank of the
Graphviz layout (``rank=same``), ordered top to bottom by branch, each branch's row filled with its ``ROW_FILL``
colour. Nothing here knows a network by name: what a part is made of comes from its ``PartPlan`` (``kind``,
``stage``, ``module``, ``branch``, ``source``, ``block``), shapes from ``hrnet_core.architecture`` (the model run on
the meta device), layer details (kernels, strides, depthwise convs, upsampling) from the model built on the meta
device. Three levels:

- ``stage``: one node per branch per stage (all its modules' branch parts, and the fusion parts of every module
  but the last); the exchange drawn is the stage's last module's.
- ``module``: per module one node per branch, a part that reads every branch (a branch part with no branch index:
  Lite-HRNet's cross-resolution weighting) as one tall node the branches pass through, and the exchange: a sum
  node per fused output fed by its own branch (grey) and by each fusion part (blue from a lower resolution, red
  from a higher one). A module without fusion parts passes its branches straight on.
- ``block``: one module opened up: every block of every branch part as the model's children make it (a part's
  prefix that is a ``Sequential`` / ``ModuleList`` of blocks is unfolded into them; a block of several computing
  children, e.g. HRFormer's attention and FFN, into those), a part reading every branch as one tall node per
  block, then one node per fusion part and the sums.

Node and edge classes are HRNet's (``analysis.diagram.build``): nodes ``io``, ``stem``, ``branch`` (also the
network's ``layer1``), ``transition``, ``fuse``, ``block`` (at stage and module level: a part reading every
branch), ``fuse_unit``, ``head``, ``header``; edges ``stem``, ``flow``, ``transition``, ``fuse_up``, ``fuse_down``,
``fuse_identity``, ``fuse_chain``, ``head``, ``layout`` (layout aids: invisible ordering edges; at block level
also the invisible bend point, a ``layout`` node, and second half of a branch's own term). Nodes standing for
submodules carry ``prefixes``.

Annotations (``params`` / ``gflops``): at stage and module level the closed-form ``NetworkSpec.counts`` of the
node's parts (and the head's ``final_layer``: ``analysis.complexity.network_counts.plans_and_counts``); at block
level, where a node is finer than a part, the model on the meta device with hooks on its Conv2d and Linear layers
(every call). GFLOPs follow the paper convention: Conv2d + Linear multiply-accumulates, bias excluded, / 2**30;
window-attention matrix products (``attention_macs``) are not Conv2d/Linear and stay out (the title says how many).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

import graphviz
import torch
from torch import nn

from analysis.complexity.network_counts import plans_and_counts
from analysis.diagram.canvas import (
    ANNOTATIONS,
    DOWN_COLOUR,
    LEVELS,
    SAME_COLOUR,
    UP_COLOUR,
    Canvas,
    DiagramError,
    Node,
    row_fill,
)
from analysis.diagram.costs import fmt_gflops, fmt_params
from hrnet_core import architecture, build_on_meta
from hrnet_core.errors import quote
from hrnet_core.networks.model_config import NetworkConfig
from hrnet_core.networks.registry import PartPlan

# What a part is made of (PartPlan.block) as the diagram says it; an unknown block string is shown as it is.
BLOCK_LABELS = {
    "CCW": "CCW (cross-res + spatial weighting)",
    "CRW": "cross-resolution weighting",
    "SHUFFLE": "shuffle block",
    "HRFORMER": "local-window MSA + FFN",
    "BOTTLENECK": "Bottleneck",
    "BASIC": "BasicBlock",
    "STEM": "3x3 conv s2 + shuffle block s2",
    "ITERATIVE": "iterative head (top-down, dw-separable convs)",
}
# Block level: a step's module class as the diagram names it (else its convolutions are listed).
STEP_LABELS = {
    "CrossResolutionWeighting": "cross-resolution weighting",
    "SpatialWeighting": "spatial weighting",
    "LocalWindowSelfAttention": "local-window MSA",
    "CrossFFN": "FFN",
    "ShuffleUnit": "shuffle unit",
}
CONTAINERS = (nn.Sequential, nn.ModuleList)
COMPUTING = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
GREY_FILL = "#eeeeee"
PART_FILL = "#f3f3f3"
HEAD_FILL = "#fde9d9"
MIXER_FILL = "#efe8f7"
ROW_HEIGHT = 0.62  # inches a branch row takes in a column: a part reading every branch spans them


# ---- the network, derived once -------------------------------------------------------------------------
@dataclass
class _Net:
    """Everything a diagram reads from ``cfg``: parts (backbone, then the model's head), closed-form counts,
    shapes (``ArchGraph``) and the model's modules on the meta device."""

    cfg: NetworkConfig

    def __post_init__(self):
        # plans_and_counts validates the input size first (ConfigError naming input_size), before the meta runs
        plans, counts = plans_and_counts(self.cfg)
        self.plans: tuple[PartPlan, ...] = tuple(plans)
        self.counts = counts
        backbone = {p.key for p in self.cfg.spec.parts(self.cfg.backbone)}
        self.model_head = tuple(p for p in self.plans if p.key not in backbone)  # the head's final_layer
        self.arch = architecture(self.cfg, tuple(self.cfg.input_hw))
        self.shapes = {p.key: p for p in self.arch.parts}
        self.maps = {(m.stage, m.module, m.branch): m.shape for m in self.arch.maps}
        self.stages = _stages(self.plans)

    @cached_property
    def model(self) -> nn.Module:
        return _meta_model(self.cfg)

    @cached_property
    def modules(self) -> dict[str, nn.Module]:
        return dict(self.model.named_modules())

    @cached_property
    def order(self) -> dict[str, int]:
        """Module name -> its place in registration order (the order the networks' forwards run their blocks)."""
        return {name: i for i, name in enumerate(self.modules)}

    def cost(self, parts) -> tuple[int, int]:
        """(params, Conv2d + Linear MACs) of ``parts`` by the closed form."""
        cs = [self.counts[p.key] for p in parts if p.key in self.counts]
        return sum(c.params for c in cs), sum(c.conv_linear_macs for c in cs)

    def module_parts(self, stage: str, m: int) -> list[PartPlan]:
        return [p for p in self.stages[stage] if p.module == m]

    def modules_of(self, stage: str) -> list[int]:
        return sorted({p.module for p in self.stages[stage] if p.module is not None})

    def shape(self, stage: str, m: int, b: int) -> tuple[int, ...] | None:
        """Output ``(N, C, H, W)`` of module ``m``'s branch ``b`` (after its fusion), else of its branch part."""
        if (stage, m, b) in self.maps:
            return self.maps[(stage, m, b)]
        part = next((p for p in self.stages[stage] if p.module == m and p.kind == "branch" and p.branch == b), None)
        return self.shapes[part.key].out_shape if part is not None else None

    def hw(self, resolution: int | None) -> str:
        if not resolution:
            return ""
        h, w = self.cfg.input_hw
        return f"{-(-h // resolution)}x{-(-w // resolution)}"

    def active(self, part: PartPlan) -> bool:
        """Whether a part does something: owns parameters or changes its input's shape (HRFormer's unchanged
        transitions are ``None`` modules, its ``i <- i`` fusion terms ``nn.Identity``)."""
        s = self.shapes.get(part.key)
        if s is None or s.out_shape is None:
            return False
        return s.params > 0 or s.in_shape != s.out_shape

    def module_name_list(self) -> list[str]:
        return [f"{s}.module{m}" for s in self.stages for m in self.modules_of(s)]


@lru_cache(maxsize=8)
def _meta_model(cfg: NetworkConfig) -> nn.Module:
    """The model on the meta device (no memory), kept for the next diagram of the same config: building one is
    most of a diagram's time (the UI redraws on every setting). Only read, and hooked inside try/finally."""
    return build_on_meta(cfg).eval()


def _stages(plans) -> dict[str, list[PartPlan]]:
    """The parts of every stage that has transitions, branches or fusions, stages in forward order."""
    out: dict[str, list[PartPlan]] = {}
    for p in plans:
        if p.kind in ("transition", "branch", "fusion"):
            out.setdefault(p.stage, []).append(p)
    return out


# ---- layer descriptions from the built modules ----------------------------------------------------------
def _leaf_ops(mod: nn.Module) -> list[str]:
    """The computing layers under ``mod`` in order, one short name each (``3x3 dw conv s2``, ``linear``,
    ``upsample x4``); norms and activations are left out."""
    ops = []
    for sub in mod.modules():
        if isinstance(sub, (nn.Conv2d, nn.ConvTranspose2d)):
            k, s = sub.kernel_size[0], sub.stride[0]
            dw = " dw" if sub.groups > 1 and sub.groups == sub.in_channels else ""
            kind = "transposed conv" if isinstance(sub, nn.ConvTranspose2d) else "conv"
            ops.append(f"{k}x{k}{dw} {kind}" + (f" s{s}" if s > 1 else ""))
        elif isinstance(sub, nn.Linear):
            ops.append("linear")
        elif isinstance(sub, nn.Upsample):
            scale = sub.scale_factor
            mode = "" if sub.mode == "nearest" else f" ({sub.mode})"
            ops.append((f"upsample x{int(scale)}" if isinstance(scale, (int, float)) else "upsample") + mode)
    return ops


def _compress(ops: list[str]) -> str:
    """``ops`` as one phrase, a repeated pattern written once: ``2x (3x3 dw conv s2 → 1x1 conv)``."""
    if not ops:
        return ""
    for period in range(1, len(ops) // 2 + 1):
        n, rest = divmod(len(ops), period)
        if rest == 0 and ops == ops[:period] * n:
            unit = " → ".join(ops[:period])
            return f"{n}x {unit}" if period == 1 else f"{n}x ({unit})"
    return " → ".join(ops)


def _summary(modules: dict[str, nn.Module], prefixes) -> str:
    ops = [op for q in prefixes if q in modules for op in _leaf_ops(modules[q])]
    return _compress(ops)


def _out_channels(modules: dict[str, nn.Module], prefixes) -> int | None:
    """Channels written by the last Conv2d / Linear under ``prefixes``."""
    last = None
    for q in prefixes:
        for sub in modules[q].modules() if q in modules else ():
            if isinstance(sub, (nn.Conv2d, nn.ConvTranspose2d)):
                last = sub.out_channels
            elif isinstance(sub, nn.Linear):
                last = sub.out_features
    return last


def _attention_note(mod: nn.Module) -> str:
    """``1 head · 7x7 windows`` for a module holding an attention with ``num_heads`` / ``window_size``."""
    for sub in mod.modules():
        heads, window = getattr(sub, "num_heads", None), getattr(sub, "window_size", None)
        if isinstance(heads, int):
            note = f"{heads} head{'s' if heads > 1 else ''}"
            if isinstance(window, (tuple, list)) and len(window) == 2:
                note += f" · {window[0]}x{window[1]} windows"
            elif isinstance(window, int):
                note += f" · {window}x{window} windows"
            return note
    return ""


def _block_label(block: str) -> str:
    return BLOCK_LABELS.get(block, block)


# ---- graph assembly ----------------------------------------------------------------------------------
class _Canvas(Canvas):
    """The shared canvas with the annotation of the closed-form counts (``cost``: ``(params, MACs)``)."""

    def __init__(self, annotate: str | None):
        super().__init__()
        self.annotate = annotate

    def make(self, nid: str, label: str, cls: str, prefixes=(), cost: tuple[int, int] | None = None,
             **attrs) -> Node:
        note = exact = None
        if self.annotate and cost is not None:
            params, macs = cost
            note = fmt_params(params) if self.annotate == "params" else _fmt_flops(macs)
            exact = f"params={params} macs={macs}"
        return self.node(nid, label, cls, prefixes, note, exact, **attrs)

    def fuse_edge(self, src: str, dst: str, j: int, i: int, tooltip: str = "") -> None:
        """The shared exchange edge, its tooltip naming the branches (and ``tooltip``: the fusion unit)."""
        tip = f"branch {i}: its own term" if j == i else f"branch {j} -> {i}" + (f": {tooltip}" if tooltip else "")
        super().fuse_edge(src, dst, j, i, tip)


def _fmt_flops(macs: int) -> str:
    """Paper-convention GFLOPs (MACs / 2**30); below 0.01 as MFLOPs (MACs / 2**20: Lite-HRNet's own unit), which
    would read ``0.000 GFLOPs`` for most of a light network's layers."""
    return fmt_gflops(macs / 2**30) if macs >= 0.01 * 2**30 else f"{macs / 2**20:.2f} MFLOPs"


def _res(resolution: int | None) -> str:
    return f"1/{resolution}" if resolution else "global"


def _ch(shape) -> str:
    return f"{shape[1]} ch" if shape is not None and len(shape) > 1 else ""


def _hw_of(shape) -> str:
    return f"{shape[2]}x{shape[3]}" if shape is not None and len(shape) == 4 else ""


def _join(*bits: str) -> str:
    return " · ".join(b for b in bits if b)


# ---- stem, layer1, transitions, head ---------------------------------------------------------------------
def _stem(cv: _Canvas, net: _Net) -> dict[int, str]:
    """Input, the stem part(s) and layer1 (if the network has one); returns branch -> current node id."""
    h, w = net.cfg.input_hw
    cv.column([cv.make("input", f"input\n3 x {h}x{w}", "io", fillcolor=GREY_FILL)])
    last = "input"
    for i, p in enumerate(q for q in net.plans if q.kind == "stem"):
        shape = net.shapes[p.key].out_shape
        what = _block_label(p.block) if p.block else _summary(net.modules, p.prefixes)
        nid = f"stem{i}" if i else "stem"
        cv.column([cv.make(nid, f"stem\n{what}\n{_join(_ch(shape), _hw_of(shape))}", "stem", p.prefixes,
                           net.cost([p]), fillcolor=GREY_FILL)], header="stem")
        cv.edge(last, nid, "stem")
        last = nid
    for i, p in enumerate(q for q in net.plans if q.kind == "layer1"):
        shape = net.shapes[p.key].out_shape
        nid = f"layer1_{i}" if i else "layer1"
        blocks = len(_part_blocks(net, p))
        label = f"{p.stage} · {_res(p.resolution)}\n{_join(_ch(shape), _hw_of(shape))}\n{blocks}x {_block_label(p.block)}"
        cv.column([cv.make(nid, label, "branch", p.prefixes, net.cost([p]), **row_fill(p.branch or 0))], header=p.stage)
        cv.edge(last, nid, "stem")
        last = nid
    return {0: last}


def _transitions(cv: _Canvas, net: _Net, stage: str, prev: dict[int, str], targets: dict[int, str]) -> None:
    """The transition into ``stage``: a node per active transition part (reading its branch, or the lowest
    resolution branch for a new one), a flow edge for every other branch."""
    parts = {p.branch: p for p in net.stages[stage] if p.kind == "transition"}
    nodes = []
    for b, target in sorted(targets.items()):
        src = prev.get(b, prev[max(prev)])
        p = parts.get(b)
        if p is None or not net.active(p):
            cv.edge(src, target, "flow")
            continue
        s = net.shapes[p.key]
        tid = f"t_{stage}b{b}"
        head = f"new branch {_res(p.resolution)}\n" if b not in prev else ""
        label = f"{head}{_summary(net.modules, p.prefixes)}\n{s.in_shape[1]}→{s.out_shape[1]} ch · {_hw_of(s.out_shape)}"
        nodes.append(cv.make(tid, label, "transition", p.prefixes, net.cost([p]), fillcolor=PART_FILL))
        cv.edge(src, tid, "transition")
        cv.edge(tid, target, "transition")
    cv.column(nodes)


def _head(cv: _Canvas, net: _Net, prev: dict[int, str]) -> None:
    """The backbone's own head parts (reading every branch), then the model's head on the backbone's last
    returned map, then the output."""
    spec = net.cfg.spec
    backbone_head = [p for p in net.plans if p.kind == "head" and p not in net.model_head]
    returned: list[str]
    first = True
    last = None
    for i, p in enumerate(backbone_head):
        nid = f"head{i}"
        s = net.shapes[p.key]
        label = f"{p.prefixes[0]}\n{_block_label(p.block) or _summary(net.modules, p.prefixes)}\n" \
                f"{_join(_ch(s.out_shape), _hw_of(s.out_shape))}"
        cv.column([cv.make(nid, label, "head", p.prefixes, net.cost([p]), fillcolor=HEAD_FILL)],
                  header="head" if first else None)
        for src in ([last] if last else [prev[b] for b in sorted(prev)]):
            cv.edge(src, nid, "head")
        first, last = False, nid
    if last is not None:
        returned = [last]
    else:  # the maps the backbone returns: its branches at the returned strides
        res = {p.branch: p.resolution for p in net.plans if p.kind == "branch" and p.branch is not None}
        returned = [prev[b] for b in sorted(prev) if res.get(b) in spec.out_strides(net.cfg.backbone)] or [prev[0]]
    for i, p in enumerate(net.model_head):
        nid = f"head_final{i}" if i else "head_final"
        s = net.shapes[p.key]
        label = f"{p.prefixes[0]}\n{_summary(net.modules, p.prefixes)} {s.in_shape[1]}→{s.out_shape[1]}"
        cv.column([cv.make(nid, label, "head", p.prefixes, net.cost([p]), fillcolor=HEAD_FILL)],
                  header="head" if first else None)
        for src in returned[-1:]:
            cv.edge(src, nid, "head")
        first, returned = False, [nid]
    out = net.shapes[net.model_head[-1].key].out_shape if net.model_head else None
    label = f"output\n{out[1]} maps · {_hw_of(out)}" if out else f"output\n{len(returned)} map(s)"
    cv.column([cv.make("output", label, "io", fillcolor=GREY_FILL)])
    for src in returned:
        cv.edge(src, "output", "head")


# ---- stage and module levels -------------------------------------------------------------------------------
def _branch_label(net: _Net, part_list: list[PartPlan], b: int, shape, note: str = "") -> str:
    p = part_list[0]
    blocks = sum(len(_part_blocks(net, q)) for q in part_list)
    mods = f"{len(part_list)} modules, " if len(part_list) > 1 else ""
    what = _block_label(p.block).replace(" (", "\n(", 1)  # a long label's explanation on a line of its own
    label = f"b{b} · {_res(p.resolution)} · {_join(_ch(shape), _hw_of(shape))}\n{mods}{blocks}x {what}"
    return label + (f"\n{note}" if note else "")


def _mixer_node(cv: _Canvas, net: _Net, nid: str, parts: list[PartPlan], rows: int) -> Node:
    """A part reading every branch (Lite-HRNet's cross-resolution weighting) as one node as tall as the rows."""
    prefixes = tuple(q for p in parts for q in p.prefixes)
    what = _block_label(parts[0].block)
    blocks = sum(len(_part_blocks(net, p)) for p in parts)
    label = f"{what}\nreads all {rows} branches\nin each of {blocks} blocks"
    return cv.make(nid, label, "block", prefixes, net.cost(parts), fillcolor=MIXER_FILL,
                   height=f"{ROW_HEIGHT * rows:.2f}", tooltip=f"{what}: reads every branch, weights each")


def _exchange(cv: _Canvas, net: _Net, uid: str, fusions: list[PartPlan], ids: dict[int, str]) -> dict[int, str]:
    """The sums of a module's fusion parts: one node per fused output, fed by its own branch and every fusion
    part with another source. Returns branch -> output node id (unfused branches pass on)."""
    targets = sorted({f.branch for f in fusions})
    nodes = []
    for i in targets:
        into = [f for f in fusions if f.branch == i]
        nodes.append(cv.make(f"{uid}f{i}", "Σ", "fuse", tuple(q for f in into for q in f.prefixes), net.cost(into),
                             shape="circle", style="filled", margin="0.02", tooltip=f"sum into branch {i}",
                             **row_fill(i)))
    cv.column(nodes)
    for i in targets:
        cv.fuse_edge(ids[i], f"{uid}f{i}", i, i)
        for f in fusions:
            if f.branch == i and f.source != i:
                cv.fuse_edge(ids[f.source], f"{uid}f{i}", f.source, i, _summary(net.modules, f.prefixes))
    return {b: (f"{uid}f{b}" if b in targets else nid) for b, nid in ids.items()}


def _network(cv: _Canvas, net: _Net, per_stage: bool) -> None:
    """Stage or module level: stem (and layer1), then per stage its transition and its units (one per stage or
    per module), each followed by its exchange when it fuses, then the head."""
    prev = _stem(cv, net)
    for stage, parts in net.stages.items():
        mods = net.modules_of(stage)
        branches = sorted({p.branch for p in parts if p.kind in ("branch", "transition") and p.branch is not None})
        if per_stage:
            fusing = sum(1 for m in mods if any(p.kind == "fusion" and p.module == m for p in parts))
            note = f"fusion in {fusing}/{len(mods)} modules" if len(mods) > 1 else ""
            units = [(stage, mods, f"{stage}: {len(mods)} module{'s' if len(mods) > 1 else ''}", note)]
        else:
            units = [(f"{stage}m{m}", [m], f"{stage}.module{m}", "") for m in mods]
        for u, (uid, unit_mods, title, note) in enumerate(units):
            prev = _unit(cv, net, stage, uid, unit_mods, title, note, prev, branches, first=u == 0)
    _head(cv, net, prev)


def _unit(cv: _Canvas, net: _Net, stage: str, uid: str, unit_mods: list[int], title: str, note: str,
          prev: dict[int, str], branches: list[int], first: bool) -> dict[int, str]:
    """One stage (stage level) or module (module level): [weighting node], a node per branch, [the exchange].
    Returns branch -> output node id."""
    parts = net.stages[stage]
    last_m = unit_mods[-1]
    ids = {b: f"{uid}b{b}" for b in branches}
    mixers = [p for p in parts if p.kind == "branch" and p.branch is None and p.module in unit_mods]
    # what the previous unit (or the transition) feeds: the weighting node reads every branch
    entry = {b: f"{uid}x" for b in branches} if mixers else ids
    if first:
        _transitions(cv, net, stage, prev, entry)
    else:
        for b in branches:
            cv.edge(prev[b], entry[b], "flow", **({} if mixers else {"weight": "8"}))
    if mixers:
        cv.column([_mixer_node(cv, net, f"{uid}x", mixers, len(branches))], header=title)
        for b in branches:
            cv.edge(f"{uid}x", ids[b], "flow")
    nodes = []
    for b in branches:
        bparts = [p for p in parts if p.kind == "branch" and p.branch == b and p.module in unit_mods]
        # a stage node also stands for the exchanges inside the stage (all but the last module's)
        folded = bparts + [p for p in parts if p.kind == "fusion" and p.branch == b
                           and p.module in unit_mods and p.module != last_m]
        nodes.append(cv.make(ids[b], _branch_label(net, bparts, b, net.shape(stage, last_m, b), note), "branch",
                             tuple(q for p in folded for q in p.prefixes), net.cost(folded), **row_fill(b)))
    cv.column(nodes, header=None if mixers else title)
    fusions = [p for p in parts if p.kind == "fusion" and p.module == last_m]
    return _exchange(cv, net, uid, fusions, ids) if fusions else dict(ids)


# ---- blocks: a part unfolded into what the model's children make it ----------------------------------------
def _unfold(net: _Net, prefix: str) -> list[tuple[str, bool]]:
    """``prefix``'s module, or the blocks of a ``Sequential`` / ``ModuleList`` under it (recursively), each with
    whether it came from unfolding a container (a block of its own) or was named by the part itself."""
    mod = net.modules.get(prefix)
    if mod is None:  # a None module (an unchanged HRFormer transition): nothing runs
        return []
    if not isinstance(mod, CONTAINERS) or len(mod) == 0:
        return [(prefix, False)]
    out = []
    for name, child in mod.named_children():
        sub = f"{prefix}.{name}"
        out += _unfold(net, sub) if isinstance(child, CONTAINERS) else [(sub, True)]
    return out


def _enclosing_block(net: _Net, name: str, root: str | None) -> str:
    """The block a module named by a part lies in: its nearest ancestor below the exchange module ``root`` that
    is not a container (Lite-HRNet: ``layers.0`` for ``layers.0.depthwise_convs.1``), else the module itself."""
    bits = name.split(".")
    for k in range(len(bits) - 1, 0, -1):
        parent = ".".join(bits[:k])
        if root is not None and (parent == root or not parent.startswith(root + ".")):
            break
        if not isinstance(net.modules.get(parent), CONTAINERS):
            return parent
    return name


def _root(net: _Net, part: PartPlan) -> str | None:
    return next((prefix for prefix, stage, m in net.arch.exchange_modules
                 if stage == part.stage and m == part.module), None)


def _units(net: _Net, part: PartPlan) -> list[tuple[str, bool, int]]:
    """``part``'s modules after unfolding: (name, came from unfolding a container, index of its block in the
    part). A block is an unfolded module itself, or the block a named module lies in."""
    root = _root(net, part)
    blocks: list[str] = []
    out = []
    for name, unfolded in (u for q in part.prefixes for u in _unfold(net, q)):
        block = name if unfolded else _enclosing_block(net, name, root)
        if block not in blocks:
            blocks.append(block)
        out.append((name, unfolded, blocks.index(block)))
    return out


def _part_blocks(net: _Net, part: PartPlan) -> set[int]:
    """The blocks of ``part`` (their indices)."""
    return {block for _, _, block in _units(net, part)}


def _computes(mod: nn.Module) -> bool:
    return any(isinstance(s, COMPUTING) for s in mod.modules())


def _split(net: _Net, name: str) -> list[tuple[str, ...]]:
    """A block of several computing children (HRFormer: attention, FFN) as one step per computing child, each with
    the parameter-free or norm layers registered just before it (trailing ones join the last step); a block holding
    tensors of its own, or with one computing child, stays one step."""
    mod = net.modules[name]
    children = list(mod.named_children())
    own = any(True for _ in mod.parameters(recurse=False)) or any(True for _ in mod.buffers(recurse=False))
    if own or sum(_computes(c) for _, c in children) < 2:
        return [(name,)]
    steps: list[tuple[str, ...]] = []
    pending: list[str] = []
    for cname, child in children:
        pending.append(f"{name}.{cname}")
        if _computes(child):
            steps.append(tuple(pending))
            pending = []
    if pending:
        steps[-1] += tuple(pending)
    return steps


@dataclass
class _Step:
    prefixes: tuple[str, ...]
    branch: int | None  # None: reads every branch
    block: int  # index of its block within its part
    order: int  # registration order of its first module
    id: str = ""
    depth: int = 0


def _steps(net: _Net, parts: list[PartPlan]) -> list[_Step]:
    """Every step of the branch parts of one module, in the order the module runs them."""
    out = []
    for part in parts:
        for name, unfolded, block in _units(net, part):
            for group in (_split(net, name) if unfolded else [(name,)]):
                out.append(_Step(group, part.branch, block, net.order[group[0]]))
    # registration order is the order the networks' forwards run them (a weighting before its branches' convs)
    return sorted(out, key=lambda s: s.order)


def _step_label(net: _Net, step: _Step, shape, written: int | None) -> str:
    """What a step is, its detail (heads and windows, or its convolutions) and the channels it writes (measured,
    else its last conv's)."""
    mods = [net.modules[q] for q in step.prefixes]
    main = next((m for m in reversed(mods) if _computes(m)), mods[-1])
    name = STEP_LABELS.get(type(main).__name__)
    detail = _attention_note(main) or _summary(net.modules, step.prefixes)
    if name is None:
        name, detail = detail or type(main).__name__, ""
    ch = written or _out_channels(net.modules, step.prefixes)
    where = "all branches" if step.branch is None else _hw_of(shape)
    return "\n".join(x for x in (name, detail, _join(f"{ch} ch" if ch else "", where)) if x)


@dataclass
class _MetaRun:
    """One forward of the model on the meta device at the config's input size: own parameters and Conv2d /
    Linear MACs (bias excluded, every call) per module name, and the channels each hooked module writes."""

    params: dict[str, int]
    macs: dict[str, int]
    channels: dict[str, int]


def _meta_run(net: _Net, watch) -> _MetaRun:
    """Run ``net``'s model once on the meta device, counting every Conv2d / Linear and recording the output
    channels of the modules named in ``watch`` (``(N, C, H, W)``: C; token maps ``(N, L, C)``: C)."""
    params = {n: sum(p.numel() for p in m.parameters(recurse=False)) for n, m in net.modules.items()}
    macs: dict[str, int] = {}
    channels: dict[str, int] = {}
    hooks = []

    def count(name):
        def hook(module, inputs, output):
            if isinstance(module, nn.Linear):
                n = output.numel() * module.in_features
            else:  # Conv2d / ConvTranspose2d: weight elements per output position
                n = math.prod(module.weight.shape) * math.prod(output.shape[2:]) * output.shape[0]
            macs[name] = macs.get(name, 0) + int(n)
        return hook

    def width(name):
        def hook(module, inputs, output):
            if isinstance(output, torch.Tensor) and output.dim() in (3, 4):
                channels.setdefault(name, int(output.shape[1] if output.dim() == 4 else output.shape[-1]))
        return hook

    for name, mod in net.modules.items():
        if isinstance(mod, COMPUTING):
            hooks.append(mod.register_forward_hook(count(name)))
        if name in watch:
            hooks.append(mod.register_forward_hook(width(name)))
    h, w = net.cfg.input_hw
    try:
        with torch.no_grad():
            net.model(torch.empty(1, 3, h, w, device="meta"))
    finally:
        for handle in hooks:
            handle.remove()
    return _MetaRun(params, macs, channels)


def _under(table: dict[str, int], prefixes) -> int:
    return sum(v for name, v in table.items() if any(name == p or name.startswith(p + ".") for p in prefixes))


def _module_inputs(net: _Net, stage: str, m: int) -> dict[int, tuple[int, ...]]:
    """Input shape per branch of module ``m`` of ``stage``: what the transitions or the previous module hand on."""
    start = [p for p in net.plans if p.kind in ("stem", "layer1")]
    cur: dict[int, tuple[int, ...]] = {0: net.shapes[start[-1].key].out_shape} if start else {}
    for s, parts in net.stages.items():
        for p in parts:
            if p.kind == "transition" and net.active(p):
                cur[p.branch] = net.shapes[p.key].out_shape
        for mm in net.modules_of(s):
            if (s, mm) == (stage, m):
                return cur
            cur.update({b: shape for (ms, mi, b), shape in net.maps.items() if (ms, mi) == (s, mm)})
    return cur


def _parse_module(net: _Net, name: str | None) -> tuple[str, int]:
    names = net.module_name_list()
    if name is None:  # as HRNet's: the last stage's first module
        last = list(net.stages)[-1]
        return last, net.modules_of(last)[0]
    m = re.fullmatch(r"\s*(\S+?)[._ ]?module(\d+)\s*", str(name))
    if m and f"{m.group(1)}.module{int(m.group(2))}" in names:
        return m.group(1), int(m.group(2))
    raise DiagramError(f"module {quote(name)}: no such module; expected one of {', '.join(names)}")


def _block_level(cv: _Canvas, net: _Net, module: str | None) -> str:
    """One module opened up: inputs, its steps in the order they run (a step reading every branch as one tall
    node), one node per fusion part, the sums, the outputs. Returns the title's note."""
    stage, m = _parse_module(net, module)
    name = f"{stage}.module{m}"
    parts = net.module_parts(stage, m)
    bparts = [p for p in parts if p.kind == "branch"]
    fusions = [p for p in parts if p.kind == "fusion"]
    branches = sorted({p.branch for p in bparts if p.branch is not None})
    res = {p.branch: p.resolution for p in bparts if p.branch is not None}
    steps = _steps(net, bparts)
    run = _meta_run(net, {s.prefixes[-1] for s in steps})

    def cost(prefixes):
        return (_under(run.params, prefixes), _under(run.macs, prefixes)) if cv.annotate else None

    inputs = _module_inputs(net, stage, m)
    cv.column([cv.make(f"in{b}", f"in b{b} · {_res(res[b])}\n{_join(_ch(inputs.get(b)), net.hw(res[b]))}", "io",
                       **row_fill(b)) for b in branches], header=f"{name} input")
    last = {b: (f"in{b}", 0) for b in branches}
    for k, step in enumerate(steps):
        step.id = f"st{k}"
        readers = branches if step.branch is None else [step.branch]
        step.depth = max(last[b][1] for b in readers) + 1
        for src in dict.fromkeys(last[b][0] for b in readers):
            cv.edge(src, step.id, "flow", **({"weight": "8"} if step.branch is not None else {}))
        for b in readers:
            last[b] = (step.id, step.depth)
    shown = -1
    for d in sorted({s.depth for s in steps}):
        col = sorted((s for s in steps if s.depth == d), key=lambda s: -1 if s.branch is None else s.branch)
        nodes = []
        for s in col:
            shape = net.shape(stage, m, s.branch) if s.branch is not None else None
            attrs = row_fill(s.branch) if s.branch is not None else {
                "fillcolor": MIXER_FILL, "height": f"{ROW_HEIGHT * len(branches):.2f}"}
            label = _step_label(net, s, shape, run.channels.get(s.prefixes[-1]))
            nodes.append(cv.make(s.id, label, "block", s.prefixes, cost(s.prefixes), **attrs))
        block = min(s.block for s in col)
        cv.column(nodes, header=f"block {block + 1}" if block != shown else None)
        shown = block
    outs = _block_exchange(cv, net, fusions, {b: last[b][0] for b in branches}, cost)
    cv.column([cv.make(f"out{b}", f"out b{b} · {_res(res[b])}\n{_join(_ch(net.shape(stage, m, b)), net.hw(res[b]))}",
                       "io", **row_fill(b)) for b in sorted(outs)], header=f"{name} output")
    for b in sorted(outs):
        cv.edge(outs[b], f"out{b}", "flow", weight="8")
    targets = sorted({f.branch for f in fusions})
    if not fusions:
        state = "fusion off (branches pass on unexchanged)"
    elif len(targets) < len(branches):
        state = f"fusion into branch{'es' if len(targets) > 1 else ''} {', '.join(map(str, targets))} only"
    else:
        state = "fusion on"
    return f": {name}, {len(branches)} branches, {state}"


def _block_exchange(cv: _Canvas, net: _Net, fusions: list[PartPlan], last: dict[int, str], cost) -> dict[int, str]:
    """Block level exchange: a ``fuse_unit`` node per fusion part that does something, ordered by target, then
    source, in one column, then a sum per fused output. Returns branch -> node id handing on each output.

    A branch's own term with no module of its own passes the units' column through an invisible ``layout`` point,
    so Graphviz draws it across the column instead of around it (``_term_order`` places the points)."""
    if not fusions:
        return dict(last)
    targets = sorted({f.branch for f in fusions})
    active = {(f.branch, f.source): f for f in fusions if f.source != f.branch or net.active(f)}
    terms = _term_order(targets, set(active))
    units = []
    for i, j in terms:
        f = active.get((i, j))
        if f is None:  # the own term: an edge through a bend point
            pid = f"id{i}"
            units.append(cv.make(pid, "", "layout", shape="point", width="0.01", height="0.01", style="invis"))
            cv.fuse_edge(last[i], pid, i, i)
            cv.edges[-1][3]["arrowhead"] = "none"
            cv.edge(pid, f"sum{i}", "layout", color=SAME_COLOUR)
            continue
        s = net.shapes[f.key]
        uid = f"u{i}_{j}"
        summary = _summary(net.modules, f.prefixes)
        label = f"{j}→{i}: {summary}\n{_join(_ch(s.out_shape), _hw_of(s.out_shape))}"
        colour = UP_COLOUR if j > i else DOWN_COLOUR if j < i else SAME_COLOUR
        units.append(cv.make(uid, label, "fuse_unit", f.prefixes, cost(f.prefixes), color=colour, **row_fill(i)))
        cv.fuse_edge(last[j], uid, j, i, summary)
        cv.edge(uid, f"sum{i}", "fuse_chain", color=colour)
    cv.column(units, header="fusion units")
    cv.column([cv.make(f"sum{i}", "Σ", "fuse", shape="circle", style="filled", margin="0.02",
                       tooltip=f"sum into branch {i}",
                       keys=" ".join(q for f in fusions if f.branch == i for q in f.prefixes), **row_fill(i))
               for i in targets], header="exchange")
    return {i: f"sum{i}" for i in targets}


def _term_order(targets: list[int], active: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """The units' column, top to bottom: (target, source) by target, then source; a target's own term without a
    module goes at the end of its group facing the column's middle (where the branch rows sit, so its edge runs
    straight across): the end of a group in the upper half, the start of one in the lower half."""
    groups = [sorted(t for t in active if t[0] == i and t[1] != i) for i in targets]
    total = sum(len(g) + 1 for g in groups)
    out: list[tuple[int, int]] = []
    for i, g in zip(targets, groups):
        own = [(i, i)]
        upper = len(out) + (len(g) + 1) / 2 < total / 2
        out += (g + own) if upper else (own + g)
    return out


# ---- title and entry point -------------------------------------------------------------------------------
def _title(net: _Net, level: str, extra: str, annotate: str | None, scope: list[PartPlan] | None = None) -> str:
    """Config, level and schedule; the annotation's totals (the model's, and ``scope``'s parts: the module opened
    at block level); the colour legend."""
    cfg = net.cfg
    h, w = cfg.input_hw
    mods = [(s, m) for s in net.stages for m in net.modules_of(s)]
    fusing = sum(1 for s, m in mods if any(p.kind == "fusion" and p.module == m for p in net.stages[s]))
    head = "heatmap (final_layer)" if net.model_head else "none"
    lines = [f"{cfg.name}: {cfg.spec.title}, {cfg.family}, head {head}, input {h}x{w}, "
             f"{fusing} of {len(mods)} modules fuse, {level} level{extra}"]
    counts = list(net.counts.values())
    params, macs = net.cost(scope) if scope else (0, 0)
    if annotate == "params":
        part = f"; this module {fmt_params(params)}" if scope else ""
        lines.append(f"total {fmt_params(sum(c.params for c in counts))}{part}")
    elif annotate == "gflops":
        att = sum(c.attention_macs for c in counts)
        note = f"; window-attention matmuls ({att / 2**30:.3f} G multiply-adds) not included" if att else ""
        part = f"; this module {fmt_gflops(macs / 2**30)}" if scope else ""
        lines.append(f"total {fmt_gflops(sum(c.conv_linear_macs for c in counts) / 2**30)}{part} "
                     f"(paper convention: Conv2d + Linear multiply-adds / 2^30, MFLOPs / 2^20{note})")
    legend = ("blue: from a lower resolution (conv, then upsample) · red: from a higher resolution (strided convs) · "
              "grey: same branch")
    if any(p.kind == "branch" and p.branch is None for p in net.plans):
        legend += " · purple: reads every branch"
    lines.append(legend)
    return "\n".join(lines) + "\n"


def network_module_names(cfg: NetworkConfig) -> list[str]:
    """Every exchange module of ``cfg`` as ``stageS.moduleM`` (the parts plan's stage names, 0-based M), in order."""
    return [f"{s}.module{m}" for s, parts in _stages(cfg.spec.parts(cfg.backbone)).items()
            for m in sorted({p.module for p in parts if p.module is not None})]


def build_network_diagram(
    cfg: NetworkConfig,
    level: str = "module",
    module: str | None = None,
    annotate: str | None = None,
    input_hw: tuple[int, int] | None = None,
) -> graphviz.Digraph:
    """The diagram of a registered network's model ``cfg`` (a ``NetworkConfig``) at ``level`` (``stage``,
    ``module`` or ``block``) as a ``graphviz.Digraph``, drawn from its parts plan (see the module docstring).

    ``module`` (block level): ``stageS.moduleM`` as the parts plan names stages (0-based M; default: the last
    stage's first module). ``annotate``: ``params`` or ``gflops`` (paper convention: Conv2d + Linear
    multiply-accumulates / 2**30) per node. ``input_hw``: (H, W) pixels for the sizes shown (default: the
    config's). Raises ``DiagramError`` for a bad level, module or annotation, ``ConfigError`` (field
    ``input_size``) for an input size the network cannot take.
    """
    if level not in LEVELS:
        raise DiagramError(f"level {quote(level)}: expected one of {', '.join(LEVELS)}")
    if module is not None and level != "block":
        raise DiagramError(f"module {quote(module)} is only used at block level (got level {quote(level)})")
    if annotate not in (None, *ANNOTATIONS):
        raise DiagramError(f"annotate {quote(annotate)}: expected params or gflops")
    if input_hw is not None:
        cfg = cfg.with_input(tuple(input_hw))
    net = _Net(cfg)
    cv = _Canvas(annotate)
    scope = None
    if level == "block":
        extra = _block_level(cv, net, module)
        scope = net.module_parts(*_parse_module(net, module))
    else:
        _network(cv, net, per_stage=level == "stage")
        extra = ""
    return cv.graph(cfg.name, _title(net, level, extra, annotate, scope))


__all__ = ["BLOCK_LABELS", "STEP_LABELS", "build_network_diagram", "network_module_names"]
