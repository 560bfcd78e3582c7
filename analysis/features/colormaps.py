"""Colormaps and small raster helpers for the feature-map PNGs (numpy + Pillow; no matplotlib).

``viridis`` and ``turbo`` are 256-entry ``uint8`` lookup tables from published polynomial fits
(viridis: Matt Zucker's fit of matplotlib's map, within a few 1/255 steps; turbo: Anton Mikhailov's
fit of Google's Turbo, close but darker at the ends). Mapping an image is one fancy-indexing pass:
``LUT[uint8_map]``.
"""

from __future__ import annotations

import colorsys

import numpy as np

_VIRIDIS = np.array([
    [0.2777273272234177, 0.005407344544966578, 0.3340998053353061],
    [0.1050930431085774, 1.404613529898575, 1.384590162594685],
    [-0.3308618287255563, 0.214847559468213, 0.09509516302823659],
    [-4.634230498983486, -5.799100973351585, -19.33244095627987],
    [6.228269936347081, 14.17993336680509, 56.69055260068105],
    [4.776384997670288, -13.74514537774601, -65.35303263337234],
    [-5.435455855934631, 4.645852612178535, 26.3124352495832],
])
_TURBO = np.array([
    [0.13572138, 0.09140261, 0.10667330],
    [4.61539260, 2.19418839, 12.64194608],
    [-42.66032258, 4.84296658, -60.58204836],
    [132.13108234, -14.18503333, 110.36276771],
    [-152.94239396, 4.27729857, -89.90310912],
    [59.28637943, 2.82956604, 27.34824973],
])


def _lut(coeffs: np.ndarray) -> np.ndarray:
    t = np.linspace(0.0, 1.0, 256)
    powers = np.stack([t**k for k in range(len(coeffs))], axis=1)
    rgb = np.clip(powers @ coeffs, 0.0, 1.0)
    return (rgb * 255.0 + 0.5).astype(np.uint8)


VIRIDIS = _lut(_VIRIDIS)
TURBO = _lut(_TURBO)
COLORMAPS = {"viridis": VIRIDIS, "turbo": TURBO}

# Cityscapes' 19 training classes (official palette), then distinct hues for other class counts.
CITYSCAPES = np.array([
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
], dtype=np.uint8)


def palette(n: int) -> np.ndarray:
    """``(n, 3)`` ``uint8`` class colours: Cityscapes' for n <= 19, golden-ratio hues beyond."""
    if n <= len(CITYSCAPES):
        return CITYSCAPES[:n].copy()
    cols = [colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65 + 0.35 * (i % 2), 0.95 - 0.3 * (i % 3 == 2))
            for i in range(n)]
    return (np.array(cols) * 255 + 0.5).astype(np.uint8)


def to_uint8(m: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Min-max scale a 2-D (or stacked ``(k, H, W)``: per slice) float map to ``uint8`` 0..255."""
    m = np.asarray(m, dtype=np.float32)
    if m.ndim == 3 and lo is None:
        lo_ = m.min(axis=(1, 2), keepdims=True)
        hi_ = m.max(axis=(1, 2), keepdims=True)
    else:
        lo_ = np.float32(m.min() if lo is None else lo)
        hi_ = np.float32(m.max() if hi is None else hi)
    span = np.where(hi_ - lo_ > 0, hi_ - lo_, 1.0).astype(np.float32)
    return np.clip((m - lo_) * (255.0 / span), 0, 255).astype(np.uint8)


def colorize(m: np.ndarray, cmap: str = "viridis", lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """A float map ``(H, W)`` (or ``(k, H, W)``) as ``uint8`` RGB via the named LUT."""
    return COLORMAPS[cmap][to_uint8(m, lo, hi)]


def resize_nearest(a: np.ndarray, out_h: int, out_w: int, batched: bool = False) -> np.ndarray:
    """Nearest-neighbour resize of axes 0 and 1 (``batched``: axes 1 and 2, for a stack of maps) by
    index arrays: exact pixel blocks when upscaling by an integer factor."""
    h, w = (a.shape[1], a.shape[2]) if batched else (a.shape[0], a.shape[1])
    if (h, w) == (out_h, out_w):
        return a
    rows = (np.arange(out_h) * h) // out_h
    cols = (np.arange(out_w) * w) // out_w
    if batched:
        return a[:, rows][:, :, cols]
    return a[rows][:, cols]


__all__ = ["COLORMAPS", "CITYSCAPES", "TURBO", "VIRIDIS", "colorize", "palette", "resize_nearest", "to_uint8"]
