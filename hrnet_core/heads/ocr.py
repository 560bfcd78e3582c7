"""The OCR head of HRNet + OCR (Yuan et al. 2020, "Object-Contextual Representations for Semantic
Segmentation"), as in ``lib/models/seg_hrnet_ocr.py`` of HRNet/HRNet-Semantic-Segmentation.

Official state_dict names: ``conv3x3_ocr``, ``ocr_gather_head`` (no parameters), ``ocr_distri_head``
(``object_context_block.f_pixel|f_object|f_down|f_up``, ``conv_bn_dropout``), ``cls_head``, ``aux_head``.
The official code fixes the attention scale to 1 and the dropout to 0.05 (``MODEL.OCR.DROPOUT`` and
``SCALE`` are not read), so they are constants here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import bn
from .common import concat_branches
from .registry import HeadSpec, register

OCR_DROPOUT = 0.05


def _conv1x1(in_ch: int, out_ch: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, bias=bias)


def _bn_relu(ch: int) -> nn.Sequential:
    return nn.Sequential(bn(ch), nn.ReLU(inplace=False))


class SpatialGather(nn.Module):
    """Soft object regions -> object features: ``(N, M, H, W)`` and ``(N, K, H, W)`` -> ``(N, M, K, 1)``."""

    def forward(self, feats: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        n, k = probs.shape[:2]
        weights = F.softmax(probs.reshape(n, k, -1), dim=2)
        pixels = feats.reshape(n, feats.shape[1], -1).permute(0, 2, 1)
        return torch.matmul(weights, pixels).permute(0, 2, 1).unsqueeze(3)


class ObjectAttention(nn.Module):
    """Pixel-to-object attention: pixels ``(N, M, H, W)``, objects ``(N, M, K, 1)`` -> ``(N, M, H, W)``."""

    def __init__(self, in_channels: int, key_channels: int):
        super().__init__()
        self.key_channels = key_channels
        self.f_pixel = nn.Sequential(_conv1x1(in_channels, key_channels), _bn_relu(key_channels),
                                     _conv1x1(key_channels, key_channels), _bn_relu(key_channels))
        self.f_object = nn.Sequential(_conv1x1(in_channels, key_channels), _bn_relu(key_channels),
                                      _conv1x1(key_channels, key_channels), _bn_relu(key_channels))
        self.f_down = nn.Sequential(_conv1x1(in_channels, key_channels), _bn_relu(key_channels))
        self.f_up = nn.Sequential(_conv1x1(key_channels, in_channels), _bn_relu(in_channels))

    def forward(self, x: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        kc = self.key_channels
        query = self.f_pixel(x).reshape(n, kc, -1).permute(0, 2, 1)
        key = self.f_object(proxy).reshape(n, kc, -1)
        value = self.f_down(proxy).reshape(n, kc, -1).permute(0, 2, 1)
        sim = F.softmax(torch.matmul(query, key) * kc**-0.5, dim=-1)
        context = torch.matmul(sim, value).permute(0, 2, 1).reshape(n, kc, h, w)
        return self.f_up(context)


class SpatialOCR(nn.Module):
    """Object context concatenated before the pixel features, then 1x1 conv + BN + ReLU + dropout."""

    def __init__(self, in_channels: int, key_channels: int, out_channels: int):
        super().__init__()
        self.object_context_block = ObjectAttention(in_channels, key_channels)
        self.conv_bn_dropout = nn.Sequential(_conv1x1(2 * in_channels, out_channels), _bn_relu(out_channels),
                                             nn.Dropout2d(OCR_DROPOUT))

    def forward(self, feats: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
        context = self.object_context_block(feats, proxy)
        return self.conv_bn_dropout(torch.cat([context, feats], dim=1))


class OCRHead(nn.Module):
    """All branches -> ``[aux, out]``, both ``(N, outputs, H/4, W/4)`` (the official output order)."""

    def __init__(self, in_channels: tuple[int, ...], outputs: int, mid_channels: int, key_channels: int,
                 align_corners: bool):
        super().__init__()
        total = sum(in_channels)
        self.align_corners = align_corners
        self.conv3x3_ocr = nn.Sequential(nn.Conv2d(total, mid_channels, kernel_size=3, stride=1, padding=1),
                                         bn(mid_channels), nn.ReLU(inplace=True))
        self.ocr_gather_head = SpatialGather()
        self.ocr_distri_head = SpatialOCR(mid_channels, key_channels, mid_channels)
        self.cls_head = nn.Conv2d(mid_channels, outputs, kernel_size=1, bias=True)
        self.aux_head = nn.Sequential(
            nn.Conv2d(total, total, kernel_size=1, bias=True), bn(total), nn.ReLU(inplace=True),
            nn.Conv2d(total, outputs, kernel_size=1, bias=True),
        )

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        x = concat_branches(feats, self.align_corners)
        aux = self.aux_head(x)
        pixels = self.conv3x3_ocr(x)
        objects = self.ocr_gather_head(pixels, aux)
        return [aux, self.cls_head(self.ocr_distri_head(pixels, objects))]


def build(family: str, head, in_channels: tuple[int, ...], align_corners: bool) -> nn.Module:
    return OCRHead(in_channels, head.outputs, head.channels, head.key_channels, align_corners)


register(HeadSpec("ocr", build, fields=("outputs", "channels", "key_channels"),
                  state_dict_names=("conv3x3_ocr", "ocr_gather_head", "ocr_distri_head", "cls_head", "aux_head")))
