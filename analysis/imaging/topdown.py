"""Top-down geometry of the official pose repo (``lib/utils/transforms.py`` and ``_xywh2cs`` in
``lib/dataset/coco.py`` of leoxiaobin/deep-high-resolution-net.pytorch): person box -> centre and scale,
the affine transform onto the network input, and ``cv2.warpAffine`` done with Pillow.

Shared by the feature-map preprocessing (``analysis.imaging.images``) and the COCO loader (``analysis.ablation``).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

PIXEL_STD = 200.0
BOX_PADDING = 1.25


def box_to_center_scale(box, aspect_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Official ``_xywh2cs``: centre of the box, scale in units of 200 px at the input's aspect ratio, x1.25."""
    x, y, w, h = box
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w / PIXEL_STD, h / PIXEL_STD], dtype=np.float32) * BOX_PADDING
    return center, scale


def _rotate(pt, rad: float) -> np.ndarray:
    sn, cs = math.sin(rad), math.cos(rad)
    return np.array([pt[0] * cs - pt[1] * sn, pt[0] * sn + pt[1] * cs], dtype=np.float32)


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


def _affine_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 matrix mapping three ``src`` points onto ``dst`` (``cv2.getAffineTransform``)."""
    a = np.concatenate([src.astype(np.float64), np.ones((3, 1))], axis=1)
    return np.linalg.solve(a, dst.astype(np.float64)).T


def get_affine_transform(center, scale, rot: float, output_wh, inv: bool = False) -> np.ndarray:
    """Official ``get_affine_transform``: the box ``center``/``scale`` (x200 px), rotated by ``rot``
    degrees, onto an ``output_wh`` image (or back with ``inv``). Returns a 2x3 matrix."""
    scale_tmp = np.asarray(scale, dtype=np.float32) * PIXEL_STD
    src_w = scale_tmp[0]
    dst_w, dst_h = float(output_wh[0]), float(output_wh[1])
    src_dir = _rotate([0, src_w * -0.5], math.pi * rot / 180)
    dst_dir = np.array([0, dst_w * -0.5], dtype=np.float32)
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    src[1] = np.asarray(center, dtype=np.float32) + src_dir
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + dst_dir
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    return _affine_from_points(dst, src) if inv else _affine_from_points(src, dst)


def affine_points(pts: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``(..., 2)`` points through a 2x3 matrix."""
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def warp(img: Image.Image, m: np.ndarray, out_wh: tuple[int, int]) -> Image.Image:
    """``cv2.warpAffine(img, m, out_wh, flags=INTER_LINEAR)`` with a zero border, in Pillow.

    Pillow samples at pixel centres ``+0.5`` and wants the output-to-input map, so the inverse is
    shifted by half a pixel on both sides.
    """
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(full)[:2]
    a, b, c = inv[0]
    d, e, f = inv[1]
    coeffs = (a, b, c + 0.5 - 0.5 * (a + b), d, e, f + 0.5 - 0.5 * (d + e))
    return img.transform((int(out_wh[0]), int(out_wh[1])), Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=0)
