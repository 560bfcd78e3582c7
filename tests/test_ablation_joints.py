"""Per-joint OKS AP and PCK (analysis.ablation.joints): each joint scored alone with pycocotools."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.ablation.coco_data import load_coco_api, load_keypoint_data
from analysis.ablation.evaluate import score_predictions
from analysis.ablation.joints import JOINT_AP_FIELDS, JOINT_PCK_FIELDS, joint_table, one_joint_ground_truth
from analysis.ablation.keypoints import COCO_KEYPOINTS, COCO_SIGMAS, NUM_JOINTS
from analysis.ablation.synth import builtin_dataset

WRIST = COCO_KEYPOINTS.index("left_wrist")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = builtin_dataset(seed=5, train=4, val=30, image_hw=(256, 256), root=tmp_path_factory.mktemp("cache"))
    data = load_keypoint_data(root, "builtin", (256, 192))
    return data, load_coco_api(data.val_ann_file)


def _truth(records):
    gt = np.stack([r.joints for r in records])
    return gt[..., :2].astype(np.float64), np.ones((len(records), NUM_JOINTS, 1))


def test_the_truth_scores_one_on_every_joint(data):
    d, coco = data
    preds, scores = _truth(d.val_records)
    m = score_predictions(coco, preds, scores, d.val_records, per_joint=True)
    assert set(JOINT_AP_FIELDS + JOINT_PCK_FIELDS) <= set(m)
    for f in JOINT_AP_FIELDS:
        assert m[f] == pytest.approx(1.0), f
    assert all(m[f] == 1.0 for f in JOINT_PCK_FIELDS)
    # without per_joint, none of them (the trainer asks only at the last epoch)
    assert not set(JOINT_AP_FIELDS) & set(score_predictions(coco, preds, scores, d.val_records))


def test_one_joint_moved_costs_that_joint_alone(data):
    d, coco = data
    preds, scores = _truth(d.val_records)
    preds[:, WRIST, 0] += 60.0  # far beyond any OKS threshold for a wrist
    m = score_predictions(coco, preds, scores, d.val_records, per_joint=True)
    assert m["AP_left_wrist"] < 0.05 and m["PCK@0.1_left_wrist"] == 0.0
    for j, f in enumerate(JOINT_AP_FIELDS):
        if j != WRIST:
            assert m[f] == pytest.approx(1.0), f
    assert m["AP"] > m["AP_left_wrist"]


def test_a_joint_at_oks_072_is_matched_at_half_the_thresholds(data):
    """OKS thresholds 0.50:0.05:0.95: a joint whose OKS is 0.72 for every person matches at 0.50..0.70 (5 of 10)
    with precision 1, and at none above: AP 0.5. COCOeval's OKS is exp(-d^2 / (2 area (2 sigma)^2))."""
    d, coco = data
    preds, scores = _truth(d.val_records)
    for i, rec in enumerate(d.val_records):
        area = coco.anns[rec.ann_id]["area"]
        preds[i, WRIST, 0] += math.sqrt(-math.log(0.72) * 2 * area * (2 * COCO_SIGMAS[WRIST]) ** 2)
    m = score_predictions(coco, preds, scores, d.val_records, per_joint=True)
    assert m["AP_left_wrist"] == pytest.approx(0.5, abs=1e-6)


def test_persons_without_the_joint_are_ignored(data):
    _, coco = data
    gt = one_joint_ground_truth(coco, WRIST)
    for ann_id, ann in gt.anns.items():
        v = coco.anns[ann_id]["keypoints"][3 * WRIST + 2]
        assert ann["num_keypoints"] == int(v > 0)
        kept = np.array(ann["keypoints"]).reshape(-1, 3)
        assert (kept[np.arange(NUM_JOINTS) != WRIST] == 0).all()
        assert list(kept[WRIST]) == coco.anns[ann_id]["keypoints"][3 * WRIST: 3 * WRIST + 3]
    assert coco.anns[next(iter(coco.anns))]["num_keypoints"] > 1  # the original is untouched


def test_joint_table_means_over_seeds_and_the_difference():
    rows = []
    for variant, base in (("few", 0.2), ("many", 0.5)):
        for seed, shift in ((0, 0.0), (1, 0.1)):
            rows.append({"variant": variant, "seed": seed,
                         **{f: base + shift + 0.01 * j for j, f in enumerate(JOINT_AP_FIELDS)}})
    table = joint_table(pd.DataFrame(rows), ["few", "many"])
    assert table["joint"].tolist() == list(COCO_KEYPOINTS)
    assert table.loc[0, "few"] == pytest.approx(25.0) and table.loc[16, "many"] == pytest.approx(71.0)
    assert table.loc[3, "few std"] == pytest.approx(100 * np.std([0.23, 0.33], ddof=1))
    assert table["many - few"].tolist() == pytest.approx([30.0] * NUM_JOINTS)
    # jobs that recorded no per-joint figures: an empty table, not a table of NaN
    assert joint_table(pd.DataFrame([{"variant": "few", "seed": 0, "AP": 0.3}]), ["few"]).empty
