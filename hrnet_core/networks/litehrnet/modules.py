"""The modules of Lite-HRNet (Yu et al. 2021, arXiv 2104.06403) with mmpose 1.x's semantics and parameter names.

Source: open-mmlab/mmpose ``mmpose/models/backbones/litehrnet.py`` and ``utils/channel_shuffle.py`` (commit
759b39c1), which adapt HRNet/Lite-HRNet; mmcv's ``ConvModule`` (conv -> norm -> activation, attributes ``conv`` /
``bn`` / ``activate``, no conv bias when a norm follows) and ``DepthwiseSeparableConvModule`` (``depthwise_conv``
/ ``pointwise_conv``). Written from those semantics, not copied. Shapes are ``(N, C, H, W)``; branch k of a
stage works at 1/(4 * 2**k) of the input.

mmpose behaviours kept on purpose (checkpoints and outputs depend on them):

- fusion order: mmpose's ``LiteHRModule`` starts output 0's sum *in* ``out[0]`` (``y = out[0]; y += out[0]; ...``),
  so output 0 is ``2 * out[0] + sum_j fuse[0][j](out[j])`` and every later output i reads that overwritten
  (pre-ReLU) map through ``fuse[i][0]``, twice (``y = fuse[i][0](out[0])``, then ``y += fuse[i][0](out[0])``).
  ``LiteHRModule.forward`` computes the same sums out of place, in the same order;
- ``SpatialWeighting`` gets no norm (its convolutions have a bias); the cross-resolution weighting has BatchNorm;
- the backbone returns only the highest-resolution map (after the iterative head when ``with_head``);
- ``with_cp`` checkpoints the shuffle units and the conditional channel weighting blocks, not the stem (mmpose
  never passes ``with_cp`` to ``Stem``). mmpose's weighting blocks test ``x.requires_grad`` on a list and fail
  with ``with_cp=True``; here they checkpoint their branch tensors. As with any ``torch.utils.checkpoint``
  around BatchNorm, the recomputation updates the running statistics a second time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from torch import nn

from .config import LiteHRNetSection, NormSpec
from .counts import SW_RATIO


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: ``(N, C, H, W)`` -> ``(N, C, H, W)``, channel ``g * (C // groups) + c`` moved
    to ``c * groups + g`` (``C`` must divide by ``groups``)."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def make_norm(channels: int, norm: NormSpec) -> nn.BatchNorm2d:
    """mmcv ``build_norm_layer(norm_cfg, channels)[1]``: BatchNorm2d (BN and SyncBN alike), mmcv's
    ``requires_grad`` applied to its weight and bias."""
    layer = nn.BatchNorm2d(channels, eps=norm.eps, momentum=norm.momentum)
    for p in layer.parameters():
        p.requires_grad = norm.requires_grad
    return layer


def _dw_pw(cin: int, cout: int, stride: int, norm: NormSpec, relu: nn.Module | None) -> nn.Sequential:
    """Plain ``Sequential``: 3x3 depthwise conv (``stride``) -> BN -> 1x1 conv -> BN [-> ReLU]: indices 0..3 (4),
    as mmpose's transitions and fusion downsamples; ``(N, cin, H, W)`` -> ``(N, cout, H/stride, W/stride)``."""
    layers = [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), make_norm(cin, norm),
              nn.Conv2d(cin, cout, 1, 1, 0, bias=False), make_norm(cout, norm)]
    if relu is not None:
        layers.append(relu)
    return nn.Sequential(*layers)


class ConvModule(nn.Module):
    """mmcv ``ConvModule``: ``conv`` (bias only without a norm) -> ``bn`` -> ``activate`` (``relu``: in-place
    ReLU, ``sigmoid``, or none). ``(N, cin, H, W)`` -> ``(N, cout, H', W')``. Initialised as mmcv does at
    construction: Kaiming-normal (fan_out, ReLU) conv weight, zero bias, BN weight 1 and bias 0."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, groups: int = 1,
                 norm: NormSpec | None = None, act: str | None = "relu"):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=norm is None)
        if norm is not None:
            self.bn = make_norm(cout, norm)
        if act == "relu":
            self.activate = nn.ReLU(inplace=True)
        elif act == "sigmoid":
            self.activate = nn.Sigmoid()
        elif act is not None:
            raise ValueError(f"unknown activation {act!r}")
        nn.init.kaiming_normal_(self.conv.weight, a=0, mode="fan_out", nonlinearity="relu")
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if hasattr(self, "bn"):
            x = self.bn(x)
        if hasattr(self, "activate"):
            x = self.activate(x)
        return x


class DepthwiseSeparableConvModule(nn.Module):
    """mmcv ``DepthwiseSeparableConvModule`` as the iterative head uses it: ``depthwise_conv`` (3x3, BN, no
    activation) -> ``pointwise_conv`` (1x1, BN, ReLU). ``(N, cin, H, W)`` -> ``(N, cout, H, W)``."""

    def __init__(self, cin: int, cout: int, norm: NormSpec):
        super().__init__()
        self.depthwise_conv = ConvModule(cin, cin, 3, 1, 1, groups=cin, norm=norm, act=None)
        self.pointwise_conv = ConvModule(cin, cout, 1, norm=norm, act="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


def _maybe_checkpoint(fn, with_cp: bool, *tensors: torch.Tensor):
    """``fn(*tensors)``, under ``torch.utils.checkpoint`` when ``with_cp`` and a gradient is being recorded."""
    if with_cp and torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return cp.checkpoint(fn, *tensors, use_reentrant=False)
    return fn(*tensors)


class Stem(nn.Module):
    """mmpose ``Stem``: ``(N, in_channels, H, W)`` -> ``(N, out_channels, H/4, W/4)``.

    ``conv1`` (3x3 stride 2, BN, ReLU) to ``stem_channels``; its two halves: ``branch1`` (3x3 depthwise stride 2,
    BN; 1x1, BN, ReLU) on the first, ``expand_conv`` (1x1 to ``int(round(stem_channels * expand_ratio))``, BN,
    ReLU) -> ``depthwise_conv`` (3x3 stride 2, BN) -> ``linear_conv`` (1x1, BN, ReLU) on the second; concatenated
    (branch1 first) and channel-shuffled in 2 groups."""

    def __init__(self, in_channels: int, stem_channels: int, out_channels: int, expand_ratio, norm: NormSpec):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        mid = int(round(stem_channels * expand_ratio))
        half = stem_channels // 2
        same = stem_channels == out_channels
        inc = out_channels - half if same else out_channels - stem_channels
        self.conv1 = ConvModule(in_channels, stem_channels, 3, 2, 1, norm=norm)
        self.branch1 = nn.Sequential(ConvModule(half, half, 3, 2, 1, groups=half, norm=norm, act=None),
                                     ConvModule(half, inc, 1, norm=norm))
        self.expand_conv = ConvModule(half, mid, 1, norm=norm)
        self.depthwise_conv = ConvModule(mid, mid, 3, 2, 1, groups=mid, norm=norm, act=None)
        self.linear_conv = ConvModule(mid, half if same else stem_channels, 1, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x1, x2 = x.chunk(2, dim=1)
        x2 = self.linear_conv(self.depthwise_conv(self.expand_conv(x2)))
        return channel_shuffle(torch.cat((self.branch1(x1), x2), dim=1), 2)


class SpatialWeighting(nn.Module):
    """mmpose ``SpatialWeighting`` (no norm, so both 1x1 convs have a bias): ``x * sigmoid(conv2(relu(conv1(
    avgpool(x)))))`` with ``channels // ratio`` hidden channels; ``(N, C, H, W)`` -> ``(N, C, H, W)``."""

    def __init__(self, channels: int, ratio: int = SW_RATIO):
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = ConvModule(channels, channels // ratio, 1, act="relu")
        self.conv2 = ConvModule(channels // ratio, channels, 1, act="sigmoid")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv2(self.conv1(self.global_avgpool(x)))


class CrossResolutionWeighting(nn.Module):
    """mmpose ``CrossResolutionWeighting`` over branch maps ``x[k]: (N, channels[k], H_k, W_k)``: every map but
    the last adaptive-average-pooled to the last (smallest) one's size, concatenated, 1x1 conv + BN + ReLU to
    ``sum(channels) // ratio``, 1x1 conv + BN + sigmoid back, split per branch, nearest-upsampled to each
    branch's size and multiplied in. Returns the list of reweighted maps (same shapes)."""

    def __init__(self, channels: tuple[int, ...], ratio: int, norm: NormSpec):
        super().__init__()
        self.channels = tuple(channels)
        total = sum(self.channels)
        self.conv1 = ConvModule(total, total // ratio, 1, norm=norm, act="relu")
        self.conv2 = ConvModule(total // ratio, total, 1, norm=norm, act="sigmoid")

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        size = x[-1].shape[-2:]
        pooled = [_pool_to(s, size) for s in x[:-1]] + [x[-1]]
        weights = self.conv2(self.conv1(torch.cat(pooled, dim=1))).split(self.channels, dim=1)
        return [s * F.interpolate(a, size=s.shape[-2:], mode="nearest") for s, a in zip(x, weights)]


def _pool_to(x: torch.Tensor, size) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, size)`` (mmpose); in an ONNX export, which has no adaptive pooling to a computed
    size, the same windows as an ``avg_pool2d`` whose kernel is the (whole) ratio of the sizes."""
    if torch.onnx.is_in_onnx_export():
        kh, kw = int(x.shape[-2]) // int(size[0]), int(x.shape[-1]) // int(size[1])
        if (kh * int(size[0]), kw * int(size[1])) == (int(x.shape[-2]), int(x.shape[-1])):
            return F.avg_pool2d(x, (kh, kw))
    return F.adaptive_avg_pool2d(x, size)


class ConditionalChannelWeighting(nn.Module):
    """mmpose ``ConditionalChannelWeighting`` (stride 1): each branch map ``(N, C_k, H_k, W_k)`` is halved; the
    second halves go through the cross-resolution weighting, then per branch a 3x3 depthwise conv + BN and a
    spatial weighting; each branch's halves are concatenated (untouched half first) and shuffled in 2 groups.
    Returns maps of the input shapes."""

    def __init__(self, in_channels: tuple[int, ...], reduce_ratio: int, norm: NormSpec, with_cp: bool = False):
        super().__init__()
        self.with_cp = with_cp
        halves = [c // 2 for c in in_channels]
        self.cross_resolution_weighting = CrossResolutionWeighting(tuple(halves), reduce_ratio, norm)
        self.depthwise_convs = nn.ModuleList(ConvModule(c, c, 3, 1, 1, groups=c, norm=norm, act=None)
                                             for c in halves)
        self.spatial_weighting = nn.ModuleList(SpatialWeighting(c, SW_RATIO) for c in halves)

    def _inner(self, *x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        parts = [s.chunk(2, dim=1) for s in x]
        x2 = self.cross_resolution_weighting([p[1] for p in parts])
        x2 = [sw(dw(s)) for s, dw, sw in zip(x2, self.depthwise_convs, self.spatial_weighting)]
        return tuple(channel_shuffle(torch.cat((p[0], s), dim=1), 2) for p, s in zip(parts, x2))

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        return list(_maybe_checkpoint(self._inner, self.with_cp, *x))


class ShuffleUnit(nn.Module):
    """mmpose ``ShuffleUnit`` with stride 1 (the only one Lite-HRNet builds): the second half of ``(N, C, H, W)``
    goes through ``branch2`` (1x1 + BN + ReLU, 3x3 depthwise + BN, 1x1 + BN + ReLU), is concatenated after the
    untouched first half and shuffled in 2 groups; same shape out."""

    def __init__(self, channels: int, norm: NormSpec, with_cp: bool = False):
        super().__init__()
        self.with_cp = with_cp
        bf = channels // 2
        self.branch2 = nn.Sequential(ConvModule(bf, bf, 1, norm=norm),
                                     ConvModule(bf, bf, 3, 1, 1, groups=bf, norm=norm, act=None),
                                     ConvModule(bf, bf, 1, norm=norm))

    def _inner(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat((x1, self.branch2(x2)), dim=1), 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _maybe_checkpoint(self._inner, self.with_cp, x)


class LiteHRModule(nn.Module):
    """mmpose ``LiteHRModule`` (multi-scale output): ``num_blocks`` conditional channel weighting blocks over all
    branches (``LITE``: ``layers`` is a ``Sequential`` of them) or per branch a ``Sequential`` of shuffle units
    (``NAIVE``: ``layers[k]``), then, with ``with_fuse``, the exchange: output i = ReLU(sum over j of the term
    ``fuse_layers[i][j]``: 1x1 conv + BN + nearest ``Upsample(2**(j - i))`` from a lower branch (j > i), a chain
    of i - j (3x3 depthwise stride 2 + BN + 1x1 + BN [+ ReLU but the last]) from a higher one (j < i)), in mmpose's
    order (module docstring). Maps ``[(N, C_k, H_k, W_k)]`` -> the same shapes."""

    def __init__(self, num_branches: int, num_blocks: int, in_channels: tuple[int, ...], reduce_ratio: int,
                 module_type: str, with_fuse: bool, norm: NormSpec, with_cp: bool = False):
        super().__init__()
        self.in_channels = tuple(in_channels)
        self.num_branches = num_branches
        self.module_type = module_type
        self.with_fuse = with_fuse
        if module_type == "LITE":
            self.layers = nn.Sequential(*(ConditionalChannelWeighting(self.in_channels, reduce_ratio, norm, with_cp)
                                          for _ in range(num_blocks)))
        elif module_type == "NAIVE":
            self.layers = nn.ModuleList(nn.Sequential(*(ShuffleUnit(c, norm, with_cp) for _ in range(num_blocks)))
                                        for c in self.in_channels)
        else:
            raise ValueError(f"module_type must be LITE or NAIVE, got {module_type!r}")
        if with_fuse:
            self.fuse_layers = self._make_fuse_layers(norm) if num_branches > 1 else None
            self.relu = nn.ReLU()

    def _make_fuse_layers(self, norm: NormSpec) -> nn.ModuleList:
        ch, nb = self.in_channels, self.num_branches
        rows = []
        for i in range(nb):
            row: list[nn.Module | None] = []
            for j in range(nb):
                if j > i:
                    row.append(nn.Sequential(nn.Conv2d(ch[j], ch[i], 1, 1, 0, bias=False), make_norm(ch[i], norm),
                                             nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")))
                elif j == i:
                    row.append(None)
                else:
                    steps = i - j
                    row.append(nn.Sequential(*(
                        _dw_pw(ch[j], ch[i], 2, norm, None) if k == steps - 1
                        else _dw_pw(ch[j], ch[j], 2, norm, nn.ReLU(inplace=True)) for k in range(steps))))
            rows.append(nn.ModuleList(row))
        return nn.ModuleList(rows)

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.num_branches == 1:
            return [self.layers[0](x[0])]
        if self.module_type == "LITE":
            out = self.layers(list(x))
        else:
            out = [branch(s) for branch, s in zip(self.layers, x)]
        if not self.with_fuse:
            return out
        fuse = self.fuse_layers
        fused = []
        for i in range(self.num_branches):
            if i == 0:
                y = out[0] + out[0]  # mmpose: y = out[0]; y += out[0] (in place: out[0] is y from here on)
            else:
                y = fuse[i][0](out[0])
                y = y + fuse[i][0](out[0])
            for j in range(1, self.num_branches):
                y = y + (out[j] if i == j else fuse[i][j](out[j]))
            if i == 0:
                out = [y, *out[1:]]  # later outputs read the overwritten, pre-ReLU output 0
            fused.append(self.relu(y))
        return fused


class IterativeHead(nn.Module):
    """mmpose ``IterativeHead``: from the lowest-resolution branch up, each map (plus the previous projection,
    bilinearly upsampled with ``align_corners=True``) goes through ``projects[i]`` (a depthwise-separable conv to
    the next higher branch's width; the last keeps its width). ``[(N, C_k, H_k, W_k)]`` -> the same shapes, highest
    resolution first."""

    def __init__(self, in_channels: tuple[int, ...], norm: NormSpec):
        super().__init__()
        rev = tuple(in_channels)[::-1]
        n = len(rev)
        self.in_channels = rev
        self.projects = nn.ModuleList(DepthwiseSeparableConvModule(rev[i], rev[i + 1] if i < n - 1 else rev[i], norm)
                                      for i in range(n))

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        y: list[torch.Tensor] = []
        last = None
        for s, project in zip(x[::-1], self.projects):
            if last is not None:
                s = s + F.interpolate(last, size=s.shape[-2:], mode="bilinear", align_corners=True)
            last = project(s)
            y.append(last)
        return y[::-1]


class LiteHRNet(nn.Module):
    """mmpose ``LiteHRNet`` built from a ``LiteHRNetSection``: ``stem``, then per stage s ``transition{s}`` (a
    ``ModuleList`` with ``None`` where a branch passes unchanged) and ``stage{s}`` (a ``Sequential`` of
    ``LiteHRModule``), then ``head_layer`` (``IterativeHead``) when ``with_head``.

    ``forward(x: (N, in_channels, H, W))`` returns ``[ (N, num_channels[-1][0], H/4, W/4) ]``: mmpose's one-map
    tuple, as a list. ``train()`` keeps BatchNorm in eval mode when ``norm_eval``. ``frozen_stages`` is stored
    (``self.frozen_stages``) and, as in mmpose's ``LiteHRNet``, freezes nothing."""

    def __init__(self, section: LiteHRNetSection):
        super().__init__()
        self.section = section
        norm = section.norm_cfg
        spec = section.stages_spec
        self.norm_eval = section.norm_eval
        self.with_cp = section.with_cp
        self.frozen_stages = section.frozen_stages
        self.num_stages = section.num_stages
        st = section.stem
        self.stem = Stem(section.in_channels, st.stem_channels, st.out_channels, st.expand_ratio, norm)
        prev: tuple[int, ...] = (st.out_channels,)
        for s in range(section.num_stages):
            cur = spec.num_channels[s]
            setattr(self, f"transition{s}", self._make_transition(prev, cur, norm))
            setattr(self, f"stage{s}", nn.Sequential(*(
                LiteHRModule(spec.num_branches[s], spec.num_blocks[s], cur, spec.reduce_ratios[s],
                             spec.module_type[s], spec.fuses(s, m), norm, section.with_cp)
                for m in range(spec.num_modules[s]))))
            prev = cur
        self.with_head = section.with_head
        if section.with_head:
            self.head_layer = IterativeHead(prev, norm)

    @staticmethod
    def _make_transition(prev: tuple[int, ...], cur: tuple[int, ...], norm: NormSpec) -> nn.ModuleList:
        layers: list[nn.Module | None] = []
        for i, c in enumerate(cur):
            if i < len(prev):
                layers.append(_dw_pw(prev[i], c, 1, norm, nn.ReLU()) if c != prev[i] else None)
            else:
                cin = prev[-1]
                steps = i + 1 - len(prev)
                layers.append(nn.Sequential(*(_dw_pw(cin, c if j == steps - 1 else cin, 2, norm, nn.ReLU())
                                              for j in range(steps))))
        return nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        ys = [self.stem(x)]
        for s in range(self.num_stages):
            transition = getattr(self, f"transition{s}")
            xs = []
            for j, layer in enumerate(transition):
                if layer is None:
                    xs.append(ys[j])
                else:
                    xs.append(layer(ys[-1] if j >= len(ys) else ys[j]))
            ys = getattr(self, f"stage{s}")(xs)
        if self.with_head:
            ys = self.head_layer(ys)
        return [ys[0]]

    def train(self, mode: bool = True) -> LiteHRNet:
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm.BatchNorm2d | nn.SyncBatchNorm):  # mmpose: any _BatchNorm
                    m.eval()
        return self


def build(section: LiteHRNetSection) -> LiteHRNet:
    """The backbone of ``section`` on CPU, float32 (mmcv's construction-time init for ``ConvModule`` convs,
    PyTorch's for the rest)."""
    if not isinstance(section, LiteHRNetSection):
        raise TypeError("build takes a LiteHRNetSection; parse an mmpose backbone dict with litehrnet.parse")
    return LiteHRNet(section)


__all__ = ["ConditionalChannelWeighting", "ConvModule", "CrossResolutionWeighting", "DepthwiseSeparableConvModule",
           "IterativeHead", "LiteHRModule", "LiteHRNet", "ShuffleUnit", "SpatialWeighting", "Stem", "build",
           "channel_shuffle", "make_norm"]
