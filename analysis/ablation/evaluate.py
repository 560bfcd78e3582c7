"""Keypoint evaluation: heatmap decoding, OKS AP/AR with pycocotools' COCOeval, PCK.

Decoding follows the official ``get_final_preds``: the arg-max of each heatmap, moved a quarter pixel
towards the higher neighbour, mapped back to the image through the inverse affine transform of the
box. Flip test (optional) averages the heatmaps of the flipped input, flipped back with left/right
swapped and shifted one pixel (official ``SHIFT_HEATMAP``). Each person's score is the mean of its
joint maxima above 0.2 (official rescoring; boxes are the ground truth's, score 1). No OKS-NMS is
applied: with ground-truth boxes there is one prediction per person.

PCK@a counts a labelled joint as correct when it lies within ``a * max(box w, box h)`` of the truth.
``LR-swap`` is the share of labelled left/right joint pairs predicted the wrong way round (both
predictions closer to the mirrored truth): the error that context -- and so fusion -- should reduce.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch

from analysis.ablation.coco_data import KeypointDataset, PersonRecord, get_affine_transform, normalize
from analysis.ablation.joints import joint_ap, joint_pck
from analysis.ablation.keypoints import COCO_SIGMAS, FLIP_PAIRS

IN_VIS_THRE = 0.2
PCK_THRESHOLDS = (0.05, 0.1)
COCO_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
METRIC_FIELDS = COCO_STATS + ("PCK@0.05", "PCK@0.1", "LR-swap")


def decode_heatmaps(hm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N, J, h, w)`` heatmaps -> coordinates ``(N, J, 2)`` in heatmap pixels and maxima ``(N, J, 1)``.

    Official ``get_max_preds`` + ``POST_PROCESS``: arg-max, then +-0.25 px towards the higher
    neighbour along x and y when the peak is not on the border.
    """
    n, j, h, w = hm.shape
    flat = hm.reshape(n, j, -1)
    idx = flat.argmax(axis=2)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=2)
    coords = np.stack([idx % w, idx // w], axis=-1).astype(np.float32)
    coords *= (maxvals > 0)
    px = np.floor(coords[..., 0] + 0.5).astype(int)
    py = np.floor(coords[..., 1] + 0.5).astype(int)
    inner = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    pxc, pyc = np.clip(px, 1, w - 2), np.clip(py, 1, h - 2)
    ni, ji = np.meshgrid(np.arange(n), np.arange(j), indexing="ij")
    dx = hm[ni, ji, pyc, pxc + 1] - hm[ni, ji, pyc, pxc - 1]
    dy = hm[ni, ji, pyc + 1, pxc] - hm[ni, ji, pyc - 1, pxc]
    coords[..., 0] += np.where(inner, np.sign(dx) * 0.25, 0)
    coords[..., 1] += np.where(inner, np.sign(dy) * 0.25, 0)
    return coords, maxvals


def to_image_coords(coords: np.ndarray, records: list[PersonRecord], heatmap_wh) -> np.ndarray:
    """Official ``transform_preds``: heatmap pixels -> original image pixels, per person's box."""
    out = np.zeros_like(coords, dtype=np.float64)
    for i, rec in enumerate(records):
        m = get_affine_transform(rec.center, rec.scale, 0, heatmap_wh, inv=True)
        out[i] = coords[i] @ m[:, :2].T + m[:, 2]
    return out


def flip_back(hm: torch.Tensor) -> torch.Tensor:
    """Heatmaps of a flipped input back to the original: mirror x and swap left/right joints."""
    hm = hm.flip(3)
    perm = list(range(hm.shape[1]))
    for a, b in FLIP_PAIRS:
        perm[a], perm[b] = b, a
    return hm[:, perm]


@torch.no_grad()
def predict_heatmaps(model, images: torch.Tensor, flip_test: bool, amp: bool, channels_last: bool) -> torch.Tensor:
    """Float32 heatmaps for a uint8 batch already on the model's device."""
    x = normalize(images)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ctx = torch.autocast(x.device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    with ctx:
        out = model(x)
        if flip_test:
            flipped = model(x.flip(3))
    out = out.float()
    if flip_test:
        fb = flip_back(flipped.float())
        fb[:, :, :, 1:] = fb.clone()[:, :, :, :-1]  # official SHIFT_HEATMAP
        out = (out + fb) * 0.5
    return out


def keypoint_results(preds: np.ndarray, maxvals: np.ndarray, records: list[PersonRecord]) -> list[dict]:
    """COCO results (one per person) with the official rescoring."""
    results = []
    for i, rec in enumerate(records):
        scores = maxvals[i, :, 0]
        valid = scores > IN_VIS_THRE
        score = float(scores[valid].mean()) if valid.any() else 0.0
        kps = np.concatenate([preds[i], scores[:, None]], axis=1)
        results.append({
            "image_id": rec.image_id,
            "category_id": 1,
            "keypoints": [round(float(v), 3) for v in kps.reshape(-1)],
            "score": score,
        })
    return results


def coco_eval(coco_gt, results: list[dict], image_ids=None) -> dict[str, float]:
    """OKS AP/AR (``iouType='keypoints'``, COCO sigmas) of ``results`` against ``coco_gt``."""
    from pycocotools.cocoeval import COCOeval

    if not results:
        return dict.fromkeys(COCO_STATS, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.params.kpt_oks_sigmas = COCO_SIGMAS
        ev.params.catIds = [1]  # persons only, whatever else the annotation file lists
        if image_ids is not None:
            ev.params.imgIds = sorted(set(int(i) for i in image_ids))
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # COCOeval reports -1 where a range holds no ground truth (say, no medium persons): None here.
    return {k: float(v) if v >= 0 else None for k, v in zip(COCO_STATS, ev.stats)}


def joint_distances(preds: np.ndarray, records: list[PersonRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ground truth (N, 17, 3), distances (N, 17) / the larger box side, labelled mask (N, 17))``."""
    gt = np.stack([r.joints for r in records]) if records else np.zeros((0, 17, 3))
    size = np.array([max(r.box[2], r.box[3], 1.0) for r in records])
    labelled = gt[..., 2] > 0
    dist = np.linalg.norm(preds[..., :2] - gt[..., :2], axis=-1) / size[:, None]
    return gt, dist, labelled


def pck(preds: np.ndarray, records: list[PersonRecord], thresholds=PCK_THRESHOLDS) -> dict[str, float]:
    """PCK@a over all labelled joints (v > 0), normalised by the larger side of each person's box,
    and the left/right swap rate."""
    gt, dist, labelled = joint_distances(preds, records)
    out = {}
    for a in thresholds:
        hit = (dist <= a) & labelled
        out[f"PCK@{a:g}"] = float(hit.sum() / max(1, labelled.sum()))
    swaps = pairs = 0
    for lft, rgt in FLIP_PAIRS:
        both = labelled[:, lft] & labelled[:, rgt]
        if not both.any():
            continue
        p_l, p_r = preds[both, lft, :2], preds[both, rgt, :2]
        g_l, g_r = gt[both, lft, :2], gt[both, rgt, :2]
        straight = np.linalg.norm(p_l - g_l, axis=1) + np.linalg.norm(p_r - g_r, axis=1)
        crossed = np.linalg.norm(p_l - g_r, axis=1) + np.linalg.norm(p_r - g_l, axis=1)
        apart = np.linalg.norm(g_l - g_r, axis=1) > 1e-6
        swaps += int(((crossed < straight) & apart).sum())
        pairs += int(apart.sum())
    out["LR-swap"] = float(swaps / max(1, pairs))
    return out


def score_predictions(coco_gt, preds: np.ndarray, maxvals: np.ndarray, records: list[PersonRecord],
                      per_joint: bool = False) -> dict[str, float]:
    """All metrics of ``METRIC_FIELDS`` for predictions in image coordinates; with ``per_joint`` also
    ``joints.JOINT_FIELDS`` (17 more COCOevals, one per joint)."""
    results = keypoint_results(preds, maxvals, records)
    image_ids = {r.image_id for r in records}
    metrics = coco_eval(coco_gt, results, image_ids=image_ids)
    metrics.update(pck(preds, records))
    if per_joint:
        _gt, dist, labelled = joint_distances(preds, records)
        metrics.update(joint_ap(coco_gt, results, labelled, image_ids))
        metrics.update(joint_pck(dist, labelled))
    return metrics


@torch.no_grad()
def evaluate(model, dataset: KeypointDataset, coco_gt, device: torch.device, batch_size: int = 64,
             flip_test: bool = False, amp: bool = False, channels_last: bool = False, workers: int = 0,
             per_joint: bool = False) -> dict:
    """Run ``model`` over ``dataset`` (no augmentation) and score it: ``METRIC_FIELDS``, and with
    ``per_joint`` the per-joint AP and PCK of ``analysis.ablation.joints``."""
    was_training = model.training
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                                         pin_memory=device.type == "cuda")
    coords, maxvals = [], []
    for images, _target, _weight, _idx in loader:
        hm = predict_heatmaps(model, images.to(device, non_blocking=True), flip_test, amp, channels_last)
        c, m = decode_heatmaps(hm.cpu().numpy())
        coords.append(c)
        maxvals.append(m)
    model.train(was_training)
    coords = np.concatenate(coords)
    maxvals = np.concatenate(maxvals)
    preds = to_image_coords(coords, dataset.records, dataset.heatmap_wh)
    return score_predictions(coco_gt, preds, maxvals, dataset.records, per_joint)
