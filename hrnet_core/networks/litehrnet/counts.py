"""Closed-form counts and the parts plan of a Lite-HRNet backbone: pure arithmetic over the section, no model.

One walk over the backbone, in forward order, visits every convolution, BatchNorm, pooling and upsampling the
modules of ``modules.py`` run (mmpose ``mmpose/models/backbones/litehrnet.py``) and charges it to the part whose
state_dict prefix holds it:

- ``params``: weights and biases (BatchNorm: weight and bias; running statistics are buffers);
- ``conv_linear_macs``: ``out_ch * in_ch / groups * k * k * out_h * out_w`` per Conv2d call, bias excluded; every
  call counts, and mmpose's ``LiteHRModule`` calls each ``fuse_layers[i][0]`` (i >= 1) twice per forward (once
  for ``y`` and once in the sum over j);
- ``fvcore_flops``: fvcore's default handles (``FlopCountAnalysis``, model in eval mode): conv = its MACs,
  ``batch_norm`` (eval, affine) = 2 x input elements, ``adaptive_avg_pool2d`` = input elements,
  ``upsample_nearest2d`` = output elements, ``upsample_bilinear2d`` = 4 x output elements; adds, products,
  sigmoids, ReLUs, concatenations and shuffles are free;
- ``activations``: fvcore's ``ActivationCountAnalysis``: output elements of every Conv2d call;
- ``torchstat_flops``: the torchstat "Flops" column that Lite-HRNet's published FLOPs come from (the official
  ``tools/summary_network.py`` with Microsoft tensorwatch's torchstat fork, ``torchstat_utils.py``; shown in
  2**20 units: 205.2M for Lite-HRNet-18 at 256x192 with the heatmap head). Forward hooks on every leaf module
  (each module once, however often it runs: its *last* call is kept), charging Conv2d
  ``k*k * in_ch * (out_ch // groups) * out_h * out_w`` plus ``out_ch * out_h * out_w`` with a bias, BatchNorm
  (affine) 2 per input element, ReLU 1 per input element, ``AdaptiveAvgPool2d`` ``C * (H + 1) * (W + 1)`` per
  1x1 output (its window bounds plus one), ``nn.Upsample`` ``out_h * out_w`` (channels not counted); Sigmoid, the
  functional ``F.adaptive_avg_pool2d`` / ``F.interpolate``, adds, products and shuffles count 0. So
  ``fuse_layers[i][0]`` counts once, and a module's one shared fusion ``ReLU`` once, at its last output's size
  (charged to that module's last fusion part). No dead-code elimination: every module that runs counts.

Spatial sizes follow the layers: a stride-2 3x3 conv with padding 1 maps ``h`` to ``ceil(h / 2)``, so branch k
is ``ceil`` halved k + 2 times from the input; a fusion term from a lower branch is upsampled by ``2**(j - i)``
(``nn.Upsample``, nearest), which must give branch i's size exactly (else mmpose's sum fails; ``counts`` raises
``ConfigError`` on field ``input_size``).

Parts, in forward order (``S`` = mmpose's stage index 0 .., ``M`` module, ``k`` / ``i`` / ``j`` branches):

=========================================  ==========  =========================================================
key                                        kind        state_dict prefixes
=========================================  ==========  =========================================================
``stem``                                   stem        ``stem``
``transition{S}.branch{k}``                transition  ``transition{S}.{k}`` (only branches that have one)
``stage{S}.module{M}.cross_resolution``    branch      ``stage{S}.{M}.layers.{b}.cross_resolution_weighting``
                                                       (LITE; every block b)
``stage{S}.module{M}.branch{k}``           branch      LITE: ``stage{S}.{M}.layers.{b}.depthwise_convs.{k}`` and
                                                       ``...spatial_weighting.{k}`` (every block b);
                                                       NAIVE: ``stage{S}.{M}.layers.{k}``
``stage{S}.module{M}.fuse.{i}<-{j}``       fusion      ``stage{S}.{M}.fuse_layers.{i}.{j}``
``head_layer``                             head        ``head_layer`` (the iterative head, ``with_head``)
=========================================  ==========  =========================================================

fvcore's trace drops ops whose results never reach the output (``torch.jit`` dead-code elimination): without the
head only map 0 of the last stage is returned, so e.g. the last module's fusion terms into branches i >= 1 cost
no fvcore FLOPs or activations there (their MACs still count: the eager forward runs them).
"""

from __future__ import annotations

from ...config import MAX_INPUT_SIDE, ConfigError, positive_int
from ..registry import PartCount, PartPlan

SW_RATIO = 4  # mmpose: SpatialWeighting(channels, ratio=4) in every ConditionalChannelWeighting


class _Tally:
    """Running totals of one part. ``live``: whether the ops charged now reach the backbone's output; fvcore
    traces the model with ``torch.jit``, whose dead-code elimination drops the others, so only live ops add
    ``flops`` and ``acts`` (params, conv layers and MACs count everything built and run)."""

    __slots__ = ("params", "macs", "flops", "acts", "convs", "live", "ts")

    def __init__(self) -> None:
        self.params = self.macs = self.flops = self.acts = self.convs = self.ts = 0
        self.live = True

    def conv(self, cin: int, cout: int, k: int, groups: int, hw: tuple[int, int], bias: bool = False,
             calls: int = 1) -> None:
        weights = cout * (cin // groups) * k * k
        self.params += weights + (cout if bias else 0)
        self.convs += 1
        area = hw[0] * hw[1]
        self.macs += calls * weights * area
        self.ts += (weights + (cout if bias else 0)) * area  # torchstat: a module's last call only
        if self.live:
            self.flops += calls * weights * area
            self.acts += calls * cout * area

    def bn(self, ch: int, hw: tuple[int, int], calls: int = 1) -> None:
        self.params += 2 * ch
        self.ts += 2 * ch * hw[0] * hw[1]
        if self.live:
            self.flops += calls * 2 * ch * hw[0] * hw[1]

    def relu(self, ch: int, hw: tuple[int, int]) -> None:
        """An ``nn.ReLU`` module on ``(ch, *hw)``: torchstat only (fvcore does not count it)."""
        self.ts += ch * hw[0] * hw[1]

    def conv_bn(self, cin: int, cout: int, k: int, groups: int, hw: tuple[int, int], calls: int = 1,
                relu: bool = False) -> None:
        self.conv(cin, cout, k, groups, hw, calls=calls)
        self.bn(cout, hw, calls=calls)
        if relu:
            self.relu(cout, hw)

    def dw_pw(self, cin: int, cout: int, hw: tuple[int, int], calls: int = 1, relu: bool = False) -> None:
        """3x3 depthwise conv + BN, 1x1 conv + BN [+ ReLU], both writing ``hw`` (transitions, fusion downsamples,
        head)."""
        self.conv_bn(cin, cin, 3, cin, hw, calls)
        self.conv_bn(cin, cout, 1, 1, hw, calls, relu=relu)

    def elements(self, n: int) -> None:
        """fvcore's charge for a pooling / upsampling (its formula applied by the caller)."""
        if self.live:
            self.flops += n


def _half(hw: tuple[int, int]) -> tuple[int, int]:
    return ((hw[0] + 1) // 2, (hw[1] + 1) // 2)


def _area(hw: tuple[int, int]) -> int:
    return hw[0] * hw[1]


def _branch_sizes(input_hw: tuple[int, int], n: int) -> list[tuple[int, int]]:
    """``(h, w)`` of branches 0 .. n - 1: the stem halves twice, each lower branch once more."""
    hw = _half(_half(input_hw))
    sizes = [hw]
    for _ in range(1, n):
        hw = _half(hw)
        sizes.append(hw)
    return sizes


def _liveness(sec) -> tuple[list[frozenset], dict, dict]:
    """Which branch maps reach the backbone's output (what fvcore's trace keeps), walking back from it: all of
    the last stage's maps with the iterative head, else only map 0.

    Returns ``(stage_in, module_out, module_mid)``: the live inputs of each stage (after its transitions), and per
    ``(stage, module)`` its live outputs and its live branch results before the fusion. A fused output needs every
    branch result (and outputs i >= 1 also need output 0's sum); a weighting block with any live output needs all
    its inputs (the cross-resolution weighting reads every branch).
    """
    spec = sec.stages_spec
    need = frozenset(range(spec.num_branches[-1])) if sec.with_head else frozenset({0})
    stage_in: list[frozenset] = [frozenset()] * sec.num_stages
    module_out: dict = {}
    module_mid: dict = {}
    for s in reversed(range(sec.num_stages)):
        nb, lite = spec.num_branches[s], spec.module_type[s] == "LITE"
        for m in reversed(range(spec.num_modules[s])):
            module_out[(s, m)] = need
            mid = (frozenset(range(nb)) if need else need) if spec.fuses(s, m) and nb > 1 else need
            module_mid[(s, m)] = mid
            need = (frozenset(range(nb)) if mid else mid) if lite else mid
        stage_in[s] = need
        prev_nb = spec.num_branches[s - 1] if s else 1
        need = frozenset(k if k < prev_nb else prev_nb - 1 for k in need)
    return stage_in, module_out, module_mid


def _walk(sec, input_hw: tuple[int, int] | None) -> list[tuple[PartPlan, _Tally]]:
    """Every part with its tally, in forward order. ``input_hw=None``: size-independent (params, conv layers)."""
    spec = sec.stages_spec
    most = max(spec.num_branches)
    sizes = _branch_sizes(input_hw, most) if input_hw is not None else [(1, 1)] * most
    out: list[tuple[PartPlan, _Tally]] = []
    stage_in, module_out, module_mid = _liveness(sec)

    def part(key: str, kind: str, prefixes, stage: str, **kw) -> _Tally:
        tally = _Tally()
        out.append((PartPlan(key, kind, tuple(prefixes), stage, **kw), tally))
        return tally

    # stem: conv1 (stride 2), expand_conv, depthwise_conv (stride 2), linear_conv; branch1 (stride 2)
    st = sec.stem
    t = part("stem", "stem", ("stem",), "stem", resolution=4, block="STEM")
    h1 = _half(input_hw) if input_hw is not None else (1, 1)
    h2 = sizes[0]
    sc, oc, mid = st.stem_channels, st.out_channels, st.mid_channels
    half = sc // 2
    t.conv_bn(sec.in_channels, sc, 3, 1, h1, relu=True)
    t.conv_bn(half, mid, 1, 1, h1, relu=True)
    t.conv_bn(mid, mid, 3, mid, h2)
    t.conv_bn(mid, half if sc == oc else sc, 1, 1, h2, relu=True)
    t.conv_bn(half, half, 3, half, h2)
    t.conv_bn(half, oc - half if sc == oc else oc - sc, 1, 1, h2, relu=True)

    prev: tuple[int, ...] = (oc,)
    for s in range(sec.num_stages):
        cur = spec.num_channels[s]
        stage = f"stage{s}"
        for i, c in enumerate(cur):
            if i < len(prev):
                if c != prev[i]:
                    t = part(f"transition{s}.branch{i}", "transition", (f"transition{s}.{i}",), stage, branch=i,
                             resolution=4 * 2**i)
                    t.live = i in stage_in[s]
                    t.dw_pw(prev[i], c, sizes[i], relu=True)
            else:
                t = part(f"transition{s}.branch{i}", "transition", (f"transition{s}.{i}",), stage, branch=i,
                         resolution=4 * 2**i)
                t.live = i in stage_in[s]
                cin = prev[-1]
                steps = i + 1 - len(prev)
                for j in range(steps):
                    t.dw_pw(cin, c if j == steps - 1 else cin, sizes[len(prev) + j], relu=True)
        nb, blocks, lite = spec.num_branches[s], spec.num_blocks[s], spec.module_type[s] == "LITE"
        for m in range(spec.num_modules[s]):
            base = f"{stage}.{m}"
            live_out, live_mid = module_out[(s, m)], module_mid[(s, m)]
            if lite:
                halves = [c // 2 for c in cur]
                total = sum(halves)
                squeezed = total // spec.reduce_ratios[s]
                mini = sizes[nb - 1]
                t = part(f"{stage}.module{m}.cross_resolution", "branch",
                         [f"{base}.layers.{b}.cross_resolution_weighting" for b in range(blocks)], stage, module=m,
                         block="CRW")
                for b in range(blocks):
                    # a block's live outputs: the module's before fusion for the last block, else all or none
                    block_live = live_mid if b == blocks - 1 else (frozenset(range(nb)) if live_mid else live_mid)
                    t.live = bool(block_live)
                    for k in range(nb - 1):
                        t.elements(halves[k] * _area(sizes[k]))  # adaptive_avg_pool2d to the smallest size
                    t.conv_bn(total, squeezed, 1, 1, mini, relu=True)
                    t.conv_bn(squeezed, total, 1, 1, mini)  # + Sigmoid: 0 everywhere
                    for k in range(nb):
                        t.live = k in block_live
                        t.elements(halves[k] * _area(sizes[k]))  # nearest interpolate back, every branch
                for k in range(nb):
                    t = part(f"{stage}.module{m}.branch{k}", "branch",
                             [f"{base}.layers.{b}.{name}.{k}" for b in range(blocks)
                              for name in ("depthwise_convs", "spatial_weighting")],
                             stage, module=m, branch=k, resolution=4 * 2**k, block="CCW")
                    h = halves[k]
                    for b in range(blocks):
                        t.live = k in live_mid if b == blocks - 1 else bool(live_mid)
                        t.conv_bn(h, h, 3, h, sizes[k])
                        t.elements(h * _area(sizes[k]))  # AdaptiveAvgPool2d(1)
                        t.ts += h * (sizes[k][0] + 1) * (sizes[k][1] + 1)  # torchstat's pooling windows + 1
                        t.conv(h, h // SW_RATIO, 1, 1, (1, 1), bias=True)
                        t.relu(h // SW_RATIO, (1, 1))
                        t.conv(h // SW_RATIO, h, 1, 1, (1, 1), bias=True)
            else:
                for k in range(nb):
                    t = part(f"{stage}.module{m}.branch{k}", "branch", (f"{base}.layers.{k}",), stage, module=m,
                             branch=k, resolution=4 * 2**k, block="SHUFFLE")
                    bf = cur[k] // 2
                    t.live = k in live_mid
                    for _ in range(blocks):
                        t.conv_bn(bf, bf, 1, 1, sizes[k], relu=True)
                        t.conv_bn(bf, bf, 3, bf, sizes[k])
                        t.conv_bn(bf, bf, 1, 1, sizes[k], relu=True)
            if spec.fuses(s, m) and nb > 1:
                for i in range(nb):
                    for j in range(nb):
                        if i == j:
                            continue
                        t = part(f"{stage}.module{m}.fuse.{i}<-{j}", "fusion", (f"{base}.fuse_layers.{i}.{j}",), stage,
                                 module=m, branch=i, source=j, resolution=4 * 2**i)
                        calls = 2 if j == 0 and i >= 1 else 1  # y = fuse[i][0](out[0]), then y += fuse[i][0](out[0])
                        # output 0's sum also feeds outputs i >= 1 (mmpose's in-place order)
                        t.live = i in live_out or (i == 0 and any(o >= 1 for o in live_out))
                        if j > i:
                            t.conv_bn(cur[j], cur[i], 1, 1, sizes[j], calls)
                            t.elements(calls * cur[i] * _area(sizes[j]) * 4 ** (j - i))  # nn.Upsample nearest
                            t.ts += _area(sizes[i])  # torchstat's Upsample: output h * w, channels not counted
                        else:
                            for k in range(i - j):
                                last = k == i - j - 1
                                t.dw_pw(cur[j], cur[i] if last else cur[j], sizes[j + k + 1], calls, relu=not last)
                        if i == nb - 1 and j == nb - 2:  # the module's shared ReLU, last called on output nb - 1
                            t.relu(cur[i], sizes[i])
        prev = cur

    if sec.with_head:
        t = part("head_layer", "head", ("head_layer",), "head", resolution=4, block="ITERATIVE")
        rev = prev[::-1]
        n = len(rev)
        for i in range(n):
            level = n - 1 - i
            if i > 0:
                t.elements(4 * rev[i] * _area(sizes[level]))  # bilinear interpolate of the previous projection
            t.dw_pw(rev[i], rev[i + 1] if i < n - 1 else rev[i], sizes[level], relu=True)
    return out


def check_input(sec, input_hw: tuple[int, int]) -> tuple[int, int]:
    """``input_hw`` as ``(H, W)`` if every fusion's upsampled term matches its target branch; else
    ``ConfigError`` on ``input_size`` (mmpose's sum would fail with a shape mismatch)."""
    if not isinstance(input_hw, (tuple, list)) or len(input_hw) != 2:
        raise ConfigError("input_size", f"must be [H, W], got {input_hw!r}")
    hw = (positive_int(input_hw[0], "input_size.H", MAX_INPUT_SIDE),
          positive_int(input_hw[1], "input_size.W", MAX_INPUT_SIDE))
    spec = sec.stages_spec
    fused = [nb for s, nb in enumerate(spec.num_branches) if any(spec.schedule()[s]) and nb > 1]
    if fused:
        n = max(fused)
        sizes = _branch_sizes(hw, n)
        for j in range(1, n):
            if (sizes[j][0] * 2**j, sizes[j][1] * 2**j) != sizes[0]:
                raise ConfigError("input_size", f"{hw[0]}x{hw[1]}: the fusion of {n} branches upsamples by up to "
                                                f"{2 ** (n - 1)}, so the stem's {sizes[0][0]}x{sizes[0][1]} map must "
                                                f"divide by {2 ** (n - 1)} (H and W multiples of {2 ** (n + 1)} do)")
    return hw


def counts(sec, input_hw: tuple[int, int]) -> tuple[PartCount, ...]:
    """``PartCount`` of every part of ``parts(sec)`` (same keys, same order) at ``input_hw = (H, W)``, batch 1."""
    hw = check_input(sec, input_hw)
    return tuple(PartCount(key=plan.key, params=t.params, conv_linear_macs=t.macs, fvcore_flops=t.flops,
                           activations=t.acts, torchstat_flops=t.ts) for plan, t in _walk(sec, hw))


def parts(sec) -> tuple[PartPlan, ...]:
    """The backbone's parts in forward order (see the module table); every parameter lies in exactly one."""
    return tuple(plan for plan, _ in _walk(sec, None))


def param_count(sec) -> int:
    """Parameters of the backbone (size-independent)."""
    return sum(t.params for _, t in _walk(sec, None))


def conv_layers(sec) -> int:
    """Conv2d modules of the backbone (each counted once, however often it runs)."""
    return sum(t.convs for _, t in _walk(sec, None))


__all__ = ["check_input", "conv_layers", "counts", "param_count", "parts"]
