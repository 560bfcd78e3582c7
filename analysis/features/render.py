"""Rendering a ``FeatureCapture`` to images (Pillow + numpy; no matplotlib).

The ``render_*`` functions return ``PIL.Image`` objects (the UI shows them directly); ``write_all``
writes them as PNG files (``compress_level`` 1: fast, still small for these smooth maps)::

    OUT/input.png                  the crop the network saw (after the official preprocessing)
    OUT/maps/<key>.png             one panel per module and branch: mean|a|, max, L2 energy, top-k channels
    OUT/overlays/<key>.png         the branch's L2 energy over the input image
    OUT/modules/<module>.png       one module's branches side by side, at the same display size
    OUT/head/...                   head outputs: per-joint heatmaps with argmax, keypoints, class map,
                                   top-5, or pyramid levels
    OUT/stats.csv                  per module and branch: mean, std, sparsity, energy, ...
    OUT/manifest.json              config, device, timings and the files written

Every map of one figure is drawn at one display size, whatever its resolution: a 1/32 map appears as
blocks of 8x8 cells of a 1/4 map, so resolutions compare side by side.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from analysis.features.capture import BranchMaps, FeatureCapture
from analysis.features.colormaps import TURBO, VIRIDIS, colorize, palette, resize_nearest, to_uint8

BG = (255, 255, 255)
FG = (20, 20, 20)
MUTED = (110, 110, 110)
GAP = 4
TITLE_H = 18
LABEL_H = 14
TILES_PER_ROW = 8
OVERLAY_ALPHA = 0.55
MAX_DISPLAY_SIDE = 512  # overlays of large inputs (segmentation at 1024x2048) are drawn at most this big


def _font(size: int = 11):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


FONT = _font(11)
FONT_TITLE = _font(12)


def cell_hw(input_hw: tuple[int, int], target: int = 128) -> tuple[int, int]:
    """Display size of one map: the 1/4 map scaled by an integer factor up to ``target`` on its longer
    side (or shrunk to it for large inputs)."""
    h0, w0 = max(1, math.ceil(input_hw[0] / 4)), max(1, math.ceil(input_hw[1] / 4))
    side = max(h0, w0)
    if side <= target:
        f = max(1, target // side)
        return h0 * f, w0 * f
    s = target / side
    return max(1, round(h0 * s)), max(1, round(w0 * s))


def display_image(capture: FeatureCapture) -> tuple[np.ndarray, float]:
    """The input crop for overlays, shrunk to ``MAX_DISPLAY_SIDE`` on its longer side, and its scale."""
    img = capture.image
    h, w = img.shape[:2]
    if max(h, w) <= MAX_DISPLAY_SIDE:
        return img, 1.0
    s = MAX_DISPLAY_SIDE / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BILINEAR)), s


def _canvas(h: int, w: int) -> np.ndarray:
    c = np.empty((h, w, 3), np.uint8)
    c[:] = BG
    return c


def _paste(canvas: np.ndarray, img: np.ndarray, top: int, left: int) -> None:
    h, w = img.shape[:2]
    canvas[top:top + h, left:left + w] = img


def overlay(image: np.ndarray, m: np.ndarray, alpha: float = OVERLAY_ALPHA, cmap: np.ndarray = TURBO) -> np.ndarray:
    """``m`` (any 2-D size) min-max scaled, bilinearly resized to ``image``'s size, coloured and blended."""
    h, w = image.shape[:2]
    g = Image.fromarray(to_uint8(m)).resize((w, h), Image.Resampling.BILINEAR)
    col = cmap[np.asarray(g)]
    return (image.astype(np.float32) * (1 - alpha) + col.astype(np.float32) * alpha + 0.5).astype(np.uint8)


def _text(img: Image.Image, items: list[tuple[tuple[int, int], str, tuple[int, int, int], object]]) -> Image.Image:
    d = ImageDraw.Draw(img)
    for xy, s, fill, font in items:
        d.text(xy, s, fill=fill, font=font)
    return img


def _title(b: BranchMaps) -> str:
    _, c, h, w = b.shape
    where = b.module if b.module in ("stem", "layer1") else f"{b.module} · branch {b.branch}"
    return f"{where} · {b.resolution} · {c} ch · {h}x{w}"


def render_panel(b: BranchMaps, display_hw: tuple[int, int]) -> Image.Image:
    """One module's output on one branch: mean|a|, max, L2 energy, and its top-k channels by energy."""
    ch, cw = display_hw
    th, tw = max(1, ch // 2), max(1, cw // 2)
    k = len(b.topk_channels)
    rows = max(1, math.ceil(k / TILES_PER_ROW))
    width = max(3 * cw + 4 * GAP, TILES_PER_ROW * tw + (TILES_PER_ROW + 1) * GAP // 2, 300)
    height = TITLE_H + LABEL_H + ch + GAP + LABEL_H + rows * (th + LABEL_H) + GAP
    canvas = _canvas(height, width)
    labels = [((GAP, 2), _title(b), FG, FONT_TITLE)]
    top = TITLE_H + LABEL_H
    for i, (name, m) in enumerate((("mean |a|", b.mean_abs), ("max", b.max), ("L2 energy", b.energy))):
        left = GAP + i * (cw + GAP)
        _paste(canvas, colorize(resize_nearest(m, ch, cw)), top, left)
        labels.append(((left, TITLE_H), name, MUTED, FONT))
    top += ch + GAP
    labels.append(((GAP, top), f"top {k} channels by energy", MUTED, FONT))
    top += LABEL_H
    if k:
        tiles = VIRIDIS[to_uint8(resize_nearest(b.topk, th, tw, batched=True))]  # (k, th, tw, 3), per channel
        gap = GAP // 2
        for i in range(k):
            r, c = divmod(i, TILES_PER_ROW)
            y, x = top + r * (th + LABEL_H), gap + c * (tw + gap)
            _paste(canvas, tiles[i], y + LABEL_H, x)
            labels.append(((x, y), f"c{int(b.topk_channels[i])}", MUTED, FONT))
    return _text(Image.fromarray(canvas), labels)


TITLE_STRIP = LABEL_H + 2  # px above an image for its title: nothing is written over the picture itself


def titled(img: np.ndarray, title: str) -> Image.Image:
    """``img`` ``(H, W, 3)`` uint8 under a ``TITLE_STRIP``-high strip holding ``title`` (cut with "…" to the
    width): the picture stays as computed, its title is never burned into it or clipped by its edge."""
    h, w = img.shape[:2]
    canvas = _canvas(h + TITLE_STRIP, w)
    _paste(canvas, img, TITLE_STRIP, 0)
    return _text(Image.fromarray(canvas), [((2, 1), _fit(title, w - 4, FONT), FG, FONT)])


def render_overlay(capture: FeatureCapture, key: str) -> Image.Image:
    """The branch's L2 energy map over the input image, its name above it (``titled``)."""
    b = capture.branches[key]
    return titled(overlay(display_image(capture)[0], b.energy), f"{b.key} {b.resolution}")


def render_module(capture: FeatureCapture, module: str, display_hw: tuple[int, int] | None = None) -> Image.Image:
    """One module's branches side by side (columns: 1/4, 1/8, ...): mean|a| and the L2 energy overlay,
    all at the same display size."""
    ch, cw = display_hw or cell_hw(capture.input_hw)
    branches = capture.module_branches(module)
    n = len(branches)
    width = max(n * (cw + GAP) + GAP, 260)
    height = TITLE_H + 2 * (LABEL_H + ch + GAP) + GAP
    canvas = _canvas(height, width)
    small = np.asarray(Image.fromarray(capture.image).resize((cw, ch), Image.Resampling.BILINEAR))
    labels = [((GAP, 2), f"{module}: mean |a|; L2 energy on the image", FG, FONT_TITLE)]
    for i, b in enumerate(branches):
        left = GAP + i * (cw + GAP)
        _, c, h, w = b.shape
        labels.append(((left, TITLE_H), f"{b.resolution} · {c}ch {h}x{w}", MUTED, FONT))
        _paste(canvas, colorize(resize_nearest(b.mean_abs, ch, cw)), TITLE_H + LABEL_H, left)
        y2 = TITLE_H + LABEL_H + ch + GAP + LABEL_H
        _paste(canvas, overlay(small, resize_nearest(b.energy, ch, cw)), y2, left)
        labels.append(((left, y2 - LABEL_H), f"branch {b.branch}", MUTED, FONT))
    return _text(Image.fromarray(canvas), labels)


# ---- heads ---------------------------------------------------------------------------------------
def _mark(d: ImageDraw.ImageDraw, x: float, y: float, colour=(255, 255, 255), r: int = 4) -> None:
    d.ellipse((x - r, y - r, x + r, y + r), outline=colour, width=2)
    d.line((x - r - 3, y, x + r + 3, y), fill=(0, 0, 0), width=1)
    d.line((x, y - r - 3, x, y + r + 3), fill=(0, 0, 0), width=1)


def render_joint(capture: FeatureCapture, j: int) -> Image.Image:
    """Heatmap ``j`` over the input image, its argmax marked."""
    head = capture.head
    base, s = display_image(capture)
    img = Image.fromarray(overlay(base, head.maps[j]))
    d = ImageDraw.Draw(img)
    x, y = head.points[j]
    _mark(d, (x + 0.5) * s - 0.5, (y + 0.5) * s - 0.5)
    return titled(np.asarray(img), f"{j}: {head.names[j]}  max {head.scores[j]:.3g}")


MIN_HEATMAP_TILE_W = 80  # px: a joint's name ("6 right_shoulder" is cut to fit) stays readable under small inputs


def _fit(text: str, width: int, font) -> str:
    """``text`` cut (with "…") to at most ``width`` pixels in ``font``: neighbouring labels never overlap."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def render_heatmap_grid(capture: FeatureCapture, columns: int = 6) -> Image.Image:
    """Every joint's heatmap (scaled to its own range) with its argmax, in a grid at half input size (at least
    ``MIN_HEATMAP_TILE_W`` wide), each labelled with its index and name cut to the tile's width."""
    head = capture.head
    n = head.maps.shape[0]
    h, w = capture.input_hw
    scale = max(0.5, MIN_HEATMAP_TILE_W / w)
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    columns = min(columns, n)
    rows = math.ceil(n / columns)
    canvas = _canvas(rows * (th + LABEL_H) + GAP, columns * (tw + GAP) + GAP)
    small = np.asarray(Image.fromarray(capture.image).resize((tw, th), Image.Resampling.BILINEAR))
    hm = head.maps
    labels, marks = [], []
    for j in range(n):
        r, c = divmod(j, columns)
        y, x = r * (th + LABEL_H), GAP + c * (tw + GAP)
        _paste(canvas, overlay(small, hm[j]), y + LABEL_H, x)
        labels.append(((x, y), _fit(f"{j} {head.names[j]}", tw, FONT), MUTED, FONT))
        px, py = head.points[j]
        marks.append((x + (px + 0.5) * tw / w - 0.5, y + LABEL_H + (py + 0.5) * th / h - 0.5))
    img = _text(Image.fromarray(canvas), labels)
    d = ImageDraw.Draw(img)
    for x, y in marks:
        _mark(d, x, y, r=3)
    return img


def render_keypoints(capture: FeatureCapture) -> Image.Image:
    """All argmax points on the input image, joined by the skeleton where the joints are known."""
    head = capture.head
    base, s = display_image(capture)
    img = Image.fromarray(base.copy())
    d = ImageDraw.Draw(img)
    pts = (head.points + 0.5) * s - 0.5
    for a, b in head.skeleton:
        d.line((float(pts[a][0]), float(pts[a][1]), float(pts[b][0]), float(pts[b][1])), fill=(0, 255, 255), width=2)
    for x, y in pts:
        d.ellipse((x - 3, y - 3, x + 3, y + 3), fill=(255, 60, 60), outline=(255, 255, 255))
    return titled(np.asarray(img), "argmax of each heatmap" + (" + skeleton" if head.skeleton else ""))


def render_class_map(capture: FeatureCapture, blend: bool) -> Image.Image:
    head = capture.head
    base, _ = display_image(capture)
    col = palette(head.classes)[resize_nearest(head.class_map, base.shape[0], base.shape[1])]
    if blend:
        col = (base.astype(np.float32) * 0.45 + col.astype(np.float32) * 0.55 + 0.5).astype(np.uint8)
    return Image.fromarray(col)


def render_top5(capture: FeatureCapture) -> Image.Image:
    """The five most probable classes as bars (ImageNet class indices), beside the input image."""
    head = capture.head
    h, w = capture.input_hw
    small = np.asarray(Image.fromarray(capture.image).resize((w // 2 or 1, h // 2 or 1), Image.Resampling.BILINEAR))
    bar_w = 220
    canvas = _canvas(max(small.shape[0], 6 * 22) + 2 * GAP, small.shape[1] + 90 + bar_w + 70 + 3 * GAP)
    _paste(canvas, small, GAP, GAP)
    left = small.shape[1] + 2 * GAP
    labels = [((left, GAP), f"top-5 of {head.classes} classes (softmax)", FG, FONT_TITLE)]
    pmax = max((p for _, p in head.top5), default=1.0) or 1.0
    for r, (idx, p) in enumerate(head.top5):
        y = GAP + 22 * (r + 1)
        canvas[y + 2:y + 16, left + 90:left + 90 + max(1, int(bar_w * p / pmax))] = (66, 133, 244)
        labels.append(((left, y + 2), f"class {idx}", FG, FONT))
        labels.append(((left + 95 + bar_w, y + 2), f"{p:.4f}", MUTED, FONT))
    return _text(Image.fromarray(canvas), labels)


def render_pyramid(capture: FeatureCapture) -> Image.Image:
    """V2p pyramid levels side by side (channel mean of |a|), each at the same display size."""
    head = capture.head
    ch, cw = cell_hw(capture.input_hw)
    n = len(head.levels)
    canvas = _canvas(TITLE_H + LABEL_H + ch + GAP, max(n * (cw + GAP) + GAP, 260))
    labels = [((GAP, 2), f"HRNetV2p pyramid: {n} levels, channel mean of |a|", FG, FONT_TITLE)]
    for i, (lvl, shape) in enumerate(zip(head.levels, head.shapes)):
        left = GAP + i * (cw + GAP)
        _paste(canvas, colorize(resize_nearest(lvl, ch, cw)), TITLE_H + LABEL_H, left)
        labels.append(((left, TITLE_H), f"P{i} 1/{4 * 2**i} {shape[-2]}x{shape[-1]}", MUTED, FONT))
    return _text(Image.fromarray(canvas), labels)


def head_figures(capture: FeatureCapture) -> dict[str, Callable[[], Image.Image]]:
    """The head's figures by file stem, as functions that draw them (``heatmaps``, ``keypoints``,
    ``joint_00_nose``..., ``class_map``, ``class_overlay``, ``top5``, ``pyramid``, ``level0``...)."""
    head = capture.head
    out: dict[str, Callable[[], Image.Image]] = {}
    if head.kind == "heatmaps":
        out["heatmaps"] = lambda: render_heatmap_grid(capture)
        out["keypoints"] = lambda: render_keypoints(capture)
        for j in range(head.maps.shape[0]):
            out[f"joint_{j:02d}_{head.names[j]}"] = lambda j=j: render_joint(capture, j)
    elif head.kind == "segmentation":
        out["class_map"] = lambda: render_class_map(capture, blend=False)
        out["class_overlay"] = lambda: render_class_map(capture, blend=True)
    elif head.kind == "classification":
        out["top5"] = lambda: render_top5(capture)
    elif head.kind == "pyramid":
        out["pyramid"] = lambda: render_pyramid(capture)
        ch, cw = cell_hw(capture.input_hw)
        for i, lvl in enumerate(head.levels):
            out[f"level{i}"] = lambda lvl=lvl: Image.fromarray(colorize(resize_nearest(lvl, ch, cw)))
    return out


def render_head(capture: FeatureCapture) -> dict[str, Image.Image]:
    """The head's figures by file stem (see ``head_figures``), drawn."""
    return {name: make() for name, make in head_figures(capture).items()}


def _head_tables(capture: FeatureCapture) -> dict[str, str]:
    head = capture.head
    if head.kind == "classification":
        lines = ["rank,class_index,probability"] + [f"{r + 1},{i},{p:.6g}" for r, (i, p) in enumerate(head.top5)]
        return {"top5.csv": "\n".join(lines) + "\n"}
    if head.kind == "heatmaps":
        lines = ["joint,name,x,y,score"] + [
            f"{j},{head.names[j]},{head.points[j][0]:.2f},{head.points[j][1]:.2f},{head.scores[j]:.6g}"
            for j in range(len(head.names))
        ]
        return {"keypoints.csv": "\n".join(lines) + "\n"}
    if head.kind == "segmentation":
        counts = np.bincount(head.class_map.ravel(), minlength=head.classes)
        pal = palette(head.classes)
        lines = ["class_index,pixel_fraction,colour"] + [
            f"{k},{counts[k] / head.class_map.size:.6f},#{pal[k][0]:02x}{pal[k][1]:02x}{pal[k][2]:02x}"
            for k in range(head.classes)
        ]
        return {"classes.csv": "\n".join(lines) + "\n"}
    return {}


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


def write_all(
    capture: FeatureCapture, out_dir: Path, compress_level: int = 1, workers: int | None = None
) -> dict[str, list[Path]]:
    """Write every figure of ``capture`` and ``stats.csv`` under ``out_dir``; returns paths by group.

    Figures are drawn and PNG-encoded on a small thread pool (Pillow and numpy release the GIL).
    """
    out_dir = Path(out_dir)
    for sub in ("maps", "overlays", "modules", "head"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    display = cell_hw(capture.input_hw)

    def save(make, path: Path) -> Path:
        img = make()
        if isinstance(img, np.ndarray):
            img = Image.fromarray(img)
        img.save(path, format="PNG", compress_level=compress_level)
        return path

    jobs: list[tuple[str, object, Path]] = [("input", lambda: capture.image, out_dir / "input.png")]
    for key, b in capture.branches.items():
        jobs.append(("maps", lambda b=b: render_panel(b, display), out_dir / "maps" / f"{_safe(key)}.png"))
        jobs.append(("overlays", lambda key=key: render_overlay(capture, key), out_dir / "overlays" / f"{_safe(key)}.png"))
    for module in capture.modules:
        jobs.append(("modules", lambda m=module: render_module(capture, m, display), out_dir / "modules" / f"{_safe(module)}.png"))
    for name, make in head_figures(capture).items():
        jobs.append(("head", make, out_dir / "head" / f"{_safe(name)}.png"))
    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [(group, pool.submit(save, make, path)) for group, make, path in jobs]
        groups: dict[str, list[Path]] = {"input": [], "maps": [], "overlays": [], "modules": [], "head": [], "tables": []}
        for group, fut in futures:
            groups[group].append(fut.result())
    for name, text in _head_tables(capture).items():
        (out_dir / "head" / name).write_text(text)
        groups["head"].append(out_dir / "head" / name)
    stats_path = out_dir / "stats.csv"
    capture.stats().to_csv(stats_path, index=False, float_format="%.6g")
    groups["tables"].append(stats_path)
    manifest = {
        "config": capture.config_name, "family": capture.family, "head": capture.head_kind,
        "input_hw": list(capture.input_hw), "image": capture.source, "device": capture.device,
        "timings_s": {k: round(v, 4) for k, v in capture.timings.items()},
        "head_output_shapes": [list(s) for s in capture.head.shapes],
        "files": {g: [str(p.relative_to(out_dir)) for p in ps] for g, ps in groups.items()},
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    groups["tables"].append(out_dir / "manifest.json")
    return groups


__all__ = [
    "TITLE_STRIP",
    "titled",
    "write_feature_maps",
    "cell_hw",
    "display_image",
    "overlay",
    "head_figures",
    "render_head",
    "render_heatmap_grid",
    "render_joint",
    "render_keypoints",
    "render_module",
    "render_overlay",
    "render_panel",
    "render_pyramid",
    "render_top5",
    "write_all",
]


def write_feature_maps(capture: FeatureCapture, out_dir: str | Path, compress_level: int = 1) -> dict[str, list[Path]]:
    """Write the capture's images and ``stats.csv`` under ``out_dir`` (created); see ``write_all`` for the layout.
    Returns the written paths by group."""
    return write_all(capture, Path(out_dir), compress_level=compress_level)
