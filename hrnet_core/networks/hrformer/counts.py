"""Closed-form sizes and costs of an HRFormer backbone, per part, with no model built.

``parts(section)``: the ``PartPlan`` of every part in forward order (keys as ``hrnet_core.keys.part_key``):

=====================================  ============  =========================================================
key                                    kind          state_dict prefix (mmpose names)
=====================================  ============  =========================================================
``stem``                               stem          ``conv1``, ``bn1``, ``conv2``, ``bn2``
``layer1``                             layer1        ``layer1`` (Bottlenecks)
``transition{S-1}.branch{k}``          transition    ``transition{S-1}.{k}`` (``nn.Identity`` if unchanged)
``stage{S}.module{M}.branch{k}``       branch        ``stage{S}.{M}.branches.{k}`` (HRFormer blocks)
``stage{S}.module{M}.fuse.{i}<-{j}``   fusion        ``stage{S}.{M}.fuse_layers.{i}.{j}`` (``i <- i``: identity)
=====================================  ============  =========================================================

``counts(section, (H, W))``: a ``PartCount`` per part for one ``(1, in_channels, H, W)`` input, batch 1:

- ``params``; ``conv_linear_macs``: ``nn.Conv2d`` + ``nn.Linear`` multiply-accumulates, bias excluded; the
  window attention's ``qkv`` / ``proj`` Linears run on the padded windows (``ceil(H_b / w) * w`` rows ...);
- ``attention_macs``: ``q @ k^T`` and ``attn @ v``: ``2 * N * C`` per padded token (``N = w*w``);
- ``fvcore_flops``: fvcore 0.1.5's default handles on the model in eval mode: conv and linear = their MACs,
  matmul = ``prod(A) * m``, ``batch_norm`` (eval) = 2 per input element, ``layer_norm`` (affine) = 5 per
  element, ``upsample_bilinear2d`` = 4 per output element (``upsample_nearest2d`` 1); GELU, softmax, adds and
  the bias gather count 0;
- ``activations``: output elements of every conv, linear and matmul (fvcore ``ActivationCountAnalysis``).

fvcore traces the model with ``torch.jit``, whose dead-code elimination drops the ops whose results never reach
the backbone's returned maps; with every module fusing (mmpose's HRFormer) there are none, but a module without
fusion (``with_fuse``) passes its branches on unexchanged, so e.g. with no fusion in stage 4 and no
``multiscale_output`` only branch 0 reaches the output. Those dead parts keep their ``params``,
``conv_linear_macs`` and ``attention_macs`` (the eager forward runs them) and get no ``fvcore_flops`` or
``activations`` (what fvcore's trace keeps).

Sizes: the stem's stride-2 3x3 convs give ``ceil(ceil(H/2)/2)``; each lower branch halves with ``ceil``. The
fusion's ``nn.Upsample(scale_factor=2**(j-i))`` gives ``2**(j-i) * H_j``, which must equal ``H_i``; an input whose
maps do not line up is refused with ``ConfigError("input_size", ...)``, as mmpose fails to add them.
"""

from __future__ import annotations

import math

from ...config import MAX_INPUT_SIDE, ConfigError, positive_int
from ...keys import part_key
from ..registry import PartCount, PartPlan
from .config import STEM_CHANNELS, HRFormerSection

UPSAMPLE_FLOPS = {"bilinear": 4, "nearest": 1}  # fvcore: per output element


def _c2(n: int) -> int:
    return -(-n // 2)


def branch_sizes(section: HRFormerSection, input_hw: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """``(H_b, W_b)`` of every branch that any stage has (branch 0 at 1/4)."""
    h, w = input_hw
    h, w = _c2(_c2(h)), _c2(_c2(w))
    out = []
    for _ in range(max(st.num_branches for st in section.stages)):
        out.append((h, w))
        h, w = _c2(h), _c2(w)
    return tuple(out)


def check_input(section: HRFormerSection, input_hw: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """``branch_sizes`` after checking that every fusion upsampling lands on its target's size."""
    if not isinstance(input_hw, tuple) or len(input_hw) != 2:
        raise ConfigError("input_size", "must be (H, W)")
    for side, v in zip("HW", input_hw):
        positive_int(v, f"input_size.{side}", MAX_INPUT_SIDE)
    sizes = branch_sizes(section, input_hw)
    for s, st in enumerate(section.stages, start=2):
        if st.num_branches == 1:
            continue
        rows = max(st.fused_rows(m) for m in range(st.num_modules))  # 0 where no module fuses
        for i in range(rows):
            for j in range(i + 1, st.num_branches):
                f = 2 ** (j - i)
                if (sizes[j][0] * f, sizes[j][1] * f) != sizes[i]:
                    raise ConfigError("input_size", f"{input_hw[0]}x{input_hw[1]}: stage{s} upsamples branch {j}'s "
                                      f"{sizes[j][0]}x{sizes[j][1]} map x{f} to add it to branch {i}'s "
                                      f"{sizes[i][0]}x{sizes[i][1]}, and they do not match (H and W that are "
                                      f"multiples of {4 * 2 ** (st.num_branches - 1)} always do)")
    return sizes


class _Tally:
    """Running totals of one part; ``live``: whether its ops reach the backbone's output (fvcore's trace keeps
    them), else they add no ``flops`` / ``acts`` (params and MACs count everything built and run)."""

    def __init__(self, upsample_mode: str, live: bool = True):
        self.params = self.macs = self.attn = self.flops = self.acts = 0
        self.up = UPSAMPLE_FLOPS[upsample_mode]
        self.live = live

    def conv(self, cin: int, cout: int, k: int, hw: tuple[int, int], groups: int = 1, bias: bool = False) -> None:
        per = cout * (cin // groups) * k * k
        self.params += per + (cout if bias else 0)
        n = hw[0] * hw[1]
        self.macs += per * n
        if self.live:
            self.flops += per * n
            self.acts += cout * n

    def bn(self, c: int, hw: tuple[int, int]) -> None:
        self.params += 2 * c
        if self.live:
            self.flops += 2 * c * hw[0] * hw[1]

    def ln(self, c: int, tokens: int) -> None:
        self.params += 2 * c
        if self.live:
            self.flops += 5 * c * tokens

    def linear(self, cin: int, cout: int, tokens: int) -> None:
        self.params += cin * cout + cout
        self.macs += tokens * cin * cout
        if self.live:
            self.flops += tokens * cin * cout
            self.acts += tokens * cout

    def matmul(self, macs: int, out_elements: int) -> None:
        self.attn += macs
        if self.live:
            self.flops += macs
            self.acts += out_elements

    def upsample(self, c: int, hw: tuple[int, int]) -> None:
        if self.live:
            self.flops += self.up * c * hw[0] * hw[1]

    def count(self, key: str) -> PartCount:
        return PartCount(key, self.params, self.macs, self.attn, self.flops, self.acts)


def _hrformer_block(t: _Tally, c: int, heads: int, window: int, hidden: int, hw: tuple[int, int],
                    with_rpe: bool) -> None:
    n_hw = hw[0] * hw[1]
    tokens = math.ceil(hw[0] / window) * window * math.ceil(hw[1] / window) * window  # padded to whole windows
    n = window * window
    t.ln(c, n_hw)
    t.linear(c, 3 * c, tokens)
    if with_rpe:
        t.params += (2 * window - 1) ** 2 * heads
    t.matmul(tokens * n * c, tokens * n * heads)  # q @ k^T: (nW, heads, N, d) @ (nW, heads, d, N)
    t.matmul(tokens * n * c, tokens * c)  # attn @ v: (nW, heads, N, N) @ (nW, heads, N, d)
    t.linear(c, c, tokens)
    t.ln(c, n_hw)
    t.conv(c, hidden, 1, hw, bias=True)
    t.bn(hidden, hw)
    t.conv(hidden, hidden, 3, hw, groups=hidden, bias=True)
    t.bn(hidden, hw)
    t.conv(hidden, c, 1, hw, bias=True)
    t.bn(c, hw)


def liveness(section: HRFormerSection) -> tuple[tuple[frozenset, ...], dict, dict]:
    """Which branch maps reach the backbone's returned maps (what fvcore's trace keeps), walking back from them.

    Returns ``(stage_in, module_out, module_mid)``: per stage 2..4 (index 0..2) the live inputs after its
    transitions; per ``(stage index, module)`` its live outputs and its live branch results before the fusion. A
    fused module's live output needs every branch; an unfused one passes branch ``b`` to output ``b``. A
    transition that is not an identity reads the previous stage's last map (mmpose's ``y_list[-1]``).
    """
    need = frozenset(range(section.out_branches))
    stage_in: list[frozenset] = [frozenset()] * 3
    module_out: dict = {}
    module_mid: dict = {}
    pre_of = [(section.stage1.out_channels,), section.stage2.num_channels, section.stage3.num_channels]
    for si in reversed(range(3)):
        st = section.stages[si]
        for m in reversed(range(st.num_modules)):
            module_out[(si, m)] = need
            fused = st.num_branches > 1 and st.fuses(m)
            mid = (frozenset(range(st.num_branches)) if need else need) if fused else need
            module_mid[(si, m)] = mid
            need = mid
        stage_in[si] = need
        pre, cur = pre_of[si], st.num_channels
        need = frozenset(k if k < len(pre) and cur[k] == pre[k] else len(pre) - 1 for k in need)
    return tuple(stage_in), module_out, module_mid


def parts(section: HRFormerSection) -> tuple[PartPlan, ...]:
    """Every part of the backbone in forward order (see the module table); each parameter is in one part."""
    out = [PartPlan("stem", "stem", ("conv1", "bn1", "conv2", "bn2"), "stem", resolution=4),
           PartPlan("layer1", "layer1", ("layer1",), "stage1", branch=0, resolution=4, block="BOTTLENECK")]
    for s, st in enumerate(section.stages, start=2):
        sname = f"stage{s}"
        for k in range(st.num_branches):
            out.append(PartPlan(part_key("transition", s, branch=k), "transition", (f"transition{s - 1}.{k}",), sname,
                                branch=k, resolution=4 * 2 ** k))
        for m in range(st.num_modules):
            for b in range(st.num_branches):
                out.append(PartPlan(part_key("branch", s, m, b), "branch", (f"{sname}.{m}.branches.{b}",), sname,
                                    module=m, branch=b, resolution=4 * 2 ** b, block="HRFORMER"))
            if st.num_branches == 1:
                continue
            for i in range(st.fused_rows(m)):
                for j in range(st.num_branches):
                    out.append(PartPlan(part_key("fusion", s, m, i, j), "fusion", (f"{sname}.{m}.fuse_layers.{i}.{j}",),
                                        sname, module=m, branch=i, source=j, resolution=4 * 2 ** i))
    return tuple(out)


def counts(section: HRFormerSection, input_hw: tuple[int, int]) -> tuple[PartCount, ...]:
    """``PartCount`` of every part of ``parts(section)`` (same order) for a ``(1, in_channels, H, W)`` input."""
    sizes = check_input(section, tuple(input_hw))
    h, w = input_hw
    mode = section.upsample.mode
    out = []

    t = _Tally(mode)
    half = (_c2(h), _c2(w))
    t.conv(section.in_channels, STEM_CHANNELS, 3, half)
    t.bn(STEM_CHANNELS, half)
    t.conv(STEM_CHANNELS, STEM_CHANNELS, 3, sizes[0])
    t.bn(STEM_CHANNELS, sizes[0])
    out.append(t.count("stem"))

    t = _Tally(mode)
    p = section.stage1.num_channels[0]
    inp = STEM_CHANNELS
    for _ in range(section.stage1.num_blocks[0]):
        t.conv(inp, p, 1, sizes[0])
        t.bn(p, sizes[0])
        t.conv(p, p, 3, sizes[0])
        t.bn(p, sizes[0])
        t.conv(p, 4 * p, 1, sizes[0])
        t.bn(4 * p, sizes[0])
        if inp != 4 * p:
            t.conv(inp, 4 * p, 1, sizes[0])
            t.bn(4 * p, sizes[0])
        inp = 4 * p
    out.append(t.count("layer1"))

    pre = (4 * p,)
    stage_in, module_out, module_mid = liveness(section)
    for s, st in enumerate(section.stages, start=2):
        c = st.num_channels
        for k in range(st.num_branches):
            t = _Tally(mode, k in stage_in[s - 2])
            if k < len(pre):
                if c[k] != pre[k]:
                    t.conv(pre[k], c[k], 3, sizes[k])
                    t.bn(c[k], sizes[k])
            else:
                for step in range(k + 1 - len(pre)):
                    cout = c[k] if step == k - len(pre) else pre[-1]
                    res = sizes[len(pre) + step]
                    t.conv(pre[-1], cout, 3, res)
                    t.bn(cout, res)
            out.append(t.count(part_key("transition", s, branch=k)))
        for m in range(st.num_modules):
            for b in range(st.num_branches):
                t = _Tally(mode, b in module_mid[(s - 2, m)])
                for _ in range(st.num_blocks[b]):
                    _hrformer_block(t, c[b], st.num_heads[b], st.window_sizes[b], st.hidden(b), sizes[b],
                                    section.with_rpe)
                out.append(t.count(part_key("branch", s, m, b)))
            if st.num_branches == 1:
                continue
            for i in range(st.fused_rows(m)):
                for j in range(st.num_branches):
                    t = _Tally(mode, i in module_out[(s - 2, m)])
                    if j > i:
                        t.conv(c[j], c[i], 1, sizes[j])
                        t.bn(c[i], sizes[j])
                        t.upsample(c[i], sizes[i])
                    elif j < i:
                        for k in range(i - j):
                            cout = c[i] if k == i - j - 1 else c[j]
                            res = sizes[j + k + 1]
                            t.conv(c[j], c[j], 3, res, groups=c[j])
                            t.bn(c[j], res)
                            t.conv(c[j], cout, 1, res)
                            t.bn(cout, res)
                    out.append(t.count(part_key("fusion", s, m, i, j)))
        pre = c
    return tuple(out)


def total(section: HRFormerSection, input_hw: tuple[int, int]) -> PartCount:
    """The sum of ``counts`` over every part (key ``total``)."""
    cs = counts(section, input_hw)
    return PartCount("total", *(sum(getattr(c, f) for c in cs) for f in
                                ("params", "conv_linear_macs", "attention_macs", "fvcore_flops", "activations")))


__all__ = ["UPSAMPLE_FLOPS", "branch_sizes", "check_input", "counts", "liveness", "parts", "total"]
