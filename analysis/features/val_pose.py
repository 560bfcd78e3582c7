"""A run's validation persons seen by a pose network: ground truth against the prediction.

``val_persons`` lists the usable persons of a COCO-layout folder's ``val2017`` split (the dataset a run
trained on is ``data.path`` of its ``ablation.json``), with centre and scale for the model's input
aspect ratio (``analysis.ablation.coco_data.person_records``). ``predict_person`` decodes the head's
heatmaps of that person's crop exactly as the evaluator does (``decode_heatmaps`` + ``to_image_coords``:
official ``get_final_preds``, no flip test), so what is drawn is what the run's AP and PCK measured.
``draw_comparison`` renders the person crop twice, ground-truth skeleton left, predicted right, with the
person box used (Pillow).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from analysis.ablation.coco_data import DatasetError, PersonRecord, coco_paths, load_coco_api, person_records
from analysis.ablation.evaluate import IN_VIS_THRE, decode_heatmaps, pck, to_image_coords
from analysis.ablation.keypoints import COCO_KEYPOINTS, COCO_SKELETON, FLIP_PAIRS
from analysis.ablation.run_folder import read_request
from analysis.imaging.topdown import affine_points, get_affine_transform, warp

SPLIT = "val2017"
LEFT, RIGHT, MIDDLE = (40, 170, 255), (255, 110, 40), (255, 220, 60)
BOX_COLOUR = (60, 220, 90)
JOINT_COLUMNS = ("joint", "confidence", "labelled", "gt_x", "gt_y", "pred_x", "pred_y", "error_px", "error_rel",
                 "within_0.1")


def run_data_root(run_dir: str | Path) -> Path:
    """The dataset folder a run trained on (``data.path`` of ``run_dir/ablation.json``).
    Raises ``DatasetError`` naming the file or the folder that is missing, ``RunFolderError`` (a
    ``UserInputError``) naming the field of a request that cannot be read."""
    request = Path(run_dir) / "ablation.json"
    stored = read_request(run_dir)  # bounded and checked: RunFolderError names the field
    if stored is None:
        raise DatasetError(f"{request}: missing (not an ablation run folder)")
    path = (stored.get("data") or {}).get("path")
    if not path:
        raise DatasetError(f"{request}: no data.path (the run has not prepared its dataset yet)")
    if not Path(path).is_dir():
        raise DatasetError(f"{path}: the dataset folder of run {Path(run_dir).name} is gone")
    return Path(path)


def val_persons(root: str | Path, input_hw: tuple[int, int]) -> list[PersonRecord]:
    """The usable validation persons of the COCO-layout folder ``root`` (``images/val2017`` +
    ``annotations/person_keypoints_val2017.json``), in image-id order, with centre/scale for an input of
    ``input_hw`` (H, W). Raises ``DatasetError`` (missing folder, bad annotations, no persons)."""
    image_dir, ann = coco_paths(root, SPLIT)
    records = person_records(load_coco_api(ann), image_dir, input_hw[1] / input_hw[0])
    if not records:
        raise DatasetError(f"{ann}: no usable person annotations (non-crowd, with keypoints)")
    return records


def pick(records: list[PersonRecord], index: int) -> PersonRecord:
    """``records[index]`` with a one-line ``DatasetError`` for an index out of range."""
    if not 0 <= index < len(records):
        raise DatasetError(f"validation person {index}: out of range (0..{len(records) - 1})")
    return records[index]


@dataclass(frozen=True)
class PosePrediction:
    """One person's prediction in original-image pixels, beside its ground truth.

    ``points`` ``(J, 2)`` (x, y) and ``scores`` ``(J,)`` (heatmap maxima, the per-joint confidence);
    ``record.joints`` ``(J, 3)`` the truth (x, y, visibility 0/1/2); ``metrics``: PCK@0.05, PCK@0.1
    and LR-swap of this person (``analysis.ablation.evaluate.pck``: normalised by the box's larger side).
    """

    record: PersonRecord
    points: np.ndarray
    scores: np.ndarray
    metrics: dict[str, float]

    @property
    def box(self) -> tuple[float, float, float, float]:
        return self.record.box

    def joints(self) -> pd.DataFrame:
        """One row per joint: name, confidence, labelled (visibility > 0), truth and prediction (px),
        error in px and relative to the box's larger side, and whether it is within PCK@0.1."""
        gt = self.record.joints
        size = max(self.record.box[2], self.record.box[3], 1.0)
        labelled = gt[:, 2] > 0
        err = np.linalg.norm(self.points - gt[:, :2], axis=1)
        return pd.DataFrame({
            "joint": list(COCO_KEYPOINTS[:len(gt)]),
            "confidence": self.scores.astype(float),
            "labelled": labelled,
            "gt_x": np.where(labelled, gt[:, 0], np.nan), "gt_y": np.where(labelled, gt[:, 1], np.nan),
            "pred_x": self.points[:, 0], "pred_y": self.points[:, 1],
            "error_px": np.where(labelled, err, np.nan),
            "error_rel": np.where(labelled, err / size, np.nan),
            "within_0.1": labelled & (err / size <= 0.1),
        }, columns=list(JOINT_COLUMNS))

    @property
    def mean_confidence(self) -> float:
        return float(self.scores.mean())


def predict_person(heatmaps: np.ndarray, record: PersonRecord) -> PosePrediction:
    """Decode one person's heatmaps ``(J, h, w)`` (the head's output on the crop of ``record``'s box)
    into image pixels, as the evaluator does. Raises ``ValueError`` unless there are 17 COCO joints."""
    maps = np.asarray(heatmaps, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[0] != len(COCO_KEYPOINTS):
        raise ValueError(f"expected (17, h, w) COCO heatmaps, got shape {maps.shape}")
    coords, maxvals = decode_heatmaps(maps[None])
    points = to_image_coords(coords, [record], (maps.shape[2], maps.shape[1]))[0]
    return PosePrediction(record, points, maxvals[0, :, 0], pck(points[None], [record]))


def _side_colour(a: int, b: int | None = None) -> tuple[int, int, int]:
    left = {lft for lft, _ in FLIP_PAIRS}
    right = {rgt for _, rgt in FLIP_PAIRS}
    joints = {a} if b is None else {a, b}
    if joints <= left:
        return LEFT
    if joints <= right:
        return RIGHT
    return MIDDLE


def _draw_skeleton(draw: ImageDraw.ImageDraw, pts: np.ndarray, shown: np.ndarray, faint: np.ndarray, r: float):
    for a, b in ((a - 1, b - 1) for a, b in COCO_SKELETON):
        if shown[a] and shown[b]:
            draw.line([tuple(pts[a]), tuple(pts[b])], fill=_side_colour(a, b), width=max(2, round(r * 0.6)))
    for j in np.flatnonzero(shown):
        x, y = pts[j]
        colour = _side_colour(int(j))
        if faint[j]:
            draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=2)
        else:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=(0, 0, 0))


def draw_comparison(image: np.ndarray, prediction: PosePrediction, input_hw: tuple[int, int],
                    height: int = 320) -> Image.Image:
    """Two panels of the person crop the network saw (its box widened to the input's aspect ratio and
    enlarged 1.25x, re-sampled from ``image`` ``(H, W, 3)`` at ``height`` px): ground truth (labelled
    joints) left, prediction right (joints below the evaluator's 0.2 confidence hollow). Left joints
    blue, right orange, the person box green. Returns an RGB ``PIL.Image`` ``(2 W' + gap, height + 22)``."""
    rec = prediction.record
    width = max(1, round(height * input_hw[1] / input_hw[0]))
    m = get_affine_transform(rec.center, rec.scale, 0, (width, height))
    crop = warp(Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB"), m, (width, height))
    x, y, w, h = rec.box
    corners = affine_points(np.array([[x, y], [x + w, y + h]]), m)
    gt = affine_points(rec.joints[:, :2], m)
    pred = affine_points(prediction.points, m)
    labelled = rec.joints[:, 2] > 0
    r = max(3.0, height / 80)
    gap, title = 8, 22
    out = Image.new("RGB", (2 * width + gap, height + title), (255, 255, 255))
    panels = (("ground truth", gt, labelled, np.zeros_like(labelled)),
              ("prediction", pred, np.ones_like(labelled), prediction.scores < IN_VIS_THRE))
    for i, (name, pts, shown, faint) in enumerate(panels):
        panel = crop.copy()
        draw = ImageDraw.Draw(panel)
        draw.rectangle([tuple(corners[0]), tuple(corners[1])], outline=BOX_COLOUR, width=2)
        _draw_skeleton(draw, pts, shown, faint, r)
        out.paste(panel, (i * (width + gap), title))
        ImageDraw.Draw(out).text((i * (width + gap) + 4, 3), name, fill=(0, 0, 0), font=ImageFont.load_default(15))
    return out


__all__ = ["JOINT_COLUMNS", "PosePrediction", "draw_comparison", "pick", "predict_person", "run_data_root",
           "val_persons"]
