"""HRFormer (Yuan et al. 2021, arXiv 2110.09408) with mmpose's own module tree and parameter names.

Written from the semantics of mmpose 1.x (commit ``759b39c13fea6ba094afc1fa932f51dc1b11cbf9``):
``mmpose/models/backbones/hrformer.py`` (``WindowMSA``, ``LocalWindowSelfAttention``, ``CrossFFN``,
``HRFormerBlock``, ``HRFomerModule``, ``HRFormer``), ``hrnet.py`` (``HRModule``, ``HRNet``: stem, layer1,
transitions, forward) and ``resnet.py`` (``Bottleneck``, reused from ``hrnet_core.blocks``: same key names
``conv1/bn1/conv2/bn2/conv3/bn3/downsample.{0,1}`` and the same arithmetic). mmcv naming: ``build_norm_layer``
gives ``bn1`` / ``bn2`` in the stem, plain ``nn.Sequential`` indices elsewhere.

``state_dict`` keys and their order are mmpose's, including the int64 ``relative_position_index`` buffers;
where mmpose stores ``None`` (an unchanged transition, the ``i <- i`` fusion term) this tree holds an
``nn.Identity`` (no keys), so every part is a real module. Dropout layers with rate 0 are left out (no keys).

Shapes (batch ``N``, branch ``b`` at ``H_b x W_b`` = ``ceil(H / 2**(b+2))`` x ``ceil(W / 2**(b+2))``, ``C_b``):
stem ``(N, in, H, W) -> (N, 64, H_0, W_0)``; layer1 ``-> (N, 4 * stage1 channels, H_0, W_0)``; each stage
``[(N, C_b, H_b, W_b)] -> [(N, C_b, H_b, W_b)]``; the backbone returns stage 4's list (one map unless
``multiscale_output``). Fusion upsamples with a fixed ``scale_factor``, so a map whose side is not a
multiple of ``2**(j-i)`` cannot be summed (mmpose fails the same way).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...blocks import make_layer
from .config import STEM_CHANNELS, HRFormerSection, StageConfig


def relative_position_index(wh: int, ww: int) -> torch.Tensor:
    """``(wh*ww, wh*ww)`` int64: for query token ``p = (r, c)`` and key token ``q = (r', c')`` of a window,
    the row of the bias table for offset ``(r - r', c - c')``: ``(r - r' + wh - 1) * (2*ww - 1) + c - c' + ww - 1``
    (the Swin layout mmpose builds with ``double_step_seq`` and a flip)."""
    r = torch.arange(wh).repeat_interleave(ww)
    c = torch.arange(ww).repeat(wh)
    return (r[:, None] - r[None, :] + wh - 1) * (2 * ww - 1) + (c[:, None] - c[None, :] + ww - 1)


class DropPath(nn.Module):
    """Stochastic depth per sample (mmcv ``DropPath``): in training, each sample's residual is zeroed with
    probability ``drop_prob`` and the kept ones scaled by ``1 / (1 - drop_prob)``; identity in eval."""

    def __init__(self, drop_prob: float):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = (keep + torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device)).floor()
        return x.div(keep) * mask

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.4f}"


class WindowMSA(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias (mmpose ``WindowMSA``).

    ``(B*nW, N, C) -> (B*nW, N, C)``, ``N = wh * ww`` tokens per window: ``qkv`` Linear ``C -> 3C`` (bias),
    ``softmax(q * d**-0.5 @ k^T + bias) @ v`` per head (``d = C / num_heads``), ``proj`` Linear ``C -> C``.
    ``mask`` ``(nW, N, N)`` (0 or -inf) is added per window. ``use_sdpa`` switches the two matrix products to
    ``F.scaled_dot_product_attention`` (same numbers up to rounding; fvcore does not count it).
    """

    use_sdpa = False

    def __init__(self, embed_dims: int, num_heads: int, window_size: tuple[int, int], with_rpe: bool = True):
        super().__init__()
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.window_size = window_size
        self.scale = (embed_dims // num_heads) ** -0.5
        self.with_rpe = with_rpe
        if with_rpe:
            wh, ww = window_size
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
            self.register_buffer("relative_position_index", relative_position_index(wh, ww))
        self.qkv = nn.Linear(embed_dims, embed_dims * 3)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def position_bias(self) -> torch.Tensor:
        """``(num_heads, N, N)``: the bias table gathered by ``relative_position_index``."""
        n = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        return bias.permute(2, 0, 1).contiguous()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        h = self.num_heads
        qkv = self.qkv(x).reshape(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if self.use_sdpa:
            bias = None
            if self.with_rpe:
                bias = self.position_bias().unsqueeze(0)
            if mask is not None:
                nw = mask.shape[0]
                m = mask.unsqueeze(1).repeat(b // nw, 1, 1, 1)  # (B*nW, 1, N, N)
                bias = m if bias is None else bias + m
            if bias is not None:
                bias = bias.to(q.dtype)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            if self.with_rpe:
                attn = attn + self.position_bias().unsqueeze(0)
            if mask is not None:
                nw = mask.shape[0]
                attn = (attn.view(b // nw, nw, h, n, n) + mask.unsqueeze(1).unsqueeze(0)).view(-1, h, n, n)
            out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, window_size={self.window_size}, with_rpe={self.with_rpe}"


class LocalWindowSelfAttention(nn.Module):
    """Local-window self-attention (mmpose ``LocalWindowSelfAttention``): ``(B, H*W, C) -> (B, H*W, C)``.

    The ``(B, H, W, C)`` map is zero-padded to whole windows, centred (``pad // 2`` before, the rest after),
    cut into ``ceil(H/wh) * ceil(W/ww)`` windows, attended per window (``WindowMSA``), reassembled and cropped.
    ``with_pad_mask`` masks padded keys with -inf -- as mmpose, only when both H and W needed padding.
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int | tuple[int, int], with_rpe: bool = True,
                 with_pad_mask: bool = False):
        super().__init__()
        if isinstance(window_size, int):
            window_size = (window_size, window_size)
        self.window_size = window_size
        self.with_pad_mask = with_pad_mask
        self.attn = WindowMSA(embed_dims, num_heads, window_size, with_rpe)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        wh, ww = self.window_size
        nh, nw = math.ceil(h / wh), math.ceil(w / ww)
        pad_h, pad_w = nh * wh - h, nw * ww - w
        pads = (0, 0, pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
        x = F.pad(x.view(b, h, w, c), pads)
        windows = x.view(b, nh, wh, nw, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, wh * ww, c)
        mask = None
        if self.with_pad_mask and pad_h > 0 and pad_w > 0:
            m = F.pad(x.new_zeros(1, h, w, 1), pads, value=-float("inf"))
            m = m.view(1, nh, wh, nw, ww, 1).permute(1, 3, 0, 2, 4, 5).reshape(-1, wh * ww)
            mask = m[:, None, :].expand(-1, wh * ww, -1)
        out = self.attn(windows, mask)
        out = out.reshape(b, nh, nw, wh, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h + pad_h, w + pad_w, c)
        out = out[:, pad_h // 2:h + pad_h // 2, pad_w // 2:w + pad_w // 2]
        return out.reshape(b, n, c)


class CrossFFN(nn.Module):
    """The FFN of an HRFormer block (mmpose ``CrossFFN``): ``(B, H*W, C) -> (B, H*W, C)`` through
    ``fc1`` 1x1 conv ``C -> hidden`` + BN + GELU, ``dw3x3`` depthwise 3x3 conv + BN + GELU, ``fc2`` 1x1 conv
    ``hidden -> C`` + BN + GELU (the convs keep their bias; the last GELU is mmpose's too)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int):
        super().__init__()
        self.fc1 = nn.Conv2d(in_features, hidden_features, kernel_size=1)
        self.act1 = nn.GELU()
        self.norm1 = nn.BatchNorm2d(hidden_features)
        self.dw3x3 = nn.Conv2d(hidden_features, hidden_features, kernel_size=3, padding=1, groups=hidden_features)
        self.act2 = nn.GELU()
        self.norm2 = nn.BatchNorm2d(hidden_features)
        self.fc2 = nn.Conv2d(hidden_features, out_features, kernel_size=1)
        self.act3 = nn.GELU()
        self.norm3 = nn.BatchNorm2d(out_features)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        x = x.transpose(1, 2).reshape(b, c, h, w)
        x = self.act1(self.norm1(self.fc1(x)))
        x = self.act2(self.norm2(self.dw3x3(x)))
        x = self.act3(self.norm3(self.fc2(x)))
        return x.flatten(2).transpose(1, 2).contiguous()


class HRFormerBlock(nn.Module):
    """One transformer block (mmpose ``HRFormerBlock``): ``(B, C, H, W) -> (B, C, H, W)``;
    ``t = t + drop_path(attn(LN(t)))``, ``t = t + drop_path(ffn(LN(t)))`` on the ``(B, H*W, C)`` tokens, LayerNorm
    eps 1e-6 by default. The one ``drop_path`` module serves both residuals (two draws in training)."""

    expansion = 1

    def __init__(self, channels: int, num_heads: int, window_size: int, mlp_ratio: float, drop_path: float = 0.0,
                 with_rpe: bool = True, with_pad_mask: bool = False, ln_eps: float = 1e-6):
        super().__init__()
        self.num_heads, self.window_size, self.mlp_ratio = num_heads, window_size, mlp_ratio
        self.norm1 = nn.LayerNorm(channels, eps=ln_eps)
        self.attn = LocalWindowSelfAttention(channels, num_heads, window_size, with_rpe, with_pad_mask)
        self.norm2 = nn.LayerNorm(channels, eps=ln_eps)
        self.ffn = CrossFFN(channels, int(channels * mlp_ratio), channels)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = x.reshape(b, c, h * w).permute(0, 2, 1)
        t = t + self.drop_path(self.attn(self.norm1(t), h, w))
        t = t + self.drop_path(self.ffn(self.norm2(t), h, w))
        return t.permute(0, 2, 1).reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, window_size={self.window_size}, mlp_ratio={self.mlp_ratio}"


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c)


def fuse_term(i: int, j: int, channels: tuple[int, ...], upsample) -> nn.Module:
    """The term of output branch ``i`` read from branch ``j`` (mmpose ``HRFomerModule._make_fuse_layers``):

    - ``j > i``: 1x1 conv ``C_j -> C_i`` + BN + ``nn.Upsample(scale_factor=2**(j-i))`` (``.0``, ``.1``, ``.2``);
    - ``j < i``: ``i - j`` steps ``.k``, each depthwise 3x3 stride-2 conv + BN + 1x1 conv + BN (``.k.0`` ..
      ``.k.3``), ``C_j`` channels until the last step's 1x1 goes to ``C_i``; ReLU after every step but the last;
    - ``j == i``: identity (``None`` in mmpose).
    """
    if j == i:
        return nn.Identity()
    if j > i:
        return nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False), _bn(channels[i]),
                             nn.Upsample(scale_factor=2 ** (j - i), mode=upsample.mode,
                                         align_corners=upsample.align_corners))
    cj, steps = channels[j], []
    for k in range(i - j):
        last = k == i - j - 1
        out = channels[i] if last else cj
        layers = [nn.Conv2d(cj, cj, 3, stride=2, padding=1, groups=cj, bias=False), _bn(cj),
                  nn.Conv2d(cj, out, 1, bias=False), _bn(out)]
        if not last:
            layers.append(nn.ReLU(inplace=False))
        steps.append(nn.Sequential(*layers))
    return nn.Sequential(*steps)


class HRFormerModule(nn.Module):
    """One HRFormer module (mmpose ``HRFomerModule`` on ``HRModule``): ``branches[b]`` (HRFormer blocks) on
    each input, then, with more than one branch, output ``i = ReLU(sum_j fuse_layers[i][j](x_j))`` for every
    branch (or branch 0 only without ``multiscale_output``). ``[(N, C_b, H_b, W_b)] -> [(N, C_i, H_i, W_i)]``.

    ``with_fuse=False`` (this project's extension, ``StageConfig.with_fuse``; mmpose always fuses): no
    ``fuse_layers`` are built (an empty ``ModuleList``, no state_dict keys) and each branch's map is passed on as
    its blocks leave it, with no ReLU (Lite-HRNet's ``LiteHRModule`` and the classic HRNet without fusion);
    without ``multiscale_output`` only branch 0's map is returned (the official Lite-HRNet's ``[out[0]]``)."""

    def __init__(self, stage: StageConfig, drop_paths: tuple[float, ...], multiscale_output: bool, with_rpe: bool,
                 with_pad_mask: bool, upsample, ln_eps: float, with_fuse: bool = True):
        super().__init__()
        c = stage.num_channels
        self.num_branches = stage.num_branches
        self.multiscale_output = multiscale_output
        self.with_fuse = with_fuse
        self.branches = nn.ModuleList(
            nn.Sequential(*(HRFormerBlock(c[b], stage.num_heads[b], stage.window_sizes[b], stage.mlp_ratios[b],
                                          drop_paths[k], with_rpe, with_pad_mask, ln_eps)
                            for k in range(stage.num_blocks[b])))
            for b in range(stage.num_branches))
        rows = 0 if stage.num_branches == 1 or not with_fuse else (stage.num_branches if multiscale_output else 1)
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(fuse_term(i, j, c, upsample) for j in range(stage.num_branches)) for i in range(rows))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.num_branches == 1:
            return xs
        if not self.with_fuse:
            return xs if self.multiscale_output else xs[:1]
        out = []
        for row in self.fuse_layers:
            y = None
            for term, x in zip(row, xs):
                t = term(x)
                y = t if y is None else y + t  # out of place: the i <- i term is the branch's own tensor
            out.append(self.relu(y))
        return out


class HRFormer(nn.Module):
    """The HRFormer backbone (mmpose ``HRFormer``): ``(N, in_channels, H, W)`` -> stage 4's list of maps.

    ``conv1`` (3x3 s2, ``in -> 64``) ``bn1`` ReLU ``conv2`` (3x3 s2) ``bn2`` ReLU; ``layer1``: Bottlenecks;
    ``transition{1,2,3}``: per branch of the next stage, identity, a 3x3 conv + BN + ReLU when an existing
    branch changes width, or a chain of 3x3 stride-2 conv + BN + ReLU from the previous stage's last map for a
    new branch; ``stage{2,3,4}``: ``nn.Sequential`` of ``HRFormerModule``.
    """

    def __init__(self, section: HRFormerSection):
        super().__init__()
        self.section = section
        self.conv1 = nn.Conv2d(section.in_channels, STEM_CHANNELS, 3, stride=2, padding=1, bias=False)
        self.bn1 = _bn(STEM_CHANNELS)
        self.conv2 = nn.Conv2d(STEM_CHANNELS, STEM_CHANNELS, 3, stride=2, padding=1, bias=False)
        self.bn2 = _bn(STEM_CHANNELS)
        self.relu = nn.ReLU(inplace=True)
        s1 = section.stage1
        self.layer1 = make_layer("BOTTLENECK", STEM_CHANNELS, s1.num_channels[0], s1.num_blocks[0])
        pre = (s1.out_channels,)
        rates = section.drop_path_rates()
        for s, stage in enumerate(section.stages, start=2):
            self.add_module(f"transition{s - 1}", _transition(pre, stage.num_channels))
            multiscale = stage.multiscale_output if s == 4 else True
            modules = []
            for m in range(stage.num_modules):
                nb0 = stage.num_blocks[0]
                modules.append(HRFormerModule(stage, rates[s - 2][m * nb0:(m + 1) * nb0],
                                              multiscale or m < stage.num_modules - 1, section.with_rpe,
                                              section.with_pad_mask, section.upsample, section.transformer_norm_eps,
                                              stage.fuses(m)))
            self.add_module(f"stage{s}", nn.Sequential(*modules))
            pre = stage.num_channels
        if not section.norm_cfg.requires_grad:
            for mod in self.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        ys = [self.layer1(x)]
        for s in (2, 3, 4):
            transition = getattr(self, f"transition{s - 1}")
            # mmpose: an identity keeps branch i's map; any other transition reads the last map (y_list[-1])
            xs = [ys[i] if isinstance(t, nn.Identity) else t(ys[-1]) for i, t in enumerate(transition)]
            ys = getattr(self, f"stage{s}")(xs)
        return ys

    def set_fast_attention(self, enabled: bool = True) -> HRFormer:
        """Use ``F.scaled_dot_product_attention`` in every window attention (or the reference path again)."""
        for mod in self.modules():
            if isinstance(mod, WindowMSA):
                mod.use_sdpa = bool(enabled)
        return self


def _transition(pre: tuple[int, ...], cur: tuple[int, ...]) -> nn.ModuleList:
    """mmpose ``HRNet._make_transition_layer``; ``nn.Identity`` where mmpose stores ``None``."""
    layers = []
    for i, c in enumerate(cur):
        if i < len(pre):
            layers.append(nn.Identity() if c == pre[i] else
                          nn.Sequential(nn.Conv2d(pre[i], c, 3, padding=1, bias=False), _bn(c), nn.ReLU(inplace=True)))
        else:
            steps = []
            for k in range(i + 1 - len(pre)):
                out = c if k == i - len(pre) else pre[-1]
                steps.append(nn.Sequential(nn.Conv2d(pre[-1], out, 3, stride=2, padding=1, bias=False), _bn(out),
                                           nn.ReLU(inplace=True)))
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


def build(section: HRFormerSection) -> HRFormer:
    """The backbone of ``section`` (random init: PyTorch defaults; load a checkpoint for real weights)."""
    return HRFormer(section)


__all__ = ["CrossFFN", "DropPath", "HRFormer", "HRFormerBlock", "HRFormerModule", "LocalWindowSelfAttention",
           "WindowMSA", "build", "fuse_term", "relative_position_index"]
