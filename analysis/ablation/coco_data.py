"""COCO person keypoints, top-down: one sample per ground-truth person box.

Follows the official pose code (leoxiaobin/deep-high-resolution-net.pytorch, ``lib/dataset``):
box -> centre and scale (aspect ratio of the input, x1.25 padding, ``pixel_std`` 200), the official
affine transform (``get_affine_transform``), random scale (+-35 %), rotation (+-45 deg, 60 % of the
time), horizontal flip with left/right swap and half-body crops (probability 0.3 when more than 8
joints are labelled) for training, Gaussian heatmap targets (sigma 2 at 64x48) and target weights from
the visibility flags. Crowd annotations and persons without labelled keypoints are skipped.

Hostile or broken annotation files (policy). ``load_coco_api`` checks every entry before pycocotools
indexes it and refuses a structurally wrong file with ``DatasetError`` naming the file, the entry and
the field (``annotations[12].keypoints[5] is 'abc'``): JSON that is not an object of ``images``,
``annotations`` and ``categories`` lists or is nested too deeply; an entry that is not an object or lacks
an integer ``id`` / ``image_id`` / ``category_id``; an image whose ``file_name`` is not a relative path
inside the image folder (a non-empty string, no ``..``, no control characters) or whose ``width`` /
``height`` is not a positive number up to ``MAX_COORD``; a person annotation (category 1, crowd or not:
COCOeval reads them all) whose ``keypoints`` are not 51 numbers, ``bbox`` not 4 numbers, ``area`` not a
number, ``iscrowd`` not 0/1 or ``num_keypoints`` not a non-negative integer. Numbers are finite and within
``+-MAX_COORD`` (no NaN, no infinity, no booleans or strings). A missing ``num_keypoints`` is counted
from the keypoints. ``person_records`` then skips individual persons that are well-formed but unusable
(zero or negative ``area``; a box that is empty or under ``MIN_BOX_SIDE`` pixels on both sides once
clipped to the image, which would give a singular crop transform) and reports how many in one
``SkippedPersonsWarning``. Images are read through ``analysis.imaging.images.read_rgb``, which refuses
an image above its pixel bound from the header, before decoding (decompression bombs).

Images are warped with Pillow (``Image.transform``) instead of OpenCV; the matrix is shifted so that
pixel centres follow OpenCV's convention, which is the one the official coordinates use.
Augmentation randomness comes from ``(seed, epoch, index)`` so every variant of an ablation sees the
very same crops in the same order, and a resumed run the ones it would have seen.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from analysis.ablation.keypoints import FLIP_PAIRS, NUM_JOINTS, UPPER_BODY
from analysis.imaging.images import IMAGENET_MEAN, IMAGENET_STD, ImageError, read_rgb
from analysis.imaging.topdown import PIXEL_STD, affine_points, box_to_center_scale, get_affine_transform, warp
from hrnet_core.errors import UserInputError, quote

SPLITS = ("train2017", "val2017")
PERSON = 1  # COCO's person category id
MAX_COORD = 1e7  # pixels: no photograph's side or coordinate is larger (float32 stays exact enough)
MIN_BOX_SIDE = 1.0  # pixels: a clipped box under this on both sides gives a singular crop transform
MAX_FILE_NAME_CHARS = 1000


class DatasetError(UserInputError):
    """A dataset folder or file that cannot be used; the message names it."""


class SkippedPersonsWarning(UserWarning):
    """Well-formed person annotations that cannot make a crop (zero area, an empty box) were skipped."""


# ---- locating a COCO folder ----------------------------------------------------------------
def coco_paths(root: str | Path, split: str) -> tuple[Path, Path]:
    """``(image_dir, annotation_file)`` of ``split`` (``train2017`` / ``val2017``) under ``root``.

    Accepts ``root/images/<split>/`` or ``root/<split>/`` and ``root/annotations/person_keypoints_<split>.json``.
    Raises ``DatasetError`` naming the first missing folder or file.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: no such dataset folder")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (expected a COCO 2017 keypoints folder)")
    ann = root / "annotations" / f"person_keypoints_{split}.json"
    if not ann.is_file():
        raise DatasetError(f"{ann}: missing (expected COCO keypoint annotations for {split})")
    for image_dir in (root / "images" / split, root / split):
        if image_dir.is_dir():
            return image_dir, ann
    raise DatasetError(f"{root / 'images' / split}: missing image folder (also looked for {root / split})")


def load_coco_api(ann_file: str | Path):
    """A quiet ``pycocotools.coco.COCO`` for ``ann_file``, every entry checked first (``check_coco``).

    Raises ``DatasetError`` naming the file (and the entry and field) when it is unreadable, not JSON,
    nested too deeply, or structurally wrong (module docstring)."""
    from pycocotools.coco import COCO

    ann_file = Path(ann_file)
    try:
        data = json.loads(ann_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{ann_file}: cannot read ({err.__class__.__name__})") from None
    except json.JSONDecodeError as err:
        raise DatasetError(f"{ann_file}: not valid JSON (line {err.lineno}, column {err.colno})") from None
    except RecursionError:
        raise DatasetError(f"{ann_file}: not a COCO annotation file (JSON nested too deeply)") from None
    check_coco(data, ann_file)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = data
        try:
            coco.createIndex()
        except (KeyError, TypeError) as err:  # check_coco lets none through; kept as a last line
            what = f"an entry without '{err.args[0]}'" if isinstance(err, KeyError) else "an entry that is not an object"
            raise DatasetError(f"{ann_file}: not a COCO annotation file ({what})") from None
    return coco


# ---- checking an annotation file (policy: module docstring) ----------------------------------
_MISSING = object()  # a field that is absent (``None`` is a value: JSON's null)


def _shown(value: object) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return f"{type(value).__name__} {quote(value, 40)}" if isinstance(value, (dict, str)) else quote(value, 40)


def _is_number(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and abs(value) <= MAX_COORD)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Checker:
    """Raises ``DatasetError`` naming ``ann_file``, the entry (``label``, e.g. ``annotation 7``) and the path
    of the bad value (``annotations[3].bbox[2]``)."""

    def __init__(self, ann_file: Path):
        self.ann_file = ann_file

    def refuse(self, label: str, needs: str, where: str, value: object) -> DatasetError:
        shown = "missing" if value is _MISSING else f"is {_shown(value)}"
        return DatasetError(f"{self.ann_file}: {label}: needs {needs}; {where} {shown}")

    def ids(self, entry: object, where: str, keys: tuple[str, ...]) -> None:
        if not isinstance(entry, dict):
            raise DatasetError(f"{self.ann_file}: not a COCO annotation file (an entry that is not an object) "
                               f"at {where}")
        for key in keys:
            if key not in entry:
                raise DatasetError(f"{self.ann_file}: not a COCO annotation file (an entry without '{key}') at {where}")
            if not _is_int(entry[key]):
                raise self.refuse(where, f"an integer {key}", f"{where}.{key}", entry[key])

    def numbers(self, values: object, n: int, label: str, needs: str, where: str) -> None:
        if not isinstance(values, list) or len(values) != n:
            raise self.refuse(label, needs, where, values)
        for i, v in enumerate(values):
            if not _is_number(v):
                raise self.refuse(label, needs, f"{where}[{i}]", v)

    def image(self, img: object, where: str) -> None:
        self.ids(img, where, ("id",))
        label = f"image {img['id']}"
        name = img.get("file_name", _MISSING)
        if not isinstance(name, str) or not name or len(name) > MAX_FILE_NAME_CHARS or not name.isprintable() \
                or PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
            raise self.refuse(label, "a file_name inside the image folder (a relative path, no '..')",
                              f"{where}.file_name", name)
        for side in ("width", "height"):
            value = img.get(side, _MISSING)
            if not _is_number(value) or value <= 0:
                raise self.refuse(label, f"a {side} in pixels (a positive number)", f"{where}.{side}", value)

    def person(self, ann: dict, where: str) -> None:
        label = f"annotation {ann['id']}"
        self.numbers(ann.get("keypoints", _MISSING), NUM_JOINTS * 3, label,
                     f"{NUM_JOINTS * 3} keypoint values (x, y, v per joint) as numbers", f"{where}.keypoints")
        self.numbers(ann.get("bbox", _MISSING), 4, label, "a bbox [x, y, w, h] of 4 numbers", f"{where}.bbox")
        if not _is_number(ann.get("area", _MISSING)):
            raise self.refuse(label, "an area (a number)", f"{where}.area", ann.get("area", _MISSING))
        crowd = ann.get("iscrowd", 0)
        if not isinstance(crowd, int) or crowd not in (0, 1):  # bool is an int: true / false are fine
            raise self.refuse(label, "iscrowd 0 or 1", f"{where}.iscrowd", crowd)
        if "num_keypoints" not in ann:  # COCOeval reads it; counted as the official files count it
            ann["num_keypoints"] = sum(1 for v in ann["keypoints"][2::3] if v > 0)
        elif not _is_int(ann["num_keypoints"]) or ann["num_keypoints"] < 0:
            raise self.refuse(label, "num_keypoints (a non-negative integer)", f"{where}.num_keypoints",
                              ann["num_keypoints"])


def check_coco(data: object, ann_file: str | Path) -> None:
    """Refuse a structurally wrong COCO keypoint annotation document (module docstring) with a
    ``DatasetError`` naming ``ann_file``, the entry and the field. One pass over the entries; a missing
    ``num_keypoints`` of a person is filled in (in ``data``)."""
    ann_file = Path(ann_file)
    if not isinstance(data, dict):
        raise DatasetError(f"{ann_file}: not a COCO annotation file (top level is not an object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{ann_file}: not a COCO annotation file (no '{key}' list)")
    check = _Checker(ann_file)
    for i, cat in enumerate(data["categories"]):
        check.ids(cat, f"categories[{i}]", ("id",))
    for i, img in enumerate(data["images"]):
        check.image(img, f"images[{i}]")
    for i, ann in enumerate(data["annotations"]):
        check.ids(ann, f"annotations[{i}]", ("id", "image_id", "category_id"))
        if ann["category_id"] == PERSON:
            check.person(ann, f"annotations[{i}]")


# ---- records -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PersonRecord:
    """One person instance: image, cleaned box ``(x, y, w, h)``, centre/scale and joints ``(17, 3)``."""

    image: str
    image_id: int
    ann_id: int
    box: tuple[float, float, float, float]
    center: np.ndarray
    scale: np.ndarray
    joints: np.ndarray  # (J, 3): x, y, visibility 0/1/2
    area: float


def _usable_box(ann: dict, width: float, height: float) -> tuple[float, float, float, float] | None:
    """The box clipped to the image (official ``_load_coco_keypoint_annotation_kernal``), or None when the
    person cannot make a crop: zero or negative area, or a clipped box under ``MIN_BOX_SIDE`` on both sides."""
    x, y, w, h = (float(v) for v in ann["bbox"])
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if ann["area"] <= 0 or x2 < x1 or y2 < y1 or max(x2 - x1, y2 - y1) < MIN_BOX_SIDE:
        return None
    return (x1, y1, x2 - x1, y2 - y1)


def person_records(coco, image_dir: str | Path, aspect_ratio: float, check_files: bool = True) -> list[PersonRecord]:
    """The usable persons of ``coco`` (from ``load_coco_api``, which checked every field): category 1, not
    crowd, at least one labelled keypoint (both official; skipped silently), and a box that can make a crop
    (``_usable_box``; skipped and counted in one ``SkippedPersonsWarning``).

    Raises ``DatasetError`` when an annotated image is missing from ``image_dir`` (``check_files``)."""
    image_dir = Path(image_dir)
    out: list[PersonRecord] = []
    missing: list[str] = []
    skipped = 0
    for img_id in sorted(coco.imgs):
        info = coco.imgs[img_id]
        width, height = float(info["width"]), float(info["height"])
        path = image_dir / info["file_name"]
        persons = []
        for ann in coco.imgToAnns.get(img_id, []):
            if ann["category_id"] != PERSON or ann.get("iscrowd", 0) or max(ann["keypoints"]) == 0:
                continue
            box = _usable_box(ann, width, height)
            if box is None:
                skipped += 1
                continue
            center, scale = box_to_center_scale(box, aspect_ratio)
            joints = np.asarray(ann["keypoints"], dtype=np.float32).reshape(NUM_JOINTS, 3)
            persons.append(PersonRecord(str(path), int(img_id), int(ann["id"]), box, center, scale, joints,
                                        float(ann["area"])))
        if persons:
            if check_files and not path.is_file():
                missing.append(str(path))
            out.extend(persons)
    if missing:
        raise DatasetError(f"{missing[0]}: image missing ({len(missing)} of the annotated images are missing)")
    if skipped:
        warnings.warn(f"{image_dir}: skipped {skipped} person annotation(s) with zero area or a box that is empty "
                      f"once clipped to the image ({len(out)} usable)", SkippedPersonsWarning, stacklevel=2)
    return out


# ---- geometry (official lib/utils/transforms.py) -------------------------------------------
def gaussian_targets(joints: np.ndarray, vis: np.ndarray, input_wh, heatmap_wh, sigma: float):
    """Official ``generate_target`` (gaussian): ``(J, h, w)`` heatmaps and ``(J, 1)`` weights; a joint
    whose 3-sigma window falls outside the heatmap gets weight 0."""
    hw, hh = int(heatmap_wh[0]), int(heatmap_wh[1])
    target = np.zeros((len(joints), hh, hw), dtype=np.float32)
    weight = (vis > 0).astype(np.float32).reshape(-1, 1)
    tmp = sigma * 3
    stride = np.array([input_wh[0] / hw, input_wh[1] / hh])
    size = int(2 * tmp + 1)
    x = np.arange(0, size, 1, np.float32)
    y = x[:, None]
    c = size // 2
    g = np.exp(-((x - c) ** 2 + (y - c) ** 2) / (2 * sigma**2))
    for j in range(len(joints)):
        mu_x = int(joints[j, 0] / stride[0] + 0.5)
        mu_y = int(joints[j, 1] / stride[1] + 0.5)
        ul = [int(mu_x - tmp), int(mu_y - tmp)]
        br = [int(mu_x + tmp + 1), int(mu_y + tmp + 1)]
        if ul[0] >= hw or ul[1] >= hh or br[0] < 0 or br[1] < 0:
            weight[j] = 0
            continue
        if weight[j] > 0.5:
            gx = max(0, -ul[0]), min(br[0], hw) - ul[0]
            gy = max(0, -ul[1]), min(br[1], hh) - ul[1]
            ix = max(0, ul[0]), min(br[0], hw)
            iy = max(0, ul[1]), min(br[1], hh)
            target[j, iy[0]:iy[1], ix[0]:ix[1]] = g[gy[0]:gy[1], gx[0]:gx[1]]
    return target, weight


def half_body(joints: np.ndarray, vis: np.ndarray, aspect_ratio: float, rng: np.random.Generator):
    """Official ``half_body_transform``: centre/scale of the upper or lower body's labelled joints, or None."""
    upper = [joints[j] for j in range(len(joints)) if vis[j] > 0 and j in UPPER_BODY]
    lower = [joints[j] for j in range(len(joints)) if vis[j] > 0 and j not in UPPER_BODY]
    # The official code draws ``np.random.randn() < 0.5`` here (upper body ~69 % of the time); kept.
    if rng.standard_normal() < 0.5 and len(upper) > 2:
        sel = upper
    else:
        sel = lower if len(lower) > 2 else upper
    if len(sel) < 2:
        return None
    sel = np.array(sel, dtype=np.float32)
    center = sel.mean(axis=0)[:2]
    lt, rb = sel.min(axis=0), sel.max(axis=0)
    w, h = rb[0] - lt[0], rb[1] - lt[1]
    if max(w, h) < MIN_BOX_SIDE:  # the joints (nearly) coincide: no crop to make, keep the person's box
        return None
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w / PIXEL_STD, h / PIXEL_STD], dtype=np.float32) * 1.5


@dataclass(frozen=True)
class Augment:
    """Training augmentation (official COCO defaults)."""

    flip: bool = True
    scale: float = 0.35
    rotation: float = 45.0
    rotation_prob: float = 0.6
    half_body_prob: float = 0.3
    half_body_joints: int = 8


NO_AUGMENT = Augment(flip=False, scale=0.0, rotation=0.0, rotation_prob=0.0, half_body_prob=0.0)


class KeypointDataset(torch.utils.data.Dataset):
    """Top-down samples ``(image uint8 (3, H, W), target (J, h, w), weight (J, 1), index)``.

    Keys are an index or ``(index, epoch)`` (from ``EpochSampler``): augmentation draws from
    ``numpy.random.default_rng([seed, epoch, index])``. Images stay uint8; normalisation (ImageNet
    mean and std, as in the official code) is done on the device by ``normalize``.
    """

    def __init__(self, records: list[PersonRecord], input_hw, sigma: float = 2.0, train: bool = False,
                 augment: Augment | None = None, seed: int = 0):
        self.records = records
        self.input_wh = (int(input_hw[1]), int(input_hw[0]))
        self.heatmap_wh = (self.input_wh[0] // 4, self.input_wh[1] // 4)
        self.aspect_ratio = self.input_wh[0] / self.input_wh[1]
        self.sigma = sigma
        self.train = train
        self.augment = (augment or Augment()) if train else NO_AUGMENT
        self.seed = seed

    def __len__(self) -> int:
        return len(self.records)

    def sample_transform(self, rec: PersonRecord, rng: np.random.Generator | None, image_width: int):
        """``(matrix, joints, vis)``: the image-to-input affine transform and the joints it maps to."""
        joints = rec.joints[:, :2].astype(np.float64).copy()
        vis = np.minimum(rec.joints[:, 2], 1).astype(np.float32)
        c, s, r = rec.center.astype(np.float64).copy(), rec.scale.astype(np.float64).copy(), 0.0
        flip = None
        if self.train and rng is not None:
            a = self.augment
            if vis.sum() > a.half_body_joints and rng.random() < a.half_body_prob:
                hb = half_body(rec.joints[:, :2], vis, self.aspect_ratio, rng)
                if hb is not None:
                    c, s = hb[0].astype(np.float64), hb[1].astype(np.float64)
            s = s * np.clip(rng.standard_normal() * a.scale + 1, 1 - a.scale, 1 + a.scale)
            r = float(np.clip(rng.standard_normal() * a.rotation, -2 * a.rotation, 2 * a.rotation)) \
                if rng.random() <= a.rotation_prob else 0.0
            if a.flip and rng.random() <= 0.5:
                flip = np.array([[-1.0, 0.0, image_width - 1.0], [0.0, 1.0, 0.0]])
                joints[:, 0] = image_width - 1 - joints[:, 0]
                for lft, rgt in FLIP_PAIRS:
                    joints[[lft, rgt]] = joints[[rgt, lft]]
                    vis[[lft, rgt]] = vis[[rgt, lft]]
                c[0] = image_width - c[0] - 1
        t = get_affine_transform(c, s, r, self.input_wh)
        # The official code flips the image, then warps it; the two maps are composed instead.
        m = t if flip is None else t @ np.vstack([flip, [0.0, 0.0, 1.0]])
        joints_in = affine_points(joints, t)
        joints_in[vis <= 0] = 0.0
        return m, joints_in, vis

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        rec = self.records[index]
        try:
            img = read_rgb(rec.image)  # bounded before decoding (decompression bombs)
        except ImageError as err:
            raise DatasetError(str(err)) from None
        rng = np.random.default_rng([self.seed, epoch, index]) if self.train else None
        m, joints, vis = self.sample_transform(rec, rng, img.width)
        crop = warp(img, m, self.input_wh)
        target, weight = gaussian_targets(joints, vis, self.input_wh, self.heatmap_wh, self.sigma)
        image = torch.from_numpy(np.asarray(crop, dtype=np.uint8).transpose(2, 0, 1).copy())
        return image, torch.from_numpy(target), torch.from_numpy(weight), index


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, 3, H, W)`` -> float, ImageNet mean/std (official ``transforms.Normalize``)."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1) * 255
    return (images.float() - mean) / std


class EpochSampler(torch.utils.data.Sampler):
    """Keys ``(index, epoch)`` in an order fixed by ``(seed, epoch)``; with ``world`` > 1 rank ``rank``
    takes every ``world``-th key. ``pad`` (as ``DistributedSampler``) repeats keys so that every rank
    gets as many; without it the shards are disjoint and cover the epoch exactly once, and the ranks'
    last steps are evened out by DDP's ``join``."""

    def __init__(self, n: int, seed: int, epoch: int, shuffle: bool = True, rank: int = 0, world: int = 1,
                 pad: bool = True):
        self.n, self.seed, self.epoch, self.shuffle, self.rank, self.world = n, seed, epoch, shuffle, rank, world
        self.pad = pad

    def _order(self) -> np.ndarray:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch, 7]).permutation(self.n)
        else:
            order = np.arange(self.n)
        if self.world > 1:
            pad = (-len(order)) % self.world if self.pad else 0
            order = np.concatenate([order, order[:pad]])[self.rank::self.world]
        return order

    def __iter__(self):
        return iter([(int(i), self.epoch) for i in self._order()])

    def __len__(self) -> int:
        if self.pad or self.world <= 1:
            return -(-self.n // self.world)
        return len(range(self.rank, self.n, self.world))


@dataclass
class KeypointData:
    """The two splits of a dataset: records plus their annotation file for COCOeval."""

    root: Path
    kind: str  # builtin | coco
    train_records: list[PersonRecord]
    val_records: list[PersonRecord]
    val_ann_file: Path
    train_images: int
    val_images: int

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "path": str(self.root),
            "train_images": self.train_images,
            "train_persons": len(self.train_records),
            "val_images": self.val_images,
            "val_persons": len(self.val_records),
        }


def _first_images(records: list[PersonRecord], limit: int | None) -> list[PersonRecord]:
    if not limit:
        return records
    keep = set(sorted({r.image_id for r in records})[:limit])
    return [r for r in records if r.image_id in keep]


def load_keypoint_data(root: str | Path, kind: str, input_hw, val_limit: int | None = None,
                       train_limit: int | None = None) -> KeypointData:
    """Both splits of a COCO-layout folder, validated (``DatasetError`` on anything missing);
    ``*_limit`` keeps the persons of the first N images (by id) of a split."""
    aspect = input_hw[1] / input_hw[0]
    splits = {}
    for split, limit in zip(SPLITS, (train_limit, val_limit)):
        image_dir, ann = coco_paths(root, split)
        coco = load_coco_api(ann)
        recs = _first_images(person_records(coco, image_dir, aspect), limit)
        if not recs:
            raise DatasetError(f"{ann}: no usable person annotations (non-crowd, with keypoints)")
        splits[split] = (recs, ann)
    (train, _), (val, val_ann) = splits["train2017"], splits["val2017"]
    return KeypointData(Path(root), kind, train, val, val_ann, len({r.image_id for r in train}),
                        len({r.image_id for r in val}))
