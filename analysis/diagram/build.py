"""HRNet architecture diagrams in the paper's layout, built from the config (not by tracing).

Depth runs left to right and resolution top to bottom (1/4 on top, then 1/8, 1/16, 1/32): every
column is one rank of the Graphviz layout (``rank=same``), ordered top to bottom by branch. Three
levels of detail:

- ``stage``: one node per branch per stage; the exchange drawn is the stage's last module's (the
  across-stage exchange); within-stage exchanges are counted in the node labels.
- ``module``: one node per branch per module, and the exchange unit of every module whose fusion is
  on: a summation node per fused output, fed by every branch (blue: 1x1 conv + upsampling from a
  lower resolution; red: a chain of strided 3x3 convs from a higher one; grey: same branch).
  Modules with fusion off pass their branches straight on, so the 1-, 3- and 8-fusion variants
  differ at a glance. HRNetV1 (pose) fuses its last module into branch 0 only, as the official code.
- ``block``: one module opened up: its residual blocks per branch and its full fuse matrix, each
  fusion unit spelled out (1x1 conv + BN, upsample; strided 3x3 conv + BN (+ ReLU) chains).

Around the modules: the stem (two strided 3x3 convs), stage 1, the transitions (a 3x3 conv where a
branch's channels change; each new branch opened by a strided 3x3 conv from the lowest-resolution
branch, as the official ``_make_transition_layer``) and the head (V1, V2, V2p, OCR, classification or HigherHRNet).

Every node and edge carries a ``class`` attribute (kept in SVG output) naming what it is:
nodes ``io``, ``stem``, ``branch``, ``transition``, ``fuse``, ``block``, ``fuse_unit``, ``head``,
``header``; edges ``stem``, ``flow``, ``transition``, ``fuse_up``, ``fuse_down``, ``fuse_identity``,
``fuse_chain``, ``head``, ``layout`` (invisible ordering edges). Nodes that stand for submodules carry
``prefixes``: their state_dict prefixes, space-separated (what their params and GFLOPs sum over); nodes
without parameters of their own that belong to a fusion (a block level sum, an upsampling) carry ``keys``:
the fusion's state_dict prefix, what a search for it finds.

``render(graph, path)`` writes ``.dot`` / ``.gv`` / ``.svg`` / ``.png`` (SVG and PNG through the
Graphviz ``dot`` program); ``render_bytes(graph, fmt)`` returns the bytes for the UI.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import graphviz

from analysis.diagram.canvas import (
    ANNOTATIONS,
    DOWN_COLOUR,
    LEVELS,
    ROW_FILL,
    UP_COLOUR,
    Canvas,
    DiagramError,
    Node,
    row_fill,
)
from analysis.diagram.costs import CostTable, cost_table, fmt_gflops, fmt_params
from hrnet_core import HRNetConfig, named_fusion
from hrnet_core.config import BLOCK_EXPANSION
from hrnet_core.errors import quote
from hrnet_core.graph import STEM_PREFIXES, architecture
from hrnet_core.heads import CLS_FEATURES, cls_head_channels
from hrnet_core.networks.model_config import NetworkConfig
from hrnet_core.shapes import branch_sizes

FORMATS = ("dot", "gv", "svg", "png")
DOT_TIMEOUT_S = 120

BLOCK_NAMES = {"BASIC": "BasicBlock", "BOTTLENECK": "Bottleneck"}


# ---- geometry from the config (no tracing) ---------------------------------------------------------
def module_names(cfg: HRNetConfig) -> list[str]:
    """Every module as ``stageS.moduleM`` (0-based M, as ``forward_intermediates`` names them); for another
    registered network (``NetworkConfig``), its parts plan's modules."""
    if isinstance(cfg, NetworkConfig):
        from analysis.diagram.network import network_module_names

        return network_module_names(cfg)
    return [f"stage{s + 2}.module{m}" for s, st in enumerate(cfg.stages) for m in range(st.modules)]


def _parse_module(cfg: HRNetConfig, name: str | None) -> tuple[int, int]:
    if name is None:
        return len(cfg.stages) - 1, 0
    m = re.fullmatch(r"\s*stage(\d+)[._ ]?module(\d+)\s*", str(name))
    if m:
        s, k = int(m.group(1)) - 2, int(m.group(2))
        if 0 <= s < len(cfg.stages) and 0 <= k < cfg.stages[s].modules:
            return s, k
    raise DiagramError(f"module {quote(name)}: no such module; expected one of {', '.join(module_names(cfg))}")


class _Builder(Canvas):
    def __init__(self, cfg: HRNetConfig, input_hw, annotate: str | None):
        super().__init__()
        if annotate not in (None, *ANNOTATIONS):
            raise DiagramError(f"annotate {quote(annotate)}: expected params or gflops")
        if input_hw is not None:
            cfg = cfg.with_input(tuple(input_hw))  # validated: ConfigError names input_size
        self.cfg = cfg
        self.input_hw = tuple(cfg.input_hw)
        self.sizes = branch_sizes(cfg, self.input_hw)
        self.annotate = annotate
        self.cost: CostTable | None = cost_table(cfg, self.input_hw) if annotate else None

    # nodes and edges
    def make(self, nid: str, label: str, cls: str, prefixes=(), **attrs) -> Node:
        note = exact = None
        if self.cost is not None and prefixes:
            params, macs = self.cost.params(prefixes), self.cost.macs(prefixes)
            note = fmt_params(params) if self.annotate == "params" else fmt_gflops(macs / 2**30)
            exact = f"params={params} macs={macs}"
        return self.node(nid, label, cls, prefixes, note, exact, **attrs)

    def branch_attrs(self, b: int) -> dict:
        return row_fill(b)

    def res(self, b: int) -> str:
        return f"1/{4 * 2**b}"

    def hw(self, b: int) -> str:
        h, w = self.sizes[b]
        return f"{h}x{w}"

    def hrnet_fuse_edge(self, src: str, dst: str, j: int, i: int) -> None:
        """Exchange edge from branch j to fused output i (the fusion unit is drawn on the edge)."""
        if j == i:
            tip = "same resolution: identity"
        elif j > i:
            tip = f"1x1 conv + BN, upsample x{2 ** (j - i)} ({self.cfg.upsample.mode}): branch {j} -> {i}"
        else:
            tip = f"{i - j} strided 3x3 conv{'s' if i - j > 1 else ''} + BN: branch {j} -> {i}"
        self.fuse_edge(src, dst, j, i, tip)

    # emit
    def hrnet_graph(self, title: str) -> graphviz.Digraph:
        return self.graph(self.cfg.name or "hrnet", title)

    # shared parts
    def stem_and_stage1(self) -> str:
        cfg = self.cfg
        h, w = self.input_hw
        self.column([self.make("input", f"input\n3 x {h}x{w}", "io", shape="box", style="rounded,filled",
                               fillcolor="#eeeeee")])
        c = cfg.stem.channels
        self.column([self.make("stem", f"stem\n2x 3x3 conv s2\n{c} ch · {self.hw(0)}", "stem",
                               STEM_PREFIXES, fillcolor="#eeeeee")], header="stem")
        s1 = cfg.stage1
        self.column([self.make("layer1", f"stage 1 · {self.res(0)}\n{s1.out_channels} ch · {self.hw(0)}\n"
                               f"{s1.blocks}x {BLOCK_NAMES[s1.block]}", "branch", ("layer1",), **self.branch_attrs(0))],
                    header="stage1")
        self.edge("input", "stem", "stem")
        self.edge("stem", "layer1", "stem")
        return "layer1"

    def transition(self, s: int, prev_out: list[str], targets: list[str]) -> None:
        """Transition into stage index s: ``prev_out`` are the previous stage's output node ids per
        branch, ``targets`` the first column's node ids of stage s."""
        cfg = self.cfg
        st = cfg.stages[s]
        pre_ch = (cfg.stage1.out_channels,) if s == 0 else cfg.stages[s - 1].out_channels
        cur = st.out_channels
        nodes = []
        for i, c in enumerate(cur):
            tid = f"t{s + 2}b{i}"
            if i < len(pre_ch):
                if c != pre_ch[i]:
                    nodes.append(self.make(tid, f"3x3 conv\n{pre_ch[i]}→{c} ch", "transition",
                                           (f"transition{s + 1}.{i}",), fillcolor="#f3f3f3"))
                    self.edge(prev_out[i], tid, "transition")
                    self.edge(tid, targets[i], "transition")
                else:
                    self.edge(prev_out[i], targets[i], "flow")
            else:
                steps = i + 1 - len(pre_ch)
                convs = f"{steps}x 3x3 conv s2" if steps > 1 else "3x3 conv s2"
                nodes.append(self.make(tid, f"new branch {self.res(i)}\n{convs}\n{pre_ch[-1]}→{c} ch", "transition",
                                       (f"transition{s + 1}.{i}",), fillcolor="#f3f3f3"))
                self.edge(prev_out[-1], tid, "transition")
                self.edge(tid, targets[i], "transition")
        self.column(nodes)

    def head(self, final: list[str]) -> None:
        """The head on the final outputs ``final`` (node id per branch; v1 reads only branch 0)."""
        cfg = self.cfg
        hk = cfg.head
        h0, w0 = self.sizes[0]
        chans = cfg.stages[-1].out_channels
        k = hk.final_conv_kernel
        if hk.kind == "v1":
            self.column([self.make("head_final", f"final_layer\n{k}x{k} conv {chans[0]}→{hk.outputs}", "head",
                                   ("final_layer",), fillcolor="#fde9d9")], header="head (V1)")
            self.column([self.make("output", f"{hk.outputs} heatmaps\n{h0}x{w0}", "io", fillcolor="#eeeeee")])
            self.edge(final[0], "head_final", "head")
            self.edge("head_final", "output", "head")
        elif hk.kind == "v2":
            attr = "last_layer" if cfg.family == "seg" else "head"
            total = sum(chans)
            what = "class logits" if cfg.family == "seg" else ("landmark heatmaps" if cfg.family == "face" else "maps")
            self.column([self.make("head_concat", f"upsample (bilinear)\n+ concat\n{total} ch · {h0}x{w0}", "head",
                                   fillcolor="#fde9d9")], header="head (V2)")
            self.column([self.make("head_conv", f"1x1 conv + BN + ReLU\n{total}→{total}", "head",
                                   (f"{attr}.0", f"{attr}.1"), fillcolor="#fde9d9")])
            self.column([self.make("head_final", f"{k}x{k} conv\n{total}→{hk.outputs}", "head", (f"{attr}.3",),
                                   fillcolor="#fde9d9")])
            self.column([self.make("output", f"{hk.outputs} {what}\n{h0}x{w0}", "io", fillcolor="#eeeeee")])
            for f in final:
                self.edge(f, "head_concat", "head")
            self.edge("head_concat", "head_conv", "head")
            self.edge("head_conv", "head_final", "head")
            self.edge("head_final", "output", "head")
        elif hk.kind == "v2p":
            total = sum(chans)
            self.column([self.make("head_concat", f"upsample (bilinear)\n+ concat\n{total} ch · {h0}x{w0}", "head",
                                   fillcolor="#fde9d9")], header="head (V2p)")
            self.column([self.make("head_reduce", f"1x1 conv\n{total}→{hk.channels}", "head", ("reduction_conv",),
                                   fillcolor="#fde9d9")])
            levels = []
            for lv in range(hk.levels):
                pool = f"avg-pool {2**lv}x{2**lv} + " if lv else ""
                lh, lw = h0 // 2**lv, w0 // 2**lv
                levels.append(self.make(f"head_p{lv}", f"P{lv} · 1/{4 * 2**lv}\n{pool}3x3 conv {hk.channels}\n{lh}x{lw}",
                                        "head", (f"fpn_convs.{lv}",), fillcolor=ROW_FILL[lv % len(ROW_FILL)]))
                self.edge("head_reduce", f"head_p{lv}", "head")
            self.column(levels, header="pyramid")
            for f in final:
                self.edge(f, "head_concat", "head")
            self.edge("head_concat", "head_reduce", "head")
        elif hk.kind == "higher":
            self._higher_head(final[0], chans[0])
        elif hk.kind == "ocr":
            total, mid, key = sum(chans), hk.channels, hk.key_channels
            self.column([self.make("head_concat", f"upsample (bilinear)\n+ concat\n{total} ch · {h0}x{w0}", "head",
                                   fillcolor="#fde9d9")], header="head (OCR)")
            self.column([
                self.make("head_aux", f"aux_head: soft object regions\n1x1 conv + BN + ReLU, 1x1 conv\n{total}→{hk.outputs}",
                          "head", ("aux_head",), fillcolor="#fde9d9"),
                self.make("head_pixels", f"conv3x3_ocr: pixel features\n3x3 conv + BN + ReLU\n{total}→{mid}", "head",
                          ("conv3x3_ocr",), fillcolor="#fde9d9"),
            ])
            self.column([self.make("head_gather", f"gather: {hk.outputs} object\nregion features", "head",
                                   ("ocr_gather_head",), fillcolor="#fde9d9")])
            self.column([self.make("head_distri", f"object attention (key {key})\n+ concat, 1x1 conv {2 * mid}→{mid}",
                                   "head", ("ocr_distri_head",), fillcolor="#fde9d9")])
            self.column([self.make("head_final", f"cls_head\n1x1 conv {mid}→{hk.outputs}", "head", ("cls_head",),
                                   fillcolor="#fde9d9")])
            self.column([self.make("output_aux", f"{hk.outputs} aux logits\n{h0}x{w0}", "io", fillcolor="#eeeeee"),
                         self.make("output", f"{hk.outputs} class logits\n{h0}x{w0}", "io", fillcolor="#eeeeee")])
            for f in final:
                self.edge(f, "head_concat", "head")
            for a, b in (("head_concat", "head_aux"), ("head_concat", "head_pixels"), ("head_aux", "head_gather"),
                         ("head_pixels", "head_gather"), ("head_gather", "head_distri"), ("head_pixels", "head_distri"),
                         ("head_distri", "head_final"), ("head_final", "output"), ("head_aux", "output_aux")):
                self.edge(a, b, "head")
        elif hk.kind == "cls":
            hc = cls_head_channels(len(chans))
            incre = [self.make(f"head_incre{i}", f"incre {i}: Bottleneck\n{chans[i]}→{hc[i] * 4} ch", "head",
                               (f"incre_modules.{i}",), **self.branch_attrs(i)) for i in range(len(chans))]
            self.column(incre, header="head (classification)")
            for i, f in enumerate(final):
                self.edge(f, f"head_incre{i}", "head")
            prev = "head_incre0"
            for i in range(len(chans) - 1):
                did = f"head_down{i}"
                self.free.append(self.make(did, f"+ downsamp {i}\n3x3 conv s2\n{hc[i] * 4}→{hc[i + 1] * 4}", "head",
                                           (f"downsamp_modules.{i}",), fillcolor="#fde9d9"))
                self.edge(prev, did, "head")
                if i > 0:
                    self.edge(f"head_incre{i}", did, "head")
                prev = did
            self.free.append(self.make("head_final", f"final_layer\n1x1 conv {hc[-1] * 4}→{CLS_FEATURES}", "head",
                                       ("final_layer",), fillcolor="#fde9d9"))
            self.edge(f"head_incre{len(chans) - 1}", "head_final", "head")
            if len(chans) > 1:
                self.edge(prev, "head_final", "head")
            self.free.append(self.make("head_classifier", f"avg-pool + FC\n{CLS_FEATURES}→{hk.outputs}", "head",
                                       ("classifier",), fillcolor="#fde9d9"))
            self.free.append(self.make("output", f"{hk.outputs} logits", "io", fillcolor="#eeeeee"))
            self.edge("head_final", "head_classifier", "head")
            self.edge("head_classifier", "output", "head")

        else:
            self._graph_head(final)

    def _graph_head(self, final: list[str]) -> None:
        """A head kind without a drawing of its own: one node per head part of ``hrnet_core.architecture``
        (its key, state_dict prefix and output shape), chained in the order they run, then the output."""
        graph = architecture(self.cfg)
        parts = graph.of_kind("head")
        nodes = []
        for i, p in enumerate(parts):
            shape = "x".join(str(v) for v in (p.out_shape or ())[1:])
            nodes.append(self.make(f"head_part{i}", f"{p.prefix}\n{shape}", "head", p.prefixes, fillcolor="#fde9d9"))
        self.column(nodes, header=f"head ({self.cfg.head.kind})")
        self.column([self.make("output", "output", "io", fillcolor="#eeeeee")])
        for f in final[:1] if self.cfg.head.reads_branch0_only else final:
            self.edge(f, "head_part0", "head")
        for i in range(1, len(parts)):
            self.edge(f"head_part{i - 1}", f"head_part{i}", "head")
        self.edge(f"head_part{len(parts) - 1}", "output", "head")

    def _higher_head(self, feat: str, c0: int) -> None:
        """HigherHRNet (hrnet_core.heads.higher): a prediction on branch 0, then per deconvolution stage the
        features (and the previous prediction, where concatenated) up through a transposed conv and
        BasicBlocks to another prediction at twice the resolution; one output node per prediction."""
        hk = self.cfg.head
        h, w = self.sizes[0]
        k = hk.final_conv_kernel
        preds, feats = hk.prediction_channels, (c0, *hk.deconv_channels)
        outputs = []
        prev_pred, prev_feat = "head_pred0", feat
        for i, p in enumerate(preds):
            if i:
                cat_on = hk.cat_output[i - 1]
                cin = feats[i - 1] + (preds[i - 1] if cat_on else 0)
                cat = f"concat {feats[i - 1]}+{preds[i - 1]} ch\n" if cat_on else ""
                kd = hk.deconv_kernels[i - 1]
                did = f"head_deconv{i - 1}"
                h, w = 2 * h, 2 * w
                self.column([self.make(did, f"deconv_layers.{i - 1} · 1/{4 // 2**i}\n{cat}{kd}x{kd} transposed conv s2 "
                                       f"{cin}→{feats[i]}\n{hk.deconv_blocks}x BasicBlock · {h}x{w}", "head",
                                       (f"deconv_layers.{i - 1}",), fillcolor="#fde9d9")])
                self.edge(prev_feat, did, "head")
                if cat_on:
                    self.edge(prev_pred, did, "head")
                prev_feat = did
            pid = f"head_pred{i}"
            self.column([self.make(pid, f"final_layers.{i}\n{k}x{k} conv {feats[i]}→{p}", "head", (f"final_layers.{i}",),
                                   fillcolor="#fde9d9")], header="head (HigherHRNet)" if i == 0 else None)
            self.edge(prev_feat, pid, "head")
            tags = p - hk.outputs
            what = f"{hk.outputs} heatmaps" + (f"\n+ {tags} tag maps" if tags else "")
            outputs.append(self.make(f"output{i}" if i else "output", f"{what}\n{h}x{w}", "io", fillcolor="#eeeeee"))
            self.edge(pid, outputs[-1].id, "head")
            prev_pred = pid
        self.column(outputs)

    def title(self, level: str, extra: str = "") -> str:
        cfg = self.cfg
        h, w = self.input_hw
        sched = named_fusion(cfg) or "custom"
        parts = [f"{cfg.name}: {cfg.family}, head {cfg.head.kind}, input {h}x{w}, "
                 f"fusion {sched} ({cfg.num_fusions} of {cfg.num_modules} modules fuse), {level} level{extra}"]
        if self.cost is not None:
            if self.annotate == "params":
                parts.append(f"total {fmt_params(self.cost.total_params)}")
            else:
                parts.append(f"total {fmt_gflops(self.cost.total_gflops)} "
                             "(paper convention: conv + linear multiply-adds / 2^30)")
        parts.append("blue: 1x1 conv + upsample from lower resolution · red: strided 3x3 convs from higher "
                     "resolution · grey: same branch")
        return "\n".join(parts) + "\n"


# ---- the three levels ----------------------------------------------------------------------------
def _branch_label(bd: _Builder, s: int, b: int, note: str = "") -> str:
    st = bd.cfg.stages[s]
    label = f"b{b} · {bd.res(b)} · {st.out_channels[b]} ch\n{bd.hw(b)} · {st.blocks[b]}x {BLOCK_NAMES[st.block]}"
    return label + (f"\n{note}" if note else "")


def _network(bd: _Builder, per_stage: bool) -> None:
    """Stage or module level: stem, stage 1, then per stage its transition and its columns (one per
    stage or per module), each followed by its exchange unit when that fuses, then the head."""
    cfg = bd.cfg
    prev = [bd.stem_and_stage1()]
    for s, st in enumerate(cfg.stages):
        S = s + 2
        if per_stage:
            last = st.modules - 1
            note = f"fusion in {sum(st.fuse)}/{st.modules} modules" if st.modules > 1 else ""
            plural = "s" if st.modules > 1 else ""
            # A stage node stands for its blocks in every module and the within-stage exchanges into it (of
            # the modules that fuse, and into a branch they fuse into: others have no fuse_layers).
            units = [(f"s{S}", last, f"stage {S}: {st.modules} module{plural}", note,
                      [[f"stage{S}.{m}.branches.{b}" for m in range(st.modules)]
                       + [f"stage{S}.{m}.fuse_layers.{b}" for m in range(last) if b < cfg.fuse_outputs(s, m)]
                       for b in range(st.branches)])]
        else:
            units = [(f"s{S}m{m}", m, f"stage{S}.module{m}", "",
                      [[f"stage{S}.{m}.branches.{b}"] for b in range(st.branches)]) for m in range(st.modules)]
        for u, (uid, m, title, note, prefixes) in enumerate(units):
            ids = [f"{uid}b{b}" for b in range(st.branches)]
            if u == 0:
                bd.transition(s, prev, ids)
            else:
                for b in range(st.branches):
                    bd.edge(prev[b], ids[b], "flow", weight="8")
            bd.column([bd.make(ids[b], _branch_label(bd, s, b, note), "branch", prefixes[b], **bd.branch_attrs(b))
                       for b in range(st.branches)], header=title)
            outs = cfg.fuse_outputs(s, m)
            if outs:
                fids = [f"{uid}f{i}" for i in range(outs)]
                bd.column([bd.make(fids[i], "Σ", "fuse", (f"stage{S}.{m}.fuse_layers.{i}",), shape="circle",
                                   style="filled", fillcolor=ROW_FILL[i % len(ROW_FILL)], margin="0.02",
                                   tooltip=f"exchange unit: sum into branch {i}, then ReLU")
                           for i in range(outs)])
                for i in range(outs):
                    for j in range(st.branches):
                        bd.hrnet_fuse_edge(ids[j], fids[i], j, i)
                prev = fids + ids[outs:]
            else:
                prev = ids
    bd.head(prev)


def _block_level(bd: _Builder, module: str | None) -> str:
    cfg = bd.cfg
    s, m = _parse_module(cfg, module)
    st = cfg.stages[s]
    S = s + 2
    name = f"stage{S}.module{m}"
    pfx = f"stage{S}.{m}"
    n = st.branches
    exp = BLOCK_EXPANSION[st.block]
    out_ch = st.out_channels
    in_ch = out_ch  # the transition (first module) or the previous module hands over out_channels
    bd.column([bd.make(f"in{b}", f"in b{b} · {bd.res(b)}\n{in_ch[b]} ch · {bd.hw(b)}", "io", **bd.branch_attrs(b))
               for b in range(n)], header=f"{name} input")
    last_ids = [f"in{b}" for b in range(n)]
    for k in range(max(st.blocks)):
        nodes = []
        for b in range(n):
            if k >= st.blocks[b]:
                continue
            bid = f"blk{b}_{k}"
            convs = "3x3, 3x3" if st.block == "BASIC" else "1x1, 3x3, 1x1"
            ch = f"{st.channels[b]} ch" if exp == 1 else f"{st.channels[b]}→{out_ch[b]} ch"
            proj = "\n+ 1x1 projection" if k == 0 and in_ch[b] != out_ch[b] else ""
            nodes.append(bd.make(bid, f"{BLOCK_NAMES[st.block]} {k + 1}\n{convs} · {ch}{proj}", "block",
                                 (f"{pfx}.branches.{b}.{k}",), **bd.branch_attrs(b)))
            bd.edge(last_ids[b], bid, "flow", weight="8")
            last_ids[b] = bid
        bd.column(nodes, header=f"block {k + 1}")
    outs = cfg.fuse_outputs(s, m)
    if outs:
        # Every fusion unit is a chain of nodes ending at the sum of its target branch; chains are
        # right-aligned in columns before the sums and ordered by (target, source) within a column.
        chains: list[list[Node]] = []
        for i in range(outs):
            sid = f"sum{i}"
            for j in range(n):
                unit = f"{pfx}.fuse_layers.{i}.{j}"
                if j == i:
                    bd.hrnet_fuse_edge(last_ids[j], sid, j, i)
                    continue
                if j > i:
                    chain = [
                        bd.make(f"u{i}_{j}_conv", f"1x1 conv + BN\n{out_ch[j]}→{out_ch[i]} ch", "fuse_unit",
                                (f"{unit}.0", f"{unit}.1"), color=UP_COLOUR, **bd.branch_attrs(j)),
                        bd.make(f"u{i}_{j}_up", f"upsample x{2 ** (j - i)}\n({cfg.upsample.mode}) → {bd.hw(i)}", "fuse_unit",
                                color=UP_COLOUR, keys=unit, **bd.branch_attrs(i)),
                    ]
                    colour = UP_COLOUR
                else:
                    chain = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        c_out = out_ch[i] if last else out_ch[j]
                        relu = "" if last else " + ReLU"
                        chain.append(bd.make(f"u{i}_{j}_d{k}", f"3x3 conv s2 + BN{relu}\n{out_ch[j]}→{c_out} ch · "
                                             f"{bd.hw(j + k + 1)}", "fuse_unit", (f"{unit}.{k}",), color=DOWN_COLOUR,
                                             **bd.branch_attrs(j + k + 1)))
                    colour = DOWN_COLOUR
                bd.hrnet_fuse_edge(last_ids[j], chain[0].id, j, i)
                for x, y in zip(chain, chain[1:]):
                    bd.edge(x.id, y.id, "fuse_chain", color=colour)
                bd.edge(chain[-1].id, sid, "fuse_chain", color=colour)
                chains.append(chain)
        depth = max((len(c) for c in chains), default=0)
        for p in range(depth):
            bd.column([c[p - (depth - len(c))] for c in chains if p >= depth - len(c)],
                      header="fusion units" if p == 0 else None)
        bd.column([bd.make(f"sum{i}", "Σ + ReLU", "fuse", shape="circle", style="filled",
                           fillcolor=ROW_FILL[i % len(ROW_FILL)], margin="0.02", keys=f"{pfx}.fuse_layers.{i}")
                   for i in range(outs)], header="exchange")
        finals = [f"sum{i}" for i in range(outs)]
    else:
        finals = last_ids
    bd.column([bd.make(f"out{b}", f"out b{b} · {bd.res(b)}\n{out_ch[b]} ch · {bd.hw(b)}", "io", **bd.branch_attrs(b))
               for b in range(len(finals))], header=f"{name} output")
    for b, f in enumerate(finals):
        bd.edge(f, f"out{b}", "flow", weight="8")
    state = "fusion on" if outs else "fusion off (branches pass on unexchanged)"
    if outs and outs < n:
        state = f"fusion into branch{'es' if outs > 1 else ''} 0{'..' + str(outs - 1) if outs > 1 else ''} only"
    return f": {name}, {n} branches, {state}"


def build_diagram(
    cfg: HRNetConfig,
    level: str = "stage",
    module: str | None = None,
    annotate: str | None = None,
    input_hw: tuple[int, int] | None = None,
) -> graphviz.Digraph:
    """The diagram of ``cfg`` at ``level`` (``stage``, ``module`` or ``block``) as a ``graphviz.Digraph``.

    ``module`` (block level): ``stageS.moduleM`` (0-based M; default: the last stage's first module).
    ``annotate``: ``params`` or ``gflops`` (paper convention) per node. ``input_hw``: (H, W) for the
    sizes shown (default: the config's input size). Raises ``DiagramError`` for a bad level / module.
    Another registered network (a ``NetworkConfig``: Lite-HRNet, HRFormer ...) is drawn from its parts plan by
    ``analysis.diagram.network.build_network_diagram``.
    """
    if isinstance(cfg, NetworkConfig):
        from analysis.diagram.network import build_network_diagram  # imports this module's constants

        return build_network_diagram(cfg, level, module, annotate, input_hw)
    if level not in LEVELS:
        raise DiagramError(f"level {quote(level)}: expected one of {', '.join(LEVELS)}")
    if module is not None and level != "block":
        raise DiagramError(f"module {quote(module)} is only used at block level (got level {quote(level)})")
    bd = _Builder(cfg, input_hw, annotate)
    if level == "block":
        extra = _block_level(bd, module)
    else:
        _network(bd, per_stage=level == "stage")
        extra = ""
    return bd.hrnet_graph(bd.title(level, extra))


# ---- counting (for tests and the UI) --------------------------------------------------------------
_STMT = re.compile(r'^\s*("?[\w.]+"?)\s*(->\s*("?[\w.]+"?))?\s*\[(.*)\]\s*$')
_CLASS = re.compile(r'\bclass="?([\w-]+)"?')


def count_classes(graph: graphviz.Digraph | str) -> dict[str, Counter]:
    """``{"nodes": Counter(class -> n), "edges": Counter(class -> n)}`` read back from the DOT text."""
    source = graph if isinstance(graph, str) else graph.source
    nodes, edges = Counter(), Counter()
    for line in source.splitlines():
        m = _STMT.match(line)
        if not m:
            continue
        c = _CLASS.search(m.group(4))
        if not c:
            continue
        (edges if m.group(2) else nodes)[c.group(1)] += 1
    return {"nodes": nodes, "edges": edges}


def expected_counts(cfg: HRNetConfig, level: str = "module", module: str | None = None) -> dict[str, dict[str, int]]:
    """Node and edge counts per class that ``build_diagram`` must produce, from the config alone.

    Exchange edges: for each fusing module, one ``fuse_up`` per (i, j) with j > i and one
    ``fuse_down`` per j < i over its fuse outputs i (all branches, or branch 0 for V1's last module).
    """
    nodes: Counter = Counter()
    edges: Counter = Counter()
    stages = cfg.stages
    if level == "block":
        s, m = _parse_module(cfg, module)
        st = stages[s]
        n = st.branches
        outs = cfg.fuse_outputs(s, m)
        nodes["io"] = n + (outs if outs else n)
        nodes["block"] = sum(st.blocks)
        edges["flow"] = n + sum(b - 1 for b in st.blocks) + (outs if outs else n)
        if outs:
            nodes["fuse"] = outs
            pairs = [(i, j) for i in range(outs) for j in range(n) if i != j]
            nodes["fuse_unit"] = sum(2 if j > i else i - j for i, j in pairs)
            edges["fuse_up"] = sum(1 for i, j in pairs if j > i)
            edges["fuse_down"] = sum(1 for i, j in pairs if j < i)
            edges["fuse_identity"] = outs
            edges["fuse_chain"] = sum(2 if j > i else i - j for i, j in pairs)
        return {"nodes": dict(nodes), "edges": dict(edges)}
    per_stage = level == "stage"
    n_deconv = len(cfg.head.deconv_channels) if cfg.head.kind == "higher" else 0
    drawn = cfg.head.kind in ("v1", "v2", "v2p", "cls", "ocr", "higher")  # else drawn from the graph's head parts
    head_parts = 0 if drawn else len(architecture(cfg).of_kind("head"))
    nodes["io"] = {"v1": 2, "v2": 2, "cls": 2, "v2p": 1, "ocr": 3, "higher": 2 + n_deconv}.get(cfg.head.kind, 2)
    nodes["stem"] = 1
    nodes["branch"] = 1
    edges["stem"] = 2
    pre = (cfg.stage1.out_channels,)
    for s, st in enumerate(stages):
        units = [st.modules - 1] if per_stage else list(range(st.modules))
        nodes["branch"] += len(units) * st.branches
        changed = sum(1 for i in range(len(pre)) if st.out_channels[i] != pre[i])
        nodes["transition"] += changed + 1
        edges["transition"] += 2 * (changed + 1)
        edges["flow"] += (len(pre) - changed) + (len(units) - 1) * st.branches
        for m in units:
            outs = cfg.fuse_outputs(s, m)
            nodes["fuse"] += outs
            edges["fuse_up"] += sum(1 for i in range(outs) for j in range(st.branches) if j > i)
            edges["fuse_down"] += sum(1 for i in range(outs) for j in range(st.branches) if j < i)
            edges["fuse_identity"] += outs
        pre = st.out_channels
    n = stages[-1].branches
    kind = cfg.head.kind
    nodes["head"] = {"v1": 1, "v2": 3, "v2p": 2 + cfg.head.levels, "cls": n + (n - 1) + 2, "ocr": 6,
                     "higher": 1 + 2 * n_deconv}.get(kind, head_parts)
    # HigherHRNet: branch 0 -> prediction -> output, and per deconvolution stage features (+ the concatenated
    # prediction) -> deconv -> prediction -> output
    cats = sum(cfg.head.cat_output[:n_deconv])
    edges["head"] = {"v1": 2, "v2": n + 3, "v2p": n + 1 + cfg.head.levels, "cls": 3 * n + 1, "ocr": n + 9,
                     "higher": 2 + 3 * n_deconv + cats}.get(
        kind, (1 if cfg.head.reads_branch0_only else n) + head_parts)
    return {"nodes": {k: v for k, v in nodes.items() if v}, "edges": {k: v for k, v in edges.items() if v}}


# ---- rendering -------------------------------------------------------------------------------------
def dot_program() -> str:
    """Path of Graphviz's ``dot``; ``DiagramError`` with the install hint when it is missing."""
    path = shutil.which("dot")
    if path is None:
        raise DiagramError("Graphviz's 'dot' program is not installed (needed for SVG and PNG; DOT output works "
                           "without it): install the system package 'graphviz' (make sysdeps, or apt-get install graphviz)")
    return path


def run_dot(source: str, fmt: str) -> tuple[bytes, str]:
    """Run ``dot -T<fmt>`` on ``source``: ``(output bytes, stderr text)``; raises ``DiagramError`` when
    ``dot`` is missing, fails or times out."""
    if fmt not in ("svg", "png"):
        raise DiagramError(f"format {quote(fmt)}: dot output is svg or png")
    try:
        proc = subprocess.run([dot_program(), f"-T{fmt}"], input=source.encode("utf-8"), capture_output=True,
                              timeout=DOT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise DiagramError(f"Graphviz dot took over {DOT_TIMEOUT_S} s; try a coarser level") from None
    except OSError as err:
        raise DiagramError(f"cannot run Graphviz dot: {err}") from None
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0 or not proc.stdout:
        first = err.strip().splitlines()[0] if err.strip() else f"exit status {proc.returncode}"
        raise DiagramError(f"Graphviz dot failed: {first}")
    return proc.stdout, err


def render_bytes(graph: graphviz.Digraph, fmt: str) -> bytes:
    """The diagram as ``dot`` / ``gv`` (DOT text), ``svg`` or ``png`` bytes."""
    fmt = str(fmt).lower().lstrip(".")
    if fmt in ("dot", "gv"):
        return graph.source.encode("utf-8")
    if fmt not in FORMATS:
        raise DiagramError(f"format {quote(fmt)}: expected one of {', '.join(FORMATS)}")
    return run_dot(graph.source, fmt)[0]


def render(graph: graphviz.Digraph, path: str | Path) -> Path:
    """Write the diagram to ``path``, the format chosen by its suffix (.dot, .gv, .svg, .png)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise DiagramError(f"{path}: unknown output suffix {quote(path.suffix or '(none)')}; use .dot, .gv, .svg or .png")
    data = render_bytes(graph, fmt)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as err:
        raise DiagramError(f"{path}: cannot write ({err.__class__.__name__}: {err.strerror or err})") from None
    return path


__all__ = [
    "ANNOTATIONS",
    "FORMATS",
    "LEVELS",
    "DiagramError",
    "branch_sizes",
    "build_diagram",
    "count_classes",
    "dot_program",
    "expected_counts",
    "module_names",
    "render",
    "render_bytes",
    "run_dot",
]
