"""The classic HRNet's closed-form operator counts: one row per operator call of the forward pass, derived from
the config's shapes without building or running the model (fast enough for the app's every edit).

``operator_counts(cfg, batch)`` is the engine behind ``analysis.complexity.analyze`` (its module docstring
explains the conventions, the row columns and fvcore's dead-code rule); ``counts(section, input_hw)`` sums its
backbone rows per part for the network registry (``NetworkSpec.counts``). Equal to fvcore per operator
(``tests/test_complexity_fvcore.py``) and per part (``tests/test_network_hrnet.py``).
"""

from __future__ import annotations

import math
from functools import lru_cache

from ...config import BLOCK_EXPANSION, ConfigError, HRNetConfig
from ...errors import quote
from ...graph import architecture
from ...heads import CLS_FEATURES, cls_head_channels
from ...heads.higher import DECONV_PADDING, deconv_in_channels

# Operators that fvcore neither counts nor ignores: reported by ``FlopCountAnalysis.unsupported_ops()``.
FVCORE_UNSUPPORTED = {
    "add": "aten::add", "avg_pool2d": "aten::avg_pool2d", "softmax": "aten::softmax", "mul": "aten::mul",
    "feature_dropout": "aten::feature_dropout",
}

# ---------------------------------------------------------------------------------------------------
# analytic backend: shapes from the config, one row per operator call
# ---------------------------------------------------------------------------------------------------

class OperatorCounter:
    """Emits breakdown rows. Shapes are (C, H, W) per sample; counts are multiplied by the batch ``n``."""

    __slots__ = ("n", "rows", "params", "macs", "flops", "torch_flops", "acts", "dead_flops", "unsupported", "uncounted")

    def __init__(self, n: int):
        self.n = n
        self.rows: list[tuple] = []
        self.params = self.macs = self.flops = self.torch_flops = self.acts = self.dead_flops = 0
        self.unsupported: dict[str, int] = {}
        self.uncounted: dict[str, int] = {}

    def _row(self, name, meta, op, params, flops, macs, acts, shape, torch_flops=None):
        stage, module, branch, source, component, stride, live = meta
        res = "global" if stride is None else f"1/{stride}"
        if not live:  # TorchScript's trace drops it as dead code: fvcore never sees it
            self.dead_flops += flops
            flops = 0
        tf = 2 * macs if torch_flops is None else torch_flops
        self.rows.append((name, stage, module, branch, source, res, component, op, params, flops, macs, tf,
                          acts, shape, live))
        self.params += params
        self.flops += flops
        self.macs += macs
        self.torch_flops += tf
        self.acts += acts

    def conv(self, name, meta, cin, cout, k, stride, bias, h, w):
        pad = k // 2
        ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        if ho <= 0 or wo <= 0:
            raise ConfigError("input_size", f"too small: {name} would produce a {ho}x{wo} map")
        weight = cout * cin * k * k
        out = self.n * cout * ho * wo
        macs = weight * ho * wo * self.n
        self._row(name, meta, "conv", weight + (cout if bias else 0), macs, macs, out, (self.n, cout, ho, wo))
        return ho, wo

    def conv_transpose(self, name, meta, cin, cout, k, h, w):
        """A stride-2 ``ConvTranspose2d`` (HigherHRNet): the three conventions count it differently. fvcore and
        FlopCounterMode (x2) charge weight elements x *input* positions; the official ``get_model_summary``
        (class name contains "Conv") charges weight elements x *output* positions, 4 times as much."""
        pad, out_pad = DECONV_PADDING[k]
        ho, wo = (h - 1) * 2 - 2 * pad + k + out_pad, (w - 1) * 2 - 2 * pad + k + out_pad
        weight = cin * cout * k * k
        flops = weight * h * w * self.n
        macs = weight * ho * wo * self.n
        self._row(name, meta, "conv_transpose", weight, flops, macs, self.n * cout * ho * wo, (self.n, cout, ho, wo),
                  torch_flops=2 * flops)
        return ho, wo

    def bn(self, name, meta, c, h, w):
        out = self.n * c * h * w
        self._row(name, meta, "batch_norm", 2 * c, 2 * out, 0, out, (self.n, c, h, w))

    def relu(self, name, meta, c, h, w, inplace):
        self._row(name, meta, "relu", 0, 0, 0, 0 if inplace else self.n * c * h * w, (self.n, c, h, w))

    def _uncounted(self, name, meta, op, shape, writes=True, kind=None):
        out = math.prod(shape)
        self._row(name, meta, op, 0, 0, 0, out if writes else 0, shape)
        if meta[-1]:
            key = kind or FVCORE_UNSUPPORTED[op]
            self.unsupported[key] = self.unsupported.get(key, 0) + 1
            self.uncounted[key] = self.uncounted.get(key, 0) + out

    def add(self, name, meta, c, h, w, inplace=False):
        self._uncounted(name, meta, "add", (self.n, c, h, w), writes=not inplace,
                        kind="aten::add_" if inplace else None)

    def avg_pool(self, name, meta, c, h, w):
        self._uncounted(name, meta, "avg_pool2d", (self.n, c, h, w))

    def softmax(self, name, meta, shape):
        self._uncounted(name, meta, "softmax", (self.n, *shape))

    def mul(self, name, meta, shape):
        self._uncounted(name, meta, "mul", (self.n, *shape))

    def dropout(self, name, meta, shape):  # eval mode: returns its input, writes nothing
        self._uncounted(name, meta, "feature_dropout", (self.n, *shape), writes=False)

    def matmul(self, name, meta, b, m, k, n):
        """``(b, m, k) @ (b, k, n)``: fvcore counts m*k*n per batch entry, FlopCounterMode twice that;
        not a Conv2d/Linear, so 0 in the paper convention."""
        flops = self.n * b * m * k * n
        self._row(name, meta, "matmul", 0, flops, 0, self.n * b * m * n, (self.n * b, m, n), torch_flops=2 * flops)

    def upsample(self, name, meta, c, h, w, mode):
        out = self.n * c * h * w
        if mode == "nearest":
            self._row(name, meta, "upsample_nearest2d", 0, out, 0, out, (self.n, c, h, w))
        else:
            self._row(name, meta, "upsample_bilinear2d", 0, 4 * out, 0, out, (self.n, c, h, w))

    def cat(self, name, meta, c, h, w):
        self._row(name, meta, "cat", 0, 0, 0, self.n * c * h * w, (self.n, c, h, w))

    def adaptive_pool(self, name, meta, c, h, w):
        self._row(name, meta, "adaptive_avg_pool2d", 0, self.n * c * h * w, 0, self.n * c, (self.n, c, 1, 1))

    def linear(self, name, meta, cin, cout):
        macs = self.n * cin * cout
        self._row(name, meta, "linear", cin * cout + cout, macs, macs, self.n * cout, (self.n, cout))


def _meta(stage, component, stride, module=None, branch=None, source=None, live=True):
    return (stage, module, branch, source, component, stride, live)


def _liveness(cfg: HRNetConfig):
    """Which parts reach the output. Only the V1 and HigherHRNet heads leave some unread: they read branch 0, so the other
    branches of final modules that do not fuse (and what feeds only them) never reach the output; PyTorch
    runs them, TorchScript's trace (hence fvcore) drops them.

    Returns (stage1 live, {stage: live transition outputs}, {(stage, module): (live branches, live fusion
    outputs)}).
    """
    need = {0} if cfg.head.reads_branch0_only else set(range(cfg.stages[-1].branches))
    modules: dict[tuple[int, int], tuple[set, set]] = {}
    transitions: dict[int, set] = {}
    for s in reversed(range(len(cfg.stages))):
        st = cfg.stages[s]
        for m in reversed(range(st.modules)):
            if st.fuse[m] and st.branches > 1:
                modules[(s, m)] = (set(range(st.branches)) if need else set(), set(need))
            else:
                modules[(s, m)] = (set(need), set())
            need = modules[(s, m)][0]
        transitions[s] = set(need)
        n_pre = st.branches - 1
        need = {i for i in need if i < n_pre} | ({n_pre - 1} if any(i >= n_pre for i in need) else set())
    return bool(need), transitions, modules


def _block(em: OperatorCounter, prefix: str, meta, kind: str, cin: int, planes: int, stride: int, h: int, w: int):
    """A BasicBlock or Bottleneck (hrnet_core.blocks), in forward order; returns (out_channels, h, w)."""
    exp = BLOCK_EXPANSION[kind]
    out_ch = planes * exp
    if kind == "BASIC":
        h1, w1 = em.conv(f"{prefix}.conv1", meta, cin, planes, 3, stride, False, h, w)
        em.bn(f"{prefix}.bn1", meta, planes, h1, w1)
        em.relu(f"{prefix}.relu", meta, planes, h1, w1, True)
        h2, w2 = em.conv(f"{prefix}.conv2", meta, planes, planes, 3, 1, False, h1, w1)
        em.bn(f"{prefix}.bn2", meta, planes, h2, w2)
    else:
        h1, w1 = em.conv(f"{prefix}.conv1", meta, cin, planes, 1, 1, False, h, w)
        em.bn(f"{prefix}.bn1", meta, planes, h1, w1)
        em.relu(f"{prefix}.relu", meta, planes, h1, w1, True)
        h2, w2 = em.conv(f"{prefix}.conv2", meta, planes, planes, 3, stride, False, h1, w1)
        em.bn(f"{prefix}.bn2", meta, planes, h2, w2)
        em.relu(f"{prefix}.relu", meta, planes, h2, w2, True)
        h2, w2 = em.conv(f"{prefix}.conv3", meta, planes, out_ch, 1, 1, False, h2, w2)
        em.bn(f"{prefix}.bn3", meta, out_ch, h2, w2)
    if stride != 1 or cin != out_ch:
        em.conv(f"{prefix}.downsample.0", meta, cin, out_ch, 1, stride, False, h, w)
        em.bn(f"{prefix}.downsample.1", meta, out_ch, h2, w2)
    em.add(prefix, meta, out_ch, h2, w2, inplace=True)  # ``out += residual``: writes nothing new
    em.relu(f"{prefix}.relu", meta, out_ch, h2, w2, True)
    return out_ch, h2, w2


def _layer(em, prefix, meta, kind, cin, planes, blocks, h, w):
    """``hrnet_core.blocks.make_layer`` (stride 1)."""
    c = cin
    for b in range(blocks):
        c, h, w = _block(em, f"{prefix}.{b}", meta, kind, c, planes, 1, h, w)
    return c, h, w


def _count(cfg: HRNetConfig, batch: int) -> OperatorCounter:
    em = OperatorCounter(batch)
    stage1_live, trans_live, module_live = _liveness(cfg)
    h, w = cfg.input_hw
    # stem: two stride-2 3x3 convs
    c = cfg.stem.channels
    m = _meta("stem", "stem", 2, live=stage1_live)
    h, w = em.conv("conv1", m, 3, c, 3, 2, False, h, w)
    em.bn("bn1", m, c, h, w)
    em.relu("relu", m, c, h, w, True)
    m = _meta("stem", "stem", 4, live=stage1_live)
    h, w = em.conv("conv2", m, c, c, 3, 2, False, h, w)
    em.bn("bn2", m, c, h, w)
    em.relu("relu", m, c, h, w, True)
    # stage 1: one branch at 1/4
    s1 = cfg.stage1
    c, h, w = _layer(em, "layer1", _meta("stage1", "layer1", 4, branch=0, live=stage1_live),
                     s1.block, c, s1.planes, s1.blocks, h, w)
    feats = [(c, h, w)]  # per branch: channels, height, width

    for s, st in enumerate(cfg.stages):
        sname = f"stage{s + 2}"
        # transition (hrnet_core.exchange.Transition)
        cur = st.out_channels
        n_pre = len(feats)
        new = []
        for i, cc in enumerate(cur):
            live = i in trans_live[s]
            m = _meta(sname, "transition", 4 * 2**i, branch=i, live=live)
            if i < n_pre:
                pc, ph, pw = feats[i]
                if cc != pc:
                    p = f"transition{s + 1}.{i}"
                    ph, pw = em.conv(f"{p}.0", m, pc, cc, 3, 1, False, ph, pw)
                    em.bn(f"{p}.1", m, cc, ph, pw)
                    em.relu(f"{p}.2", m, cc, ph, pw, True)
                new.append((cc, ph, pw))
            else:
                pc, ph, pw = feats[-1]
                for j in range(i + 1 - n_pre):
                    out = cc if j == i - n_pre else pc
                    p = f"transition{s + 1}.{i}.{j}"
                    mj = _meta(sname, "transition", 4 * 2 ** (n_pre + j), branch=i, live=live)
                    ph, pw = em.conv(f"{p}.0", mj, pc, out, 3, 2, False, ph, pw)
                    em.bn(f"{p}.1", mj, out, ph, pw)
                    em.relu(f"{p}.2", mj, out, ph, pw, True)
                    pc = out
                new.append((cc, ph, pw))
        feats = new
        # modules (hrnet_core.exchange.HighResolutionModule)
        for mi in range(st.modules):
            p = f"{sname}.{mi}"
            live_blocks, live_fused = module_live[(s, mi)]
            ys = []
            for k, (kc, kh, kw) in enumerate(feats):
                mk = _meta(sname, "branch_blocks", 4 * 2**k, module=mi, branch=k, live=k in live_blocks)
                ys.append(_layer(em, f"{p}.branches.{k}", mk, st.block, kc, st.channels[k], st.blocks[k], kh, kw))
            outs = cfg.fuse_outputs(s, mi)
            if not outs:
                feats = ys
                continue
            fused = []
            for i in range(outs):
                ci, hi, wi = ys[i]
                live = i in live_fused
                mf = _meta(sname, "fusion", 4 * 2**i, module=mi, branch=i, live=live)
                first = True
                for j, (cj, hj, wj) in enumerate(ys):
                    mij = _meta(sname, "fusion", 4 * 2**j, module=mi, branch=i, source=j, live=live)
                    # upsampling and the sum run at the target branch's resolution
                    mto = _meta(sname, "fusion", 4 * 2**i, module=mi, branch=i, source=j, live=live)
                    q = f"{p}.fuse_layers.{i}.{j}"
                    if j > i:
                        em.conv(f"{q}.0", mij, cj, ci, 1, 1, False, hj, wj)
                        em.bn(f"{q}.1", mij, ci, hj, wj)
                        # nearest scales by 2**(j - i): exact, as HRNetConfig makes nearest inputs multiples
                        # of the lowest branch's stride
                        em.upsample(p, mto, ci, hi, wi, cfg.upsample.mode)
                    elif j < i:
                        dh, dw, dc = hj, wj, cj
                        for k in range(i - j):
                            mk = _meta(sname, "fusion", 4 * 2 ** (j + k + 1), module=mi, branch=i, source=j, live=live)
                            out = ci if k == i - j - 1 else cj
                            dh, dw = em.conv(f"{q}.{k}.0", mk, dc, out, 3, 2, False, dh, dw)
                            em.bn(f"{q}.{k}.1", mk, out, dh, dw)
                            if k != i - j - 1:
                                em.relu(f"{q}.{k}.2", mk, out, dh, dw, False)
                            dc = out
                    if not first:
                        em.add(p, mto, ci, hi, wi)
                    first = False
                em.relu(f"{p}.relu", mf, ci, hi, wi, False)
                fused.append((ci, hi, wi))
            feats = fused
    _count_head(em, cfg, feats)
    return em


# Heads with a closed-form count below; any other registered kind is counted from its layers in the graph.
FORMULA_HEADS = ("v1", "v2", "v2p", "cls", "ocr", "higher")


def _count_head_from_graph(em: OperatorCounter, cfg: HRNetConfig) -> None:
    """A head without a formula: every leaf layer of its parts, in the order they run, from
    ``hrnet_core.architecture`` (shapes from the meta-device model). Layers other than Conv2d (padding k // 2,
    no groups), BatchNorm2d, ReLU and Linear raise ``ConfigError`` (field ``head.kind``) naming the layer."""
    graph = architecture(cfg, tuple(cfg.input_hw), 1)
    for layer in graph.head_layers:
        shape = layer.in_shape or ()
        out = layer.out_shape or ()
        stride = round(cfg.input_hw[0] / out[2]) if len(out) == 4 else None
        meta = _meta("head", "head", stride)
        if layer.op == "conv" and layer.groups == 1 and layer.padding == layer.kernel // 2:
            em.conv(layer.name, meta, shape[1], out[1], layer.kernel, layer.stride, layer.bias, shape[2], shape[3])
        elif layer.op == "batch_norm":
            em.bn(layer.name, meta, out[1], out[2], out[3])
        elif layer.op == "relu" and len(out) == 4:
            em.relu(layer.name, meta, out[1], out[2], out[3], layer.inplace)
        elif layer.op == "linear":
            em.linear(layer.name, meta, shape[1], out[1])
        else:
            raise ConfigError("head.kind", f"the analytic backend cannot count {layer.name} ({layer.op}) of head "
                              f"{quote(cfg.head.kind)}; use backend='fvcore'")


def _count_head(em: OperatorCounter, cfg: HRNetConfig, feats: list[tuple[int, int, int]]) -> None:
    head = cfg.head
    kind = head.kind
    if kind not in FORMULA_HEADS:
        _count_head_from_graph(em, cfg)
        return
    if kind == "v1":
        c0, h0, w0 = feats[0]
        em.conv("final_layer", _meta("head", "head", 4, branch=0), c0, head.outputs, head.final_conv_kernel, 1, True,
                h0, w0)
        return
    if kind == "higher":
        _count_higher(em, head, feats[0])
        return
    if kind in ("v2", "v2p", "ocr"):
        c0, h0, w0 = feats[0]
        for k, (ck, _, _) in enumerate(feats[1:], start=1):
            em.upsample("", _meta("head", "head", 4, branch=k), ck, h0, w0, "bilinear")
        total = sum(f[0] for f in feats)
        m = _meta("head", "head", 4)
        em.cat("", m, total, h0, w0)
        if kind == "ocr":
            _count_ocr(em, head, total, h0, w0)
            return
        if kind == "v2":
            a = "last_layer" if cfg.family == "seg" else "head"
            em.conv(f"{a}.0", m, total, total, 1, 1, True, h0, w0)
            em.bn(f"{a}.1", m, total, h0, w0)
            em.relu(f"{a}.2", m, total, h0, w0, True)
            em.conv(f"{a}.3", m, total, head.outputs, head.final_conv_kernel, 1, True, h0, w0)
            return
        ch = head.channels
        em.conv("reduction_conv.conv", m, total, ch, 1, 1, True, h0, w0)
        levels = [(h0, w0)]
        for i in range(1, head.levels):  # HRNetConfig checks the 1/4 map is at least 2**(levels - 1)
            k = 2**i
            ph, pw = (h0 - k) // k + 1, (w0 - k) // k + 1
            em.avg_pool("", _meta("head", "head", 4 * k), ch, ph, pw)
            levels.append((ph, pw))
        for lvl, (ph, pw) in enumerate(levels):
            em.conv(f"fpn_convs.{lvl}.conv", _meta("head", "head", 4 * 2**lvl), ch, ch, 3, 1, True, ph, pw)
        return
    if kind != "cls":
        raise ConfigError("head.kind", f"no analytic counts for the {quote(kind)} head; use backend='fvcore'")
    # cls (hrnet_core.heads.ClsHead)
    head_ch = cls_head_channels(len(feats))
    c, h, w = feats[0]
    y = _layer(em, "incre_modules.0", _meta("head", "head", 4, branch=0), "BOTTLENECK", c, head_ch[0], 1, h, w)
    for i in range(len(feats) - 1):
        mb = _meta("head", "head", 4 * 2 ** (i + 1), branch=i + 1)
        fc, fh, fw = feats[i + 1]
        inc = _layer(em, f"incre_modules.{i + 1}", mb, "BOTTLENECK", fc, head_ch[i + 1], 1, fh, fw)
        yc, yh, yw = y
        d = f"downsamp_modules.{i}"
        dc = head_ch[i + 1] * 4
        dh, dw = em.conv(f"{d}.0", mb, yc, dc, 3, 2, True, yh, yw)
        em.bn(f"{d}.1", mb, dc, dh, dw)
        em.relu(f"{d}.2", mb, dc, dh, dw, True)
        if (dh, dw) != inc[1:]:
            raise ConfigError("input_size", f"classification head: branch {i + 1} is {inc[1]}x{inc[2]} but the "
                              f"strided merge gives {dh}x{dw}")
        em.add("", mb, dc, dh, dw)
        y = (dc, dh, dw)
    c, h, w = y
    m = _meta("head", "head", 4 * 2 ** (len(feats) - 1))
    em.conv("final_layer.0", m, c, CLS_FEATURES, 1, 1, True, h, w)
    em.bn("final_layer.1", m, CLS_FEATURES, h, w)
    em.relu("final_layer.2", m, CLS_FEATURES, h, w, True)
    g = _meta("head", "head", None)
    em.adaptive_pool("", g, CLS_FEATURES, h, w)
    em.linear("classifier", g, CLS_FEATURES, head.outputs)


def _count_higher(em: OperatorCounter, head, feat0: tuple[int, int, int]) -> None:
    """The HigherHRNet head (hrnet_core.heads.higher.HigherHead) on branch 0: a prediction at 1/4, then per
    deconvolution stage (concat, transposed conv + BN + ReLU, BasicBlocks, prediction) at twice the resolution.
    Rows at 1/4 belong to branch 0; the higher-resolution rows (and the concat, which merges features with a
    prediction) to no branch."""
    c, h, w = feat0
    preds = head.prediction_channels
    kernel = head.final_conv_kernel
    ins = deconv_in_channels(c, preds, head.deconv_channels, head.cat_output)
    stride = 4
    em.conv("final_layers.0", _meta("head", "head", stride, branch=0), c, preds[0], kernel, 1, True, h, w)
    for i, (cin, cout, k) in enumerate(zip(ins, head.deconv_channels, head.deconv_kernels)):
        if head.cat_output[i]:
            em.cat("", _meta("head", "head", stride), cin, h, w)
        stride //= 2
        m = _meta("head", "head", stride)
        p = f"deconv_layers.{i}"
        h, w = em.conv_transpose(f"{p}.0.0", m, cin, cout, k, h, w)
        em.bn(f"{p}.0.1", m, cout, h, w)
        em.relu(f"{p}.0.2", m, cout, h, w, True)
        for b in range(head.deconv_blocks):
            _block(em, f"{p}.{b + 1}.0", m, "BASIC", cout, cout, 1, h, w)
        em.conv(f"final_layers.{i + 1}", m, cout, preds[i + 1], kernel, 1, True, h, w)


def _count_ocr(em: OperatorCounter, head, total: int, h: int, w: int) -> None:
    """The OCR head (hrnet_core.heads.ocr.OCRHead) after the V2 concat of ``total`` channels at ``h`` x ``w``.

    Resolutions: pixel-level rows are 1/4; rows on the ``outputs`` object-region features are ``global``."""
    px, obj = _meta("head", "head", 4), _meta("head", "head", None)
    mid, kc, k = head.channels, head.key_channels, head.outputs
    em.conv("aux_head.0", px, total, total, 1, 1, True, h, w)
    em.bn("aux_head.1", px, total, h, w)
    em.relu("aux_head.2", px, total, h, w, True)
    em.conv("aux_head.3", px, total, k, 1, 1, True, h, w)
    em.conv("conv3x3_ocr.0", px, total, mid, 3, 1, True, h, w)
    em.bn("conv3x3_ocr.1", px, mid, h, w)
    em.relu("conv3x3_ocr.2", px, mid, h, w, True)
    # SpatialGather: softmax over pixels, then (K x HW) @ (HW x mid)
    em.softmax("ocr_gather_head", px, (k, h * w))
    em.matmul("ocr_gather_head", obj, 1, k, h * w, mid)
    # ObjectAttention
    oa = "ocr_distri_head.object_context_block"

    for name, meta, hh, ww in (("f_pixel", px, h, w), ("f_object", obj, k, 1)):
        p = f"{oa}.{name}"
        em.conv(f"{p}.0", meta, mid, kc, 1, 1, False, hh, ww)
        em.bn(f"{p}.1.0", meta, kc, hh, ww)
        em.relu(f"{p}.1.1", meta, kc, hh, ww, False)
        em.conv(f"{p}.2", meta, kc, kc, 1, 1, False, hh, ww)
        em.bn(f"{p}.3.0", meta, kc, hh, ww)
        em.relu(f"{p}.3.1", meta, kc, hh, ww, False)
    em.conv(f"{oa}.f_down.0", obj, mid, kc, 1, 1, False, k, 1)
    em.bn(f"{oa}.f_down.1.0", obj, kc, k, 1)
    em.relu(f"{oa}.f_down.1.1", obj, kc, k, 1, False)
    em.matmul(oa, px, 1, h * w, kc, k)  # query @ key
    em.mul(oa, px, (h * w, k))  # * key_channels ** -0.5
    em.softmax(oa, px, (h * w, k))
    em.matmul(oa, px, 1, h * w, k, kc)  # sim @ value
    em.conv(f"{oa}.f_up.0", px, kc, mid, 1, 1, False, h, w)
    em.bn(f"{oa}.f_up.1.0", px, mid, h, w)
    em.relu(f"{oa}.f_up.1.1", px, mid, h, w, False)
    # SpatialOCR: concat(context, pixels), 1x1 conv + BN + ReLU + dropout
    em.cat("ocr_distri_head", px, 2 * mid, h, w)
    em.conv("ocr_distri_head.conv_bn_dropout.0", px, 2 * mid, mid, 1, 1, False, h, w)
    em.bn("ocr_distri_head.conv_bn_dropout.1.0", px, mid, h, w)
    em.relu("ocr_distri_head.conv_bn_dropout.1.1", px, mid, h, w, False)
    em.dropout("ocr_distri_head.conv_bn_dropout.2", px, (mid, h, w))
    em.conv("cls_head", px, mid, k, 1, 1, True, h, w)


@lru_cache(maxsize=128)
def operator_counts(cfg: HRNetConfig, batch: int) -> OperatorCounter:
    """The analytic counter's tallies for ``cfg`` at ``batch`` (cached per config and batch; ``cache_clear()``
    empties the cache): ``params``, ``macs``, ``flops``, ``torch_flops``, ``acts`` and the breakdown ``rows``."""
    return _count(cfg, batch)
