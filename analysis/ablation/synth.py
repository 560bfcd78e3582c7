"""The built-in keypoint dataset: articulated figures with the 17 COCO joints over real photographs.

Each image shows one to three figures (head, torso, arms, legs) in a random pose, size, rotation,
limb width and colours, over a crop of one of scikit-image's bundled photographs, with clutter behind
and occluders in front. Left and right limbs of a figure are drawn alike (same colour, width and
shape): which side is the person's left follows only from the whole figure -- the face and the chest
badge are drawn on a figure seen from the front, the plain back of the head and torso on one seen
from behind -- so telling a left wrist from a right one needs context far beyond a local window.

Visibility follows COCO: 2 visible, 1 labelled but hidden (under an occluder or another figure, or the
face of a figure seen from behind), 0 outside the image (coordinates 0, 0).

``builtin_dataset`` writes the images and ``annotations/person_keypoints_{train,val}2017.json`` once
per (seed, image size, counts) into a cache folder in the COCO 2017 layout, so the same loader and
evaluator as for COCO itself read it.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from analysis.ablation.keypoints import NUM_JOINTS, PERSON_CATEGORY
from analysis.ablation.procs import set_parent_death_signal
from analysis.settings import cache_base

GENERATOR_VERSION = 1
SUPERSAMPLE = 2
# Colour photographs bundled with scikit-image (no download); grey ones are tinted.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "cat")
GREY_PHOTOS = ("camera", "grass", "gravel", "brick", "moon", "coins", "clock")
SPLITS = ("train2017", "val2017")


def cache_root() -> Path:
    """``$HRNET_EXPLORER_CACHE/builtin`` or ``<repo>/.cache/hrnet-explorer/builtin``."""
    return cache_base() / "builtin"


@cache
def _photos() -> tuple[np.ndarray, ...]:
    import skimage.data as skd

    out = []
    for name in PHOTOS + GREY_PHOTOS:
        try:
            img = np.asarray(getattr(skd, name)())
        except Exception:  # a photo missing from this scikit-image build: use the others
            continue
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out.append(np.ascontiguousarray(img[..., :3].astype(np.uint8)))
    if not out:
        raise RuntimeError("no scikit-image sample photographs could be read")
    return tuple(out)


@dataclass(frozen=True)
class Scene:
    """What an image holds besides its figures' poses: how many figures (probabilities of 1, 2, 3),
    how many clutter shapes (``clutter_min`` to ``clutter_max``, limb-like sticks, disks, triangles),
    the chance that a figure gets photo-patch occluders, and the share of figures turned to any angle
    (the others lean by N(0, 0.45) rad). The defaults are the standard built-in task."""

    figures: tuple[float, float, float] = (0.7, 0.25, 0.05)
    clutter_min: int = 3
    clutter_max: int = 10
    occluder_prob: float = 0.45
    free_rotation: float = 0.25

    def tag(self) -> str:
        """``""`` for the standard scene, else a short stable tag for the cache folder's name."""
        if self == Scene():
            return ""
        text = json.dumps(asdict(self), sort_keys=True)
        return "-scene" + hashlib.sha1(text.encode()).hexdigest()[:8]


DEFAULT_SCENE = Scene()


def _background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    photos = _photos()
    img = photos[rng.integers(len(photos))]
    ph, pw = img.shape[:2]
    frac = rng.uniform(0.35, 1.0)
    cw, ch = max(8, int(pw * frac)), max(8, int(ph * frac * rng.uniform(0.75, 1.25)))
    cw, ch = min(cw, pw), min(ch, ph)
    x0, y0 = rng.integers(0, pw - cw + 1), rng.integers(0, ph - ch + 1)
    crop = img[y0:y0 + ch, x0:x0 + cw].astype(np.float32)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:  # tint and contrast jitter
        crop = crop * rng.uniform(0.6, 1.3, size=3) + rng.uniform(-30, 30)
    crop = np.clip(crop, 0, 255).astype(np.uint8)
    return Image.fromarray(crop).resize((w, h), Image.BILINEAR)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, size=3))


def _shade(c: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(v * f, 0, 255)) for v in c)


def _unit(angle: float, side: float) -> np.ndarray:
    """Down (+y) rotated outwards by ``angle`` towards ``side`` (+1 image right, -1 image left)."""
    return np.array([side * math.sin(angle), math.cos(angle)])


def random_pose(rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """17 joints of an upright figure in body units (torso length 1, hip centre at 0, y down) and
    the drawing parameters. ``front`` says whether the figure faces the viewer: then the person's
    left is on the image right."""
    front = bool(rng.random() < 0.55)
    left = 1.0 if front else -1.0  # image-x sign of the person's left side
    sw = rng.uniform(0.45, 0.75)
    hw = rng.uniform(0.3, 0.5)
    ua, fa = rng.uniform(0.45, 0.6), rng.uniform(0.4, 0.55)
    th, sh = rng.uniform(0.55, 0.75), rng.uniform(0.5, 0.7)
    rh = rng.uniform(0.18, 0.26)
    j = np.zeros((NUM_JOINTS, 2))
    neck = np.array([rng.uniform(-0.08, 0.08), -1.0])
    tilt = rng.uniform(-0.35, 0.35)
    head = neck + 0.45 * np.array([math.sin(tilt), -math.cos(tilt)]) + np.array([0, -rh * 0.3])
    yaw = rng.uniform(-0.35, 0.35) * rh
    j[0] = head + [yaw, 0.2 * rh]                       # nose
    for k, s in ((1, left), (2, -left)):                # eyes
        j[k] = head + [yaw + s * 0.4 * rh, -0.15 * rh]
    for k, s in ((3, left), (4, -left)):                # ears
        j[k] = head + [s * 0.95 * rh, 0.0]
    for (sh_k, el_k, wr_k), s in (((5, 7, 9), left), ((6, 8, 10), -left)):
        j[sh_k] = neck + [s * sw / 2, rng.uniform(0.02, 0.1)]
        a1 = rng.uniform(-0.7, 2.9)
        a2 = a1 + rng.uniform(-2.4, 2.4)
        j[el_k] = j[sh_k] + ua * _unit(a1, s)
        j[wr_k] = j[el_k] + fa * _unit(a2, s)
    for (hp_k, kn_k, an_k), s in (((11, 13, 15), left), ((12, 14, 16), -left)):
        j[hp_k] = np.array([s * hw / 2, 0.0])
        b1 = rng.uniform(-0.45, 1.2)
        b2 = b1 + rng.uniform(-1.4, 0.5)
        j[kn_k] = j[hp_k] + th * _unit(b1, s)
        j[an_k] = j[kn_k] + sh * _unit(b2, s)
    style = {
        "front": front,
        "head": head,
        "head_r": rh,
        "neck": neck,
        "limb_w": rng.uniform(0.09, 0.17),
        "leg_w": rng.uniform(0.11, 0.2),
        "skin": _colour(rng),
        "shirt": _colour(rng),
        "pants": _colour(rng),
        "hair": _colour(rng),
        "badge": _colour(rng),
        "badge_kind": int(rng.integers(3)),
    }
    return j, style


class _Canvas:
    """Drawing at ``SUPERSAMPLE`` times the final size; coordinates are final-image pixels."""

    def __init__(self, img: Image.Image):
        self.img = img
        self.draw = ImageDraw.Draw(img)

    @staticmethod
    def p(pt) -> tuple[float, float]:
        return (SUPERSAMPLE * float(pt[0]) + 0.5 * (SUPERSAMPLE - 1), SUPERSAMPLE * float(pt[1]) + 0.5 * (SUPERSAMPLE - 1))

    def line(self, a, b, width: float, fill, masks=()) -> None:
        w = max(1, int(round(SUPERSAMPLE * width)))
        for d, f in ((self.draw, fill), *((m, 255) for m in masks)):
            d.line([self.p(a), self.p(b)], fill=f, width=w)
        self.disk(a, width / 2, fill, masks)
        self.disk(b, width / 2, fill, masks)

    def disk(self, c, r: float, fill, masks=()) -> None:
        x, y = self.p(c)
        rr = max(0.5, SUPERSAMPLE * r)
        for d, f in ((self.draw, fill), *((m, 255) for m in masks)):
            d.ellipse([x - rr, y - rr, x + rr, y + rr], fill=f)

    def polygon(self, pts, fill, masks=()) -> None:
        pp = [self.p(q) for q in pts]
        for d, f in ((self.draw, fill), *((m, 255) for m in masks)):
            d.polygon(pp, fill=f)


def _draw_figure(cv: _Canvas, j: np.ndarray, style: dict, to_img, scale: float, masks) -> None:
    """Draw one figure; ``j`` in image pixels, ``to_img`` maps body units to pixels."""
    lw, gw = style["limb_w"] * scale, style["leg_w"] * scale
    skin, shirt, pants = style["skin"], style["shirt"], style["pants"]
    joint_c = _shade(shirt, 0.7)
    knee_c = _shade(pants, 0.7)
    # Legs behind the torso, then torso, arms, head; left and right limbs alike.
    for a, b, c in ((11, 13, 15), (12, 14, 16)):
        cv.line(j[a], j[b], gw, pants, masks)
        cv.line(j[b], j[c], gw * 0.85, pants, masks)
        cv.disk(j[b], gw * 0.55, knee_c, masks)
        foot = j[c] + (j[c] - j[b]) * 0.25
        cv.line(j[c], foot, gw * 0.9, _shade(pants, 0.45), masks)
    torso = [j[5], j[6], j[12], j[11]]
    cv.polygon(torso, shirt, masks)
    cv.line(j[5], j[6], lw * 1.2, shirt, masks)
    cv.line(j[11], j[12], gw, pants, masks)
    neck_img = to_img(style["neck"])
    head_img = to_img(style["head"])
    hr = style["head_r"] * scale
    chest = neck_img + (to_img(np.array([0.0, 0.0])) - neck_img) * 0.3
    if style["front"]:  # the badge marks the front
        r = 0.12 * scale
        if style["badge_kind"] == 0:
            cv.disk(chest, r, style["badge"])
        elif style["badge_kind"] == 1:
            cv.polygon([chest + [-r, -r], chest + [r, -r], chest + [0, r * 1.2]], style["badge"])
        else:
            cv.line(chest + [-r, 0], chest + [r, 0], r * 0.8, style["badge"])
    cv.line(neck_img, head_img, hr * 0.55, skin, masks)
    for a, b, c in ((5, 7, 9), (6, 8, 10)):
        cv.line(j[a], j[b], lw, shirt, masks)
        cv.line(j[b], j[c], lw * 0.85, skin, masks)
        cv.disk(j[b], lw * 0.55, joint_c, masks)
        cv.disk(j[c], lw * 0.6, _shade(skin, 0.8), masks)
    for k in (3, 4):  # ears
        cv.disk(j[k], hr * 0.28, _shade(skin, 0.85), masks)
    if style["front"]:
        cv.disk(head_img, hr, skin, masks)
        up = (head_img - neck_img) / max(1e-6, float(np.linalg.norm(head_img - neck_img)))
        cv.disk(head_img + up * hr * 0.55, hr * 0.55, style["hair"])
        for k in (1, 2):
            cv.disk(j[k], max(0.6, hr * 0.14), (20, 20, 20))
        cv.disk(j[0], max(0.6, hr * 0.12), _shade(skin, 0.6))
        mouth = j[0] + (j[0] - (j[1] + j[2]) / 2) * 0.9
        cv.disk(mouth, max(0.5, hr * 0.1), (150, 40, 40))
    else:
        cv.disk(head_img, hr, style["hair"], masks)


def _clutter(cv: _Canvas, rng: np.random.Generator, w: int, h: int, palette, scene: Scene) -> None:
    for _ in range(int(rng.integers(scene.clutter_min, scene.clutter_max + 1))):
        kind = rng.random()
        c = palette[rng.integers(len(palette))] if palette and rng.random() < 0.5 else _colour(rng)
        a = rng.uniform([0, 0], [w, h])
        if kind < 0.5:  # limb-like sticks
            b = a + rng.normal(0, 0.2 * max(w, h), size=2)
            cv.line(a, b, rng.uniform(1.5, 0.05 * max(w, h)), c)
        elif kind < 0.8:
            cv.disk(a, rng.uniform(1.5, 0.07 * max(w, h)), c)
        else:
            pts = [a + rng.normal(0, 0.08 * max(w, h), size=2) for _ in range(3)]
            cv.polygon(pts, c)


def _occluder(cv: _Canvas, rng: np.random.Generator, centre, size: float, occ_mask: ImageDraw.ImageDraw) -> None:
    photos = _photos()
    img = photos[rng.integers(len(photos))]
    side = max(4, int(size * SUPERSAMPLE))
    ph, pw = img.shape[:2]
    x0, y0 = rng.integers(0, max(1, pw - side)), rng.integers(0, max(1, ph - side))
    patch = Image.fromarray(img[y0:y0 + side, x0:x0 + side]).resize((side, side))
    ew, eh = size * rng.uniform(0.5, 1.0), size * rng.uniform(0.5, 1.0)
    x, y = cv.p(centre)
    box = [int(x - ew * SUPERSAMPLE / 2), int(y - eh * SUPERSAMPLE / 2)]
    shape = Image.new("L", (side, side), 0)
    sd = ImageDraw.Draw(shape)
    bw, bh = int(ew * SUPERSAMPLE), int(eh * SUPERSAMPLE)
    if rng.random() < 0.5:
        sd.rectangle([0, 0, bw, bh], fill=255)
    else:
        sd.ellipse([0, 0, bw, bh], fill=255)
    cv.img.paste(patch, tuple(box), shape)
    occ_mask.bitmap(tuple(box), shape, fill=255)


def render_image(seed: int, split: int, index: int, width: int, height: int,
                 scene: Scene = DEFAULT_SCENE) -> tuple[Image.Image, list[dict]]:
    """One image and its person annotations (keypoints, num_keypoints, bbox, area) for
    ``(seed, split, index)``; deterministic."""
    rng = np.random.default_rng([seed, split, index, GENERATOR_VERSION])
    big = _background(rng, width * SUPERSAMPLE, height * SUPERSAMPLE)
    cv = _Canvas(big)
    p = np.asarray(scene.figures, dtype=np.float64)
    n_fig = int(rng.choice([1, 2, 3], p=p / p.sum()))
    poses = [random_pose(rng) for _ in range(n_fig)]
    palette = [s[k] for _, s in poses for k in ("shirt", "pants", "skin")]
    _clutter(cv, rng, width, height, palette, scene)

    figures = []
    for j_body, style in poses:
        for _attempt in range(20):
            height_px = rng.uniform(0.35, 1.0) * height
            scale = height_px / 3.0  # pixels per torso length (figure ~3 torso lengths tall)
            theta = rng.normal(0, 0.45) if rng.random() >= scene.free_rotation else rng.uniform(-math.pi, math.pi)
            rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
            centre = rng.uniform([0.1 * width, 0.1 * height], [0.9 * width, 0.9 * height])
            mid = np.array([0.0, -0.4])  # body-units centre of the figure

            def to_img(p, rot=rot, scale=scale, centre=centre, mid=mid):
                return (np.asarray(p) - mid) @ rot.T * scale + centre

            j = to_img(j_body)
            inside = (j[:, 0] >= 0) & (j[:, 0] <= width - 1) & (j[:, 1] >= 0) & (j[:, 1] <= height - 1)
            if inside.sum() >= 8:
                break
        figures.append((j, inside, style, to_img, scale))

    occ_masks, fig_masks = [], []
    for _ in figures:
        m = Image.new("L", big.size, 0)
        occ_masks.append(m)
        fig_masks.append(Image.new("L", big.size, 0))
    occ_draws = [ImageDraw.Draw(m) for m in occ_masks]
    for i, (j, _inside, style, to_img, scale) in enumerate(figures):
        # A figure occludes every figure drawn before it.
        masks = [ImageDraw.Draw(fig_masks[i])] + occ_draws[:i]
        _draw_figure(cv, j, style, to_img, scale, masks)
    for j, _inside, _style, _to_img, scale in figures:
        if rng.random() < scene.occluder_prob:
            for _ in range(int(rng.integers(1, 3))):
                k = int(rng.integers(NUM_JOINTS))
                size = scale * rng.uniform(0.5, 1.2)
                jitter = rng.normal(0, 0.3 * scale, size=2)
                # An occluder hides every figure under it.
                tmp = Image.new("L", big.size, 0)
                _occluder(cv, rng, j[k] + jitter, size, ImageDraw.Draw(tmp))
                for d in occ_draws:
                    d.bitmap((0, 0), tmp, fill=255)

    img = big.reduce(SUPERSAMPLE)
    anns = []
    for i, (j, inside, style, _to_img, _scale) in enumerate(figures):
        fm = np.asarray(fig_masks[i]) > 0
        if not fm.any():
            continue
        om = np.asarray(occ_masks[i]) > 0
        kps = []
        for k in range(NUM_JOINTS):
            if not inside[k]:
                kps += [0, 0, 0]
                continue
            x, y = _Canvas.p(j[k])
            xi = int(np.clip(round(x), 0, om.shape[1] - 1))
            yi = int(np.clip(round(y), 0, om.shape[0] - 1))
            hidden = om[yi, xi] or (not style["front"] and k in (0, 1, 2))
            kps += [round(float(j[k, 0]), 2), round(float(j[k, 1]), 2), 1 if hidden else 2]
        ys, xs = np.nonzero(fm)
        x0, x1 = xs.min() / SUPERSAMPLE, (xs.max() + 1) / SUPERSAMPLE
        y0, y1 = ys.min() / SUPERSAMPLE, (ys.max() + 1) / SUPERSAMPLE
        n_kp = sum(1 for v in kps[2::3] if v > 0)
        anns.append({
            "keypoints": kps,
            "num_keypoints": n_kp,
            "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
            # OKS scales with sqrt(area); COCO's person segments fill about half their box, while a
            # stick figure's own pixels fill far less, which would make OKS much stricter than on COCO.
            "area": round(0.5 * (x1 - x0) * (y1 - y0), 2),
            "iscrowd": 0,
            "category_id": 1,
        })
    return img, anns


def _render_chunk(args) -> list[tuple[int, list[dict]]]:
    seed, split, indices, width, height, folder, scene = args
    out = []
    for i in indices:
        img, anns = render_image(seed, split, i, width, height, scene)
        img.save(Path(folder) / f"{image_id(split, i):012d}.jpg", quality=92)
        out.append((i, anns))
    return out


def _render_in_pool(jobs: list, workers: int) -> list[tuple[int, list[dict]]]:
    """Render ``jobs`` in a pool of processes that die with this one (SIGTERM from the kernel when it
    ends) and are terminated at once when it is interrupted, so no generation worker outlives a run."""
    pool = multiprocessing.Pool(workers, initializer=set_parent_death_signal)
    try:
        results = [r for part in pool.map(_render_chunk, jobs) for r in part]
    except BaseException:
        pool.terminate()
        pool.join()
        raise
    pool.close()
    pool.join()
    return results


def image_id(split: int, index: int) -> int:
    return (split + 1) * 1_000_000 + index


def dataset_name(seed: int, image_hw: tuple[int, int], train: int, val: int, scene: Scene = DEFAULT_SCENE) -> str:
    return f"v{GENERATOR_VERSION}-seed{seed}-{image_hw[0]}x{image_hw[1]}-train{train}-val{val}{scene.tag()}"


def builtin_dataset(
    seed: int = 0,
    train: int = 4000,
    val: int = 500,
    image_hw: tuple[int, int] = (256, 256),
    root: str | Path | None = None,
    workers: int | None = None,
    log=None,
    scene: Scene = DEFAULT_SCENE,
) -> Path:
    """The folder of the built-in dataset for these settings, generated on first use.

    Layout (COCO 2017): ``images/{train2017,val2017}/*.jpg`` and
    ``annotations/person_keypoints_{train2017,val2017}.json``. Written into a temporary folder and
    renamed into place, so a half-written dataset is never used and concurrent callers agree.
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    base = Path(root) if root is not None else cache_root()
    final = base / dataset_name(seed, (h, w), train, val, scene)
    if (final / "DONE").is_file():
        return final
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _generate(tmp, seed, {"train2017": train, "val2017": val}, w, h, workers, log, scene)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "DONE").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _generate(folder: Path, seed: int, counts: dict, width: int, height: int, workers, log,
              scene: Scene = DEFAULT_SCENE) -> None:
    total = sum(counts.values())
    if workers is None:
        workers = 1 if total <= 400 else max(1, min(8, (os.cpu_count() or 1)))
    if log:
        log(f"generating the built-in dataset ({total} images, {height}x{width}) into {folder.parent} ...")
    (folder / "annotations").mkdir(parents=True)
    for split, name in enumerate(SPLITS):
        n = counts[name]
        img_dir = folder / "images" / name
        img_dir.mkdir(parents=True)
        chunks = [list(range(i, min(n, i + 64))) for i in range(0, n, 64)]
        jobs = [(seed, split, c, width, height, str(img_dir), scene) for c in chunks]
        if workers > 1 and len(jobs) > 1:
            results = _render_in_pool(jobs, workers)
        else:
            results = [r for job in jobs for r in _render_chunk(job)]
        images, annotations = [], []
        for i, anns in sorted(results, key=lambda t: t[0]):
            iid = image_id(split, i)
            images.append({"id": iid, "file_name": f"{iid:012d}.jpg", "width": width, "height": height})
            for k, a in enumerate(anns):
                annotations.append({"id": iid * 10 + k, "image_id": iid, **a})
        doc = {
            "info": {
                "description": "hrnet-explorer built-in keypoint dataset (synthetic figures over scikit-image photos)",
                "version": GENERATOR_VERSION,
                "seed": seed,
                "scene": asdict(scene),
            },
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": [PERSON_CATEGORY],
        }
        (folder / "annotations" / f"person_keypoints_{name}.json").write_text(json.dumps(doc))
    (folder / "DONE").write_text(json.dumps({"seed": seed, "counts": counts, "image_hw": [height, width],
                                             "scene": asdict(scene)}))
