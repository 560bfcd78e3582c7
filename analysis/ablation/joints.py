"""Per-joint OKS AP and PCK: which joints a change (fusion, say) helps.

Per-joint AP is COCOeval's keypoint AP with one joint kept: the ground truth keeps only joint ``j``'s
``(x, y, v)`` and counts ``num_keypoints`` 1 when it is labelled (0 makes COCOeval ignore the person, as
it ignores persons without keypoints), so each person's OKS is that one joint's
``exp(-d^2 / (2 s^2 k_j^2))``; detections are ranked by that joint's heatmap maximum. Each prediction comes
from one ground-truth box, so the prediction of a person whose joint is unlabelled is left out too: there is
nothing to judge it by (as PCK counts labelled joints only). pycocotools does the
matching and the precision integral, as for the whole-person AP. PCK@0.1 per joint: the share of labelled joints within 0.1 x the larger box side.

Stored in the final epoch's ``metrics.jsonl`` row as ``AP_<joint>`` and ``PCK@0.1_<joint>`` (fractions,
``COCO_KEYPOINTS`` names), and tabulated per variant (mean over seeds) by ``joint_table``.
"""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pandas as pd

from analysis.ablation.keypoints import COCO_KEYPOINTS, COCO_SIGMAS

JOINT_PCK_AT = 0.1
JOINT_AP_FIELDS = tuple(f"AP_{j}" for j in COCO_KEYPOINTS)
JOINT_PCK_FIELDS = tuple(f"PCK@{JOINT_PCK_AT:g}_{j}" for j in COCO_KEYPOINTS)
JOINT_FIELDS = JOINT_AP_FIELDS + JOINT_PCK_FIELDS


def one_joint_ground_truth(coco_gt, joint: int):
    """A ``pycocotools.coco.COCO`` like ``coco_gt`` whose persons keep only ``joint`` (0-based)."""
    from pycocotools.coco import COCO

    doc = {k: v for k, v in coco_gt.dataset.items() if k != "annotations"}
    anns = []
    for ann in coco_gt.dataset.get("annotations", []):
        a = copy.copy(ann)
        kps = list(ann.get("keypoints") or [0.0] * 3 * len(COCO_KEYPOINTS))
        x, y, v = kps[3 * joint: 3 * joint + 3]
        a["keypoints"] = [0.0] * len(kps)
        a["keypoints"][3 * joint: 3 * joint + 3] = [x, y, v]
        a["num_keypoints"] = int(v > 0)
        anns.append(a)
    doc["annotations"] = anns
    gt = COCO()
    gt.dataset = doc
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def _one_joint_results(results: list[dict], joint: int, labelled: np.ndarray) -> list[dict]:
    out = []
    for r, keep in zip(results, labelled[:, joint]):
        if not keep:
            continue
        kps = np.asarray(r["keypoints"], dtype=float).reshape(-1, 3)
        kept = np.zeros_like(kps)
        kept[joint] = kps[joint]
        out.append({**r, "keypoints": kept.reshape(-1).tolist(), "score": float(kps[joint, 2])})
    return out


def joint_ap(coco_gt, results: list[dict], labelled: np.ndarray, image_ids=None) -> dict[str, float | None]:
    """``AP_<joint>`` for each COCO joint (``None`` where no person of ``image_ids`` has it labelled).

    ``results``: COCO keypoint results (``evaluate.keypoint_results``), one per ground-truth person, ``(17 x 3)``
    keypoints in image pixels with the joint's heatmap maximum as its third value; ``labelled``: ``(persons, 17)``
    booleans, the ground truth's ``v > 0`` of the same persons in the same order."""
    from pycocotools.cocoeval import COCOeval

    out = {}
    for j, field in enumerate(JOINT_AP_FIELDS):
        kept = _one_joint_results(results, j, labelled)
        if not kept:
            out[field] = None
            continue
        gt = one_joint_ground_truth(coco_gt, j)
        with contextlib.redirect_stdout(io.StringIO()):
            ev = COCOeval(gt, gt.loadRes(kept), "keypoints")
            ev.params.kpt_oks_sigmas = COCO_SIGMAS
            ev.params.catIds = [1]
            if image_ids is not None:
                ev.params.imgIds = sorted(set(int(i) for i in image_ids))
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        ap = float(ev.stats[0])
        out[field] = ap if ap >= 0 else None  # -1: no labelled ground truth for this joint
    return out


def joint_pck(dist: np.ndarray, labelled: np.ndarray) -> dict[str, float | None]:
    """``PCK@0.1_<joint>`` from normalised distances and the labelled mask, both ``(persons, 17)``."""
    out = {}
    for j, field in enumerate(JOINT_PCK_FIELDS):
        n = int(labelled[:, j].sum())
        out[field] = float(((dist[:, j] <= JOINT_PCK_AT) & labelled[:, j]).sum() / n) if n else None
    return out


def joint_table(finals: pd.DataFrame, variants: list[str], metric: str = "AP") -> pd.DataFrame:
    """One row per joint: ``joint`` and, per variant, its mean and std over seeds in % (``<variant>``,
    ``<variant> std``), then ``<last> - <first>`` (percentage points) when there are two variants or more.

    ``finals``: the last evaluated row per ``(variant, seed)`` (``effects.final_per_seed``); ``metric``:
    ``AP`` or ``PCK@0.1``. Empty when no final row holds per-joint figures (jobs older than them)."""
    fields = JOINT_AP_FIELDS if metric == "AP" else JOINT_PCK_FIELDS
    if finals.empty or not set(fields) & set(finals.columns):
        return pd.DataFrame(columns=["joint"])
    rows = []
    have = [v for v in variants if finals.loc[finals["variant"] == v, list(fields)].notna().any().any()]
    for joint, field in zip(COCO_KEYPOINTS, fields):
        row = {"joint": joint}
        for v in have:
            vals = finals.loc[finals["variant"] == v, field].dropna().astype(float)
            row[v] = 100 * float(vals.mean()) if len(vals) else float("nan")
            row[f"{v} std"] = 100 * float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")
        if len(have) > 1:
            row[f"{have[-1]} - {have[0]}"] = row[have[-1]] - row[have[0]]
        rows.append(row)
    return pd.DataFrame(rows) if have else pd.DataFrame(columns=["joint"])


def joint_figure(table: pd.DataFrame, labels: dict[str, str], colours: dict[str, str], metric: str = "AP"):
    """Grouped bars of ``joint_table``: one bar per variant per joint, whiskers the std over seeds."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for v, label in labels.items():
        if v not in table:
            continue
        std = table[f"{v} std"].fillna(0.0)
        fig.add_trace(go.Bar(x=table["joint"], y=table[v], name=label, marker_color=colours.get(v),
                             error_y={"type": "data", "array": std, "visible": True}))
    fig.update_layout(title=f"{'OKS AP' if metric == 'AP' else metric} per joint (mean over seeds, whiskers: std)",
                      yaxis_title=f"{metric} (%)", barmode="group", height=420, xaxis_tickangle=-40)
    return fig
