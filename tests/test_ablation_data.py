"""The ablation's data path: built-in generator, COCO loader, transforms, decoding and COCOeval."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ablation_helpers import hand_made_coco as _hand_made_coco
from PIL import Image

from analysis.ablation.coco_data import (
    Augment,
    DatasetError,
    EpochSampler,
    KeypointDataset,
    affine_points,
    coco_paths,
    get_affine_transform,
    load_coco_api,
    load_keypoint_data,
    person_records,
    warp,
)
from analysis.ablation.evaluate import (
    decode_heatmaps,
    flip_back,
    pck,
    score_predictions,
    to_image_coords,
)
from analysis.ablation.keypoints import FLIP_PAIRS, NUM_JOINTS
from analysis.ablation.synth import builtin_dataset, render_image


@pytest.fixture(scope="module")
def builtin_root(tmp_path_factory):
    return builtin_dataset(seed=3, train=24, val=40, image_hw=(256, 256), root=tmp_path_factory.mktemp("cache"))


def _gt_predictions(records):
    gt = np.stack([r.joints for r in records])
    return gt[..., :2].astype(np.float64), np.ones((len(records), NUM_JOINTS, 1))


# ---- built-in generator --------------------------------------------------------------------
def test_builtin_layout_and_annotations(builtin_root):
    for split, n in (("train2017", 24), ("val2017", 40)):
        image_dir, ann = coco_paths(builtin_root, split)
        doc = json.loads(ann.read_text())
        assert len(doc["images"]) == n
        assert len(list(image_dir.glob("*.jpg"))) == n
        assert doc["categories"][0]["keypoints"][9] == "left_wrist" and len(doc["categories"][0]["skeleton"]) == 19
        for a in doc["annotations"]:
            v = a["keypoints"][2::3]
            assert len(v) == NUM_JOINTS and a["num_keypoints"] == sum(1 for x in v if x > 0)
            for k in range(NUM_JOINTS):  # out-of-frame joints carry no coordinates
                if v[k] == 0:
                    assert a["keypoints"][3 * k:3 * k + 2] == [0, 0]
            x, y, w, h = a["bbox"]
            assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 256.01 and y + h <= 256.01
    flags = {v for a in doc["annotations"] for v in a["keypoints"][2::3]}
    assert flags == {0, 1, 2}  # occluded and out-of-frame joints occur


def test_builtin_is_deterministic_and_cached(builtin_root, tmp_path):
    a_img, a_ann = render_image(3, 1, 5, 128, 128)
    b_img, b_ann = render_image(3, 1, 5, 128, 128)
    assert a_ann == b_ann and np.array_equal(np.asarray(a_img), np.asarray(b_img))
    c_img, _ = render_image(4, 1, 5, 128, 128)
    assert not np.array_equal(np.asarray(a_img), np.asarray(c_img))
    mtime = (builtin_root / "annotations" / "person_keypoints_val2017.json").stat().st_mtime
    again = builtin_dataset(seed=3, train=24, val=40, image_hw=(256, 256), root=builtin_root.parent)
    assert again == builtin_root
    assert (builtin_root / "annotations" / "person_keypoints_val2017.json").stat().st_mtime == mtime


def test_left_and_right_limbs_look_alike():
    """At a visible left and right wrist (or elbow, knee, ankle) of a figure the image has the same
    colour: the side is not given away locally."""
    same = total = 0
    for i in range(30):
        img, anns = render_image(0, 0, i, 256, 256)
        px = np.asarray(img).astype(int)
        for a in anns:
            k = np.array(a["keypoints"]).reshape(-1, 3)
            for left, right in ((7, 8), (9, 10), (13, 14), (15, 16)):
                if k[left, 2] == 2 and k[right, 2] == 2:
                    cl = px[int(round(k[left, 1])), int(round(k[left, 0]))]
                    cr = px[int(round(k[right, 1])), int(round(k[right, 0]))]
                    total += 1
                    same += int(np.abs(cl - cr).max() <= 12)
    assert total > 50 and same / total > 0.75


# ---- COCO loader and COCOeval --------------------------------------------------------------
def test_ground_truth_scores_ap_one_on_builtin(builtin_root):
    data = load_keypoint_data(builtin_root, "builtin", (256, 192))
    coco = load_coco_api(data.val_ann_file)
    preds, scores = _gt_predictions(data.val_records)
    m = score_predictions(coco, preds, scores, data.val_records)
    assert m["AP"] == pytest.approx(1.0) and m["AR"] == pytest.approx(1.0)
    assert m["PCK@0.05"] == 1.0 and m["PCK@0.1"] == 1.0 and m["LR-swap"] == 0.0
    # Swapping every left/right pair is caught by LR-swap and costs AP.
    swapped = preds.copy()
    for a, b in FLIP_PAIRS:
        swapped[:, [a, b]] = swapped[:, [b, a]]
    m2 = score_predictions(coco, swapped, scores, data.val_records)
    assert m2["LR-swap"] > 0.9 and m2["AP"] < 0.5


def test_target_heatmaps_decode_back_to_the_joints(builtin_root):
    """Targets -> official decoding (quarter offset) -> inverse affine: the whole evaluation chain."""
    data = load_keypoint_data(builtin_root, "builtin", (256, 192))
    ds = KeypointDataset(data.val_records, (256, 192), sigma=2)
    hms = np.stack([ds[i][1].numpy() for i in range(len(ds))])
    coords, maxvals = decode_heatmaps(hms)
    preds = to_image_coords(coords, ds.records, ds.heatmap_wh)
    m = score_predictions(load_coco_api(data.val_ann_file), preds, maxvals, ds.records)
    assert m["AP"] > 0.95 and m["PCK@0.05"] > 0.98


@pytest.mark.parametrize("layout", ["images", "root"])
def test_hand_made_coco_skips_crowd_and_empty(tmp_path, layout):
    root = _hand_made_coco(tmp_path / "coco", layout)
    data = load_keypoint_data(root, "coco", (256, 192))
    assert [r.ann_id for r in data.val_records] == [1, 5]  # not crowd (2), not zero keypoints (3), not a dog (4)
    coco = load_coco_api(data.val_ann_file)
    preds, scores = _gt_predictions(data.val_records)
    m = score_predictions(coco, preds, scores, data.val_records)
    assert m["AP"] == pytest.approx(1.0)
    ds = KeypointDataset(data.train_records, (256, 192), sigma=2, train=True, seed=0)
    img, target, weight, idx = ds[(0, 1)]
    assert img.dtype == torch.uint8 and img.shape == (3, 256, 192)
    assert target.shape == (NUM_JOINTS, 64, 48) and weight.shape == (NUM_JOINTS, 1)
    # The unlabelled joint (left/right ankle pair, flipped or not) carries no weight and no target.
    zero = torch.nonzero(weight[:, 0] == 0).flatten().tolist()
    assert set(zero) & {15, 16}
    assert all(float(target[j].max()) == 0 for j in zero)


def test_predictions_off_by_a_box_score_lower(tmp_path):
    root = _hand_made_coco(tmp_path / "coco")
    data = load_keypoint_data(root, "coco", (256, 192))
    preds, scores = _gt_predictions(data.val_records)
    moved = preds + 0.2 * max(data.val_records[0].box[2:])
    m = score_predictions(load_coco_api(data.val_ann_file), moved, scores, data.val_records)
    assert m["AP"] < 0.5 and m["PCK@0.1"] == 0.0


def test_dataset_errors_name_the_missing_piece(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset folder"):
        coco_paths(tmp_path / "nope", "train2017")
    root = _hand_made_coco(tmp_path / "coco")
    (root / "annotations" / "person_keypoints_val2017.json").unlink()
    with pytest.raises(DatasetError, match="person_keypoints_val2017.json: missing"):
        load_keypoint_data(root, "coco", (256, 192))
    root2 = _hand_made_coco(tmp_path / "coco2")
    (root2 / "annotations" / "person_keypoints_train2017.json").write_text("{oops")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_keypoint_data(root2, "coco", (256, 192))
    root3 = _hand_made_coco(tmp_path / "coco3")
    (root3 / "images" / "val2017" / "000000000002.jpg").unlink()
    with pytest.raises(DatasetError, match="000000000002.jpg: image missing") as err:
        load_keypoint_data(root3, "coco", (256, 192))
    assert "\n" not in str(err.value)
    root4 = _hand_made_coco(tmp_path / "coco4")
    import shutil

    shutil.rmtree(root4 / "images" / "train2017")
    with pytest.raises(DatasetError, match="train2017: missing image folder"):
        load_keypoint_data(root4, "coco", (256, 192))


# ---- geometry ------------------------------------------------------------------------------
def test_warp_matches_the_point_transform():
    yy, xx = np.mgrid[0:100, 0:120]
    blob = 255 * np.exp(-((xx - 53) ** 2 + (yy - 37) ** 2) / (2 * 4.0**2))  # centred on pixel (53, 37)
    img = np.repeat(blob[..., None], 3, axis=2).astype(np.uint8)
    for rot in (0, 30, -70):
        m = get_affine_transform(np.array([60.0, 50.0]), np.array([0.4, 0.55]), rot, (48, 64))
        out = np.asarray(warp(Image.fromarray(img), m, (48, 64)))[..., 0].astype(float)
        ys, xs = np.nonzero(out)
        w = out[ys, xs]
        got = np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])
        assert np.allclose(got, affine_points(np.array([53.0, 37.0]), m), atol=0.2)
    m = get_affine_transform(np.array([60.0, 50.0]), np.array([0.4, 0.55]), 30, (48, 64))
    inv = get_affine_transform(np.array([60.0, 50.0]), np.array([0.4, 0.55]), 30, (48, 64), inv=True)
    p = affine_points(affine_points(np.array([[10.0, 20.0]]), m), inv)
    assert np.allclose(p, [[10.0, 20.0]], atol=1e-4)


class _FixedRng:
    """random() always ``u``, standard_normal() always 0: forces a flip, no scale or rotation."""

    def __init__(self, u):
        self.u = u

    def random(self):
        return self.u

    def standard_normal(self):
        return 0.0


def test_flip_swaps_left_and_right_consistently(tmp_path):
    root = _hand_made_coco(tmp_path / "coco")
    data = load_keypoint_data(root, "coco", (256, 192))
    rec = data.val_records[0]
    img = Image.open(rec.image).convert("RGB")
    arr = np.asarray(img).copy()
    arr[...] = 0
    lw, rw = rec.joints[9, :2].round().astype(int), rec.joints[10, :2].round().astype(int)
    arr[lw[1] - 1:lw[1] + 2, lw[0] - 1:lw[0] + 2] = (255, 0, 0)  # left wrist red
    arr[rw[1] - 1:rw[1] + 2, rw[0] - 1:rw[0] + 2] = (0, 0, 255)  # right wrist blue
    aug = Augment(flip=True, scale=0.0, rotation=0.0, rotation_prob=0.0, half_body_prob=0.0)
    ds = KeypointDataset([rec], (256, 192), train=True, augment=aug)
    for u, flipped in ((0.0, True), (0.9, False)):
        m, joints, vis = ds.sample_transform(rec, _FixedRng(u), img.width)
        out = np.asarray(warp(Image.fromarray(arr), m, ds.input_wh)).astype(int)
        x, y = joints[9].round().astype(int)  # where the (person's) left wrist lands
        colour = out[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).max(axis=0)
        # After a flip the image's left wrist is the red dot's mirror: the person's left is now drawn
        # where the right wrist was, so label 9 must sit on the blue dot.
        assert (colour[2] > 100 and colour[0] < 50) if flipped else (colour[0] > 100 and colour[2] < 50)


def test_decode_quarter_offset_and_flip_back():
    hm = np.zeros((1, NUM_JOINTS, 16, 12), np.float32)
    hm[0, 0, 7, 5] = 1.0
    hm[0, 0, 7, 6] = 0.5
    hm[0, 0, 8, 5] = 0.2
    hm[0, 0, 6, 5] = 0.3
    coords, maxvals = decode_heatmaps(hm)
    assert coords[0, 0].tolist() == [5.25, 6.75] and maxvals[0, 0, 0] == 1.0
    t = torch.randn(2, NUM_JOINTS, 8, 6)
    assert torch.equal(flip_back(flip_back(t)), t)
    assert torch.equal(flip_back(t)[:, 9], t[:, 10].flip(-1))


def test_pck_is_normalised_by_the_box():
    from analysis.ablation.coco_data import PersonRecord

    joints = np.zeros((NUM_JOINTS, 3), np.float32)
    joints[:, 2] = 2
    rec = PersonRecord("x", 1, 1, (0.0, 0.0, 100.0, 50.0), np.zeros(2), np.ones(2), joints, 1.0)
    preds = np.zeros((1, NUM_JOINTS, 2))
    preds[0, :8, 0] = 7.0  # 0.07 of the larger side (100)
    out = pck(preds, [rec])
    assert out["PCK@0.05"] == pytest.approx(9 / 17) and out["PCK@0.1"] == 1.0


def test_epoch_sampler_fixed_order_and_shards():
    a = list(EpochSampler(10, seed=1, epoch=3))
    assert a == list(EpochSampler(10, seed=1, epoch=3)) and a != list(EpochSampler(10, seed=1, epoch=4))
    assert sorted(i for i, _ in a) == list(range(10)) and all(e == 3 for _, e in a)
    shards = [list(EpochSampler(10, seed=1, epoch=3, rank=r, world=4)) for r in range(4)]
    assert all(len(s) == 3 for s in shards)
    assert {i for s in shards for i, _ in s} == set(range(10))


def test_person_records_reject_bad_keypoint_arrays(tmp_path):
    root = _hand_made_coco(tmp_path / "coco")
    ann = root / "annotations" / "person_keypoints_val2017.json"
    doc = json.loads(ann.read_text())
    doc["annotations"][0]["keypoints"] = [1, 2, 2]
    ann.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="annotation 1: needs 51 keypoint values"):
        person_records(load_coco_api(ann), root / "images" / "val2017", 0.75)


@pytest.mark.parametrize("edit, message", [
    (lambda a: a.pop("bbox"), r"annotation 1: needs a bbox \[x, y, w, h\]"),
    (lambda a: a.update(bbox="abc"), r"annotation 1: needs a bbox \[x, y, w, h\]"),
    (lambda a: a.pop("image_id"), r"person_keypoints_val2017.json: not a COCO annotation file \(an entry without 'image_id'\)"),
])
def test_malformed_annotations_are_one_line_dataset_errors(tmp_path, edit, message):
    root = _hand_made_coco(tmp_path / "coco")
    ann = root / "annotations" / "person_keypoints_val2017.json"
    doc = json.loads(ann.read_text())
    edit(doc["annotations"][0])
    ann.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=message) as err:
        person_records(load_coco_api(ann), root / "images" / "val2017", 0.75)
    assert "\n" not in str(err.value)
