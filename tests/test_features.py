"""Feature maps on real images: captured shapes equal the predicted ones for every module and branch,
head outputs per kind, images and stats.csv written, image loading / preprocessing, and one-line
CLI errors for an unreadable image and a wrong-size checkpoint."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT
from PIL import Image

import hrnet_core as hc
from analysis.cli import main
from analysis.features import capture, write_feature_maps
from analysis.features.render import TITLE_STRIP, display_image, overlay
from analysis.imaging import images
from hrnet_core import UserInputError
from hrnet_core.shapes import intermediate_shapes, output_shapes

POSE = ROOT / "configs" / "pose_hrnet_w32_256x192.yaml"


def tiny(family: str, head: str, **kw) -> dict:
    hw = {"seg": [64, 96], "det": [64, 64]}.get(family, [64, 64])
    d = {"family": family, "input_size": hw, "width": 8, "modules": [1, 1, 1], "blocks": 1,
         "stage1": {"block": "BOTTLENECK", "blocks": 1, "planes": 8}, "head": {"kind": head}}
    if family in ("seg", "face", "det"):
        d["upsample"] = {"mode": "bilinear", "align_corners": family == "seg"}
    d.update(kw)
    return d


@pytest.fixture(scope="module")
def pose_run():
    cfg = hc.load_config(POSE)
    torch.manual_seed(0)
    model = hc.build_model(cfg)
    return cfg, model, capture(model, cfg, "astronaut", device="cpu")


@pytest.fixture
def pose_capture(pose_run):
    return pose_run[0], pose_run[2]


# ---- capture -----------------------------------------------------------------------------------------
def test_pose_shapes_match_prediction(pose_capture):
    cfg, cap = pose_capture
    predicted = intermediate_shapes(cfg)
    assert cap.shapes == predicted  # every module and branch, stem and layer1, in forward order
    assert list(cap.branches) == list(predicted)
    for key, b in cap.branches.items():
        _, c, h, w = predicted[key]
        assert b.mean_abs.shape == b.max.shape == b.energy.shape == (h, w)
        assert b.channel_energy.shape == (c,) and b.topk.shape == (min(16, c), h, w)
        assert b.stride == 4 * 2**b.branch and b.stats["sparsity"] <= 1
        # top-k really are the largest-energy channels, largest first
        assert np.all(np.diff(b.channel_energy[b.topk_channels]) <= 0)
        assert b.channel_energy[b.topk_channels[-1]] >= np.sort(b.channel_energy)[-len(b.topk_channels)]
    assert cap.head.kind == "heatmaps" and cap.head.maps.shape == (17, 64, 48)
    assert [cap.head.maps.shape] == [s[1:] for s in output_shapes(cfg)]
    assert cap.head.names[0] == "nose" and len(cap.head.skeleton) == 19
    pts = cap.head.points
    assert pts.shape == (17, 2) and (pts >= -0.5).all() and (pts[:, 0] < 192).all() and (pts[:, 1] < 256).all()
    assert cap.image.shape == (256, 192, 3) and cap.image.dtype == np.uint8
    assert cap.device == "cpu"


def test_capture_matches_model_forward(pose_run):
    """The head applied to the captured final branches equals ``model(x)`` (no second pass, same result)."""
    cfg, model, cap = pose_run
    x = images.to_tensor(cap.image)
    with torch.inference_mode():
        ref = model(x)[0]
        inter = model.forward_intermediates(x)
    torch.testing.assert_close(torch.from_numpy(cap.head.maps), ref, rtol=1e-4, atol=1e-6)
    a = inter["stage3.module2.branch1"][0]
    b = cap.branches["stage3.module2.branch1"]
    torch.testing.assert_close(torch.from_numpy(b.mean_abs), a.abs().mean(0))
    torch.testing.assert_close(torch.from_numpy(b.energy), a.pow(2).sum(0).sqrt())
    assert b.stats["sparsity"] == pytest.approx((a == 0).float().mean().item())


def test_write_feature_maps(pose_capture, tmp_path):
    cfg, cap = pose_capture
    groups = write_feature_maps(cap, tmp_path)
    keys = list(intermediate_shapes(cfg))
    for sub in ("maps", "overlays"):
        assert sorted(p.name for p in (tmp_path / sub).iterdir()) == sorted(f"{k}.png" for k in keys)
    assert len(list((tmp_path / "modules").glob("*.png"))) == 2 + cfg.num_modules
    head = sorted(p.name for p in (tmp_path / "head").iterdir())
    assert "joint_00_nose.png" in head and "heatmaps.png" in head and "keypoints.png" in head
    assert len([h for h in head if h.startswith("joint_")]) == 17
    for p in [*groups["maps"][:3], *groups["overlays"][:3], *groups["modules"][:2], tmp_path / "input.png"]:
        with Image.open(p) as im:
            im.verify()
    with Image.open(tmp_path / "overlays" / f"{keys[-1]}.png") as im:
        assert im.size == (192, 256 + TITLE_STRIP)  # the title in a strip above the picture
        below = np.asarray(im.convert("RGB"))[TITLE_STRIP:]
    drawn = overlay(display_image(cap)[0], cap.branches[keys[-1]].energy)
    assert np.array_equal(below, drawn)  # nothing written over the picture
    with open(tmp_path / "stats.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["key"] for r in rows] == keys
    assert {"module", "branch", "resolution", "shape", "mean", "std", "sparsity", "energy"} <= set(rows[0])
    r = next(r for r in rows if r["key"] == "stage4.module1.branch3")
    assert (r["resolution"], r["shape"]) == ("1/32", "256x8x6")


@pytest.mark.parametrize("family,head,kind", [
    ("cls", "cls", "classification"), ("seg", "v2", "segmentation"), ("face", "v2", "heatmaps"),
    ("det", "v2p", "pyramid"), ("pose", "v1", "heatmaps"), ("seg", "ocr", "segmentation"),
    ("pose", "higher", "heatmaps"),
])
def test_every_head_kind(family, head, kind, tmp_path):
    cfg = hc.load_config(tiny(family, head))
    model = hc.build_model(cfg, init="default")
    cap = capture(model, cfg, "chelsea", device="cpu", topk=4)
    assert cap.shapes == intermediate_shapes(cfg)
    assert cap.head.kind == kind
    assert list(cap.head.shapes) == output_shapes(cfg)
    if kind == "classification":
        assert len(cap.head.top5) == 5 and all(0 <= i < 1000 for i, _ in cap.head.top5)
        assert [p for _, p in cap.head.top5] == sorted((p for _, p in cap.head.top5), reverse=True)
    if kind == "segmentation":
        assert cap.head.class_map.shape == tuple(cfg.input_hw) and cap.head.class_map.max() < 19
    if kind == "pyramid":
        assert [lv.shape for lv in cap.head.levels] == [s[-2:] for s in output_shapes(cfg)]
    groups = write_feature_maps(cap, tmp_path)
    assert groups["head"] and (tmp_path / "stats.csv").is_file()
    names = {p.name for p in groups["head"]}
    expect = {"classification": "top5.png", "segmentation": "class_overlay.png", "heatmaps": "keypoints.png",
              "pyramid": "pyramid.png"}[kind]
    assert expect in names


@pytest.mark.parametrize("family,head", [("pose", "v1"), ("seg", "ocr"), ("pose", "higher"), ("det", "v2p")])
def test_fast_path_maps_equal_the_official_structures(family, head):
    """``capture(fast=True)`` (BatchNorm folded, channels_last) gives every module's maps and the head's
    output of the official structure, to float rounding, with BatchNorm statistics that are not 0/1."""
    cfg = hc.load_config(tiny(family, head))
    model = hc.build_model(cfg, init="default")
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    ref = capture(model, cfg, "chelsea", device="cpu", topk=4, keep_raw=True)
    fast = capture(model, cfg, "chelsea", device="cpu", topk=4, keep_raw=True, fast=True)
    assert list(fast.branches) == list(ref.branches) and fast.shapes == ref.shapes
    for k, b in ref.branches.items():
        scale = max(1.0, float(np.abs(b.raw).max()))
        assert np.abs(fast.branches[k].raw - b.raw).max() <= 1e-4 * scale, k
    assert "fast_path_s" in fast.timings
    if ref.head.kind == "heatmaps":
        assert np.abs(fast.head.maps - ref.head.maps).max() <= 1e-4 * max(1.0, float(np.abs(ref.head.maps).max()))
    with pytest.raises(UserInputError, match="--fast: the inference fast path runs with --engine torch"):
        capture(model, cfg, "chelsea", device="cpu", engine="onnxruntime", fast=True)


def test_higherhrnet_heatmaps_average_its_predictions():
    """HigherHRNet returns [joints + tags at 1/4, joints at 1/2]; the drawn heatmaps are the joint channels of
    both, the 1/4 ones bilinearly brought to 1/2, averaged (official get_multi_stage_outputs)."""
    cfg = hc.load_config(tiny("pose", "higher"))
    torch.manual_seed(0)
    model = hc.build_model(cfg, init="default").eval()
    cap = capture(model, cfg, "astronaut", device="cpu", topk=4)
    x = images.to_tensor(cap.image)
    with torch.inference_mode():
        low, high = model(x)
    assert low.shape == (1, 34, 16, 16) and high.shape == (1, 17, 32, 32)
    up = torch.nn.functional.interpolate(low[:, :17], size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(torch.from_numpy(cap.head.maps), ((up + high) / 2)[0], rtol=1e-4, atol=1e-6)
    assert cap.head.names[0] == "nose" and cap.head.points.shape == (17, 2)
    assert (cap.head.points[:, 0] < 64).all() and (cap.head.points >= -0.5).all()


def test_heatmap_sheet_labels_stay_inside_their_tiles():
    """A 64x64 input: tiles at least MIN_HEATMAP_TILE_W wide, and no joint name runs into its neighbour's gap."""
    from analysis.features.render import BG, GAP, LABEL_H, MIN_HEATMAP_TILE_W, render_heatmap_grid

    cfg = hc.load_config(tiny("pose", "v1"))
    cap = capture(hc.build_model(cfg), cfg, "astronaut", device="cpu")
    sheet = np.asarray(render_heatmap_grid(cap, columns=6))
    tw = th = MIN_HEATMAP_TILE_W  # a square input
    assert sheet.shape[1] == 6 * (tw + GAP) + GAP
    for row in range(3):  # 17 joints: three label strips
        strip = sheet[row * (th + LABEL_H):][:LABEL_H]
        for c in range(1, 6):
            gap = strip[:, GAP + c * (tw + GAP) - GAP:GAP + c * (tw + GAP)]
            assert (gap == np.asarray(BG, np.uint8)).all(), (row, c)


def test_no_fusion_last_module_keeps_all_branches():
    cfg = hc.load_config(tiny("pose", "v1", fusion="none"))
    cap = capture(hc.build_model(cfg), cfg, "astronaut", device="cpu")
    assert cap.shapes == intermediate_shapes(cfg)
    assert [b.branch for b in cap.module_branches("stage4.module0")] == [0, 1, 2, 3]


def test_cuda_request_without_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    cfg = hc.load_config(tiny("pose", "v1"))
    with pytest.raises(hc.UserInputError, match="cuda"):
        capture(hc.build_model(cfg), cfg, "astronaut", device="cuda")


# ---- images ------------------------------------------------------------------------------------------
def test_bundled_photographs_load_offline():
    assert set(images.BUNDLED) >= {"astronaut", "coffee", "chelsea"}
    for name in images.BUNDLED:
        img = images.load_image(name)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 256


def _png(arr, mode=None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def test_load_image_formats(tmp_path):
    gray = (np.arange(60 * 80) % 256).astype(np.uint8).reshape(60, 80)
    p = tmp_path / "gray.png"
    p.write_bytes(_png(gray))
    img = images.load_image(p)
    assert img.shape == (60, 80, 3) and (img[..., 0] == gray).all()
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 0  # fully transparent: white
    assert (images.load_image(_png(rgba)) == 255).all()
    p16 = tmp_path / "deep.png"
    Image.fromarray((np.ones((8, 8)) * 65535).astype(np.uint16)).save(p16)
    assert (images.load_image(p16) == 255).all()
    jpg = tmp_path / "x.jpg"
    Image.fromarray(np.full((20, 30, 3), 128, np.uint8)).save(jpg, quality=95)
    assert abs(int(images.load_image(str(jpg)).mean()) - 128) <= 2


@pytest.mark.parametrize("content,needle", [
    (b"not an image at all", "not an image file"),
    (b"", "empty file"),
    ("truncated", "corrupt"),
])
def test_unreadable_images(tmp_path, content, needle):
    p = tmp_path / "bad.png"
    if content == "truncated":
        content = _png((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8))[:300]
    p.write_bytes(content)
    with pytest.raises(images.ImageError, match=needle) as err:
        images.load_image(p)
    assert str(p) in str(err.value) and "\n" not in str(err.value)


def test_missing_and_folder_images(tmp_path):
    with pytest.raises(images.ImageError, match="no such image file"):
        images.load_image(tmp_path / "nope.jpg")
    with pytest.raises(images.ImageError, match="not a file"):
        images.load_image(tmp_path)
    assert issubclass(images.ImageError, hc.UserInputError)


def test_preprocess_normalisation_and_crops():
    flat = np.full((100, 300, 3), 255, np.uint8)
    x = images.preprocess(flat, (64, 48))
    assert x.shape == (1, 3, 64, 48) and x.dtype == torch.float32
    expect = [(1 - m) / s for m, s in zip(images.IMAGENET_MEAN, images.IMAGENET_STD)]
    torch.testing.assert_close(x[0, :, 10, 10], torch.tensor(expect))
    # Centre crop keeps the aspect ratio: a left-red / centre-green / right-blue strip gives pure green.
    strip = np.zeros((100, 300, 3), np.uint8)
    strip[:, :100, 0] = strip[:, 100:200, 1] = strip[:, 200:, 2] = 255
    crop, _ = images.prepare(strip, (64, 64))
    assert crop.shape == (64, 64, 3) and (crop[:, 8:56, 1] > 250).all() and (crop[:, 8:56, [0, 2]] < 5).all()
    # Pose affine crop: the box is widened to the aspect ratio and enlarged by 1.25 around its centre.
    img = np.zeros((400, 400, 3), np.uint8)
    img[150:250, 175:225] = 255  # a 50x100 (w x h) white box
    crop, _ = images.prepare(img, (128, 96), box=(175, 150, 50, 100))
    white = np.argwhere(crop[..., 0] > 127)
    h = white[:, 0].max() - white[:, 0].min() + 1
    w = white[:, 1].max() - white[:, 1].min() + 1
    assert abs(h - 128 / 1.25) <= 2 and abs(w - 96 / 1.25 * (50 / 75)) <= 2  # box h 100 -> 102.4 px
    assert abs(white[:, 0].mean() - 63.5) < 1 and abs(white[:, 1].mean() - 47.5) < 1
    # classification: the official 0.875 validation crop
    crop_cls, _ = images.prepare(strip, (64, 64), family="cls")
    assert crop_cls.shape == (64, 64, 3)


# ---- CLI ---------------------------------------------------------------------------------------------
def _tiny_yaml(tmp_path: Path, name: str, **kw) -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(tiny("pose", "v1", **kw)))
    return p


def test_cli_features_with_checkpoint(tmp_path, capsys):
    cfg_path = _tiny_yaml(tmp_path, "tiny")
    model = hc.build_model(hc.load_config(cfg_path), init="default")
    ck = tmp_path / "tiny.pth"
    torch.save({"state_dict": model.state_dict()}, ck)
    out = tmp_path / "out"
    assert main(["features", str(cfg_path), "--image", "coffee", "--checkpoint", str(ck), "-o", str(out),
                 "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "(strict)" in text and "on cpu" in text
    assert (out / "stats.csv").is_file() and (out / "head" / "heatmaps.png").is_file()


def test_cli_wrong_size_checkpoint(tmp_path, capsys):
    other = hc.build_model(hc.load_config(tiny("pose", "v1", width=12)))
    ck = tmp_path / "w12.pth"
    torch.save(other.state_dict(), ck)
    code = main(["features", str(_tiny_yaml(tmp_path, "tiny")), "--checkpoint", str(ck), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "does not fit the model" in err and str(ck) in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_unreadable_image_subprocess(tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    proc = subprocess.run([sys.executable, "-m", "analysis.cli", "features", str(POSE), "--image", str(bad),
                           "-o", str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert str(bad) in proc.stderr and "image" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_colormaps_and_resizing():
    from analysis.features.colormaps import TURBO, VIRIDIS, colorize, palette, resize_nearest, to_uint8

    assert VIRIDIS.shape == TURBO.shape == (256, 3) and VIRIDIS.dtype == np.uint8
    assert abs(VIRIDIS[0].astype(int) - [68, 1, 84]).max() <= 4 and abs(VIRIDIS[255].astype(int) - [253, 231, 37]).max() <= 6
    m = np.array([[0.0, 1.0, 2.0]], np.float32)
    assert to_uint8(m).tolist() == [[0, 127, 255]] and colorize(m).shape == (1, 3, 3)
    assert to_uint8(np.zeros((2, 2))).max() == 0  # a constant map does not divide by zero
    stack = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)  # two 2x3 maps (width 3, not RGB)
    up = resize_nearest(stack, 4, 6, batched=True)
    assert up.shape == (2, 4, 6) and (up[1, 2:, 4:] == stack[1, 1, 2]).all()
    assert resize_nearest(np.arange(6).reshape(2, 3), 4, 6)[3, 5] == 5
    assert len({tuple(c) for c in palette(40)}) == 40 and palette(19)[0].tolist() == [128, 64, 128]


NUMERIC = ROOT.parent / "shared" / "fixtures" / "numeric"


@pytest.mark.parametrize("name", ["pose_tiny", "seg_tiny", "higher_tiny"])
def test_cli_features_official_checkpoints(name, tmp_path, capsys):
    """Official-format experiment YAML + a checkpoint recorded by the official code (float16 values)."""
    folder = NUMERIC / name
    if not folder.is_dir():
        pytest.skip("../shared/fixtures/numeric not present")
    out = tmp_path / name
    assert main(["features", str(folder / "config.yaml"), "--checkpoint", str(folder / "state_dict.pth"),
                 "--image", "astronaut", "--device", "cpu", "-o", str(out)]) == 0
    assert "(strict)" in capsys.readouterr().out
    cfg = hc.load_config(folder / "config.yaml")
    with open(out / "stats.csv") as fh:
        assert [r["key"] for r in csv.DictReader(fh)] == list(intermediate_shapes(cfg))
