"""Acceptance 1-3 of the builder: official numeric fixtures, manifests, official YAML quirks."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import SHARED

import hrnet_core as hc
from hrnet_core.shapes import output_shapes

NUMERIC = sorted((SHARED / "fixtures" / "numeric").glob("*"))
MANIFESTS = sorted((SHARED / "fixtures" / "manifests").glob("*.json"))
OFFICIAL = sorted((SHARED / "official").glob("*/*.yaml"))


def test_shared_reference_present():
    assert NUMERIC and MANIFESTS and OFFICIAL, f"reference material missing under {SHARED}"


@pytest.mark.parametrize("fixture", NUMERIC, ids=lambda p: p.name)
def test_numeric_fixture_reproduces_official_output(fixture: Path):
    cfg = hc.load_config(fixture / "config.yaml")
    model = hc.build_model(cfg).eval()
    report = hc.load_checkpoint(model, fixture / "state_dict.pth", strict=True)
    assert report.loaded == len(model.state_dict())
    x = torch.load(fixture / "input.pt", weights_only=True)
    expected = torch.load(fixture / "expected_output.pt", weights_only=True)
    with torch.no_grad():
        out = model(x)
    if isinstance(expected, (list, tuple)):  # HigherHRNet: the official list of predictions
        assert isinstance(out, list) and len(out) == len(expected)
        pairs = list(zip(out, expected))
    else:
        pairs = [(out, expected)]
    for got, want in pairs:
        assert got.shape == want.shape
        torch.testing.assert_close(got, want.float(), rtol=1e-4, atol=1e-5)
    meta = json.loads((fixture / "meta.json").read_text()) if (fixture / "meta.json").is_file() else {}
    if isinstance(meta.get("params"), int):
        assert sum(p.numel() for p in model.parameters()) == meta["params"]


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.stem)
def test_manifest_state_dict_and_params(manifest: Path):
    data = json.loads(manifest.read_text())
    cfg = hc.load_config(SHARED / "official" / data["source_yaml"])
    if "family" in data:
        assert cfg.family == data["family"]
    model = hc.build_on_meta(cfg)
    shapes = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert shapes == [(k, v) for k, v in data["state_dict"].items()]
    assert hc.count_params(cfg) == data["params"]
    for count in data.get("counts", []):
        out = output_shapes(cfg, tuple(count["input_hw"]))
        assert [list(s) for s in out] == [count["output_shape"]]
    if data.get("model_name") == "pose_higher_hrnet":
        # no counts: the list of predictions at the YAML's square input, and the head's official layout
        assert "counts" not in data and data["outputs"]
        n, _, h, w = data["input_shape"]
        assert cfg.input_hw == (h, w) and cfg.head.kind == "higher"
        assert [list(s) for s in output_shapes(cfg, (h, w), batch=n)] == data["outputs"]
        assert (cfg.head.outputs, cfg.head.tag_per_joint, list(cfg.head.with_ae)) == (
            data["num_joints"], data["tag_per_joint"], data["with_ae_loss"])
        assert len(data["state_dict"]) == data["num_state_dict_entries"]
        assert sum(k.endswith("num_batches_tracked") for k in data["state_dict"]) == data["num_buffers_num_batches_tracked"]


def _official(rel: str) -> dict:
    return yaml.safe_load((SHARED / "official" / rel).read_text())


def test_every_shared_official_yaml_loads_unchanged():
    families = {"pose_coco": "pose", "cls": "cls", "seg": "seg", "face": "face"}
    for path in OFFICIAL:
        cfg = hc.load_config(path)
        assert cfg.family == families[path.parent.name], path


def test_image_size_is_width_height_in_official_files():
    raw = _official("pose_coco/w32_256x192_adam_lr1e-3.yaml")
    w, h = raw["MODEL"]["IMAGE_SIZE"]
    cfg = hc.load_config(SHARED / "official" / "pose_coco/w32_256x192_adam_lr1e-3.yaml")
    assert cfg.input_hw == (h, w)
    seg = _official("seg/seg_hrnet_w48_train_512x1024_sgd_lr1e-2_wd5e-4_bs_12_epoch484.yaml")
    sw, sh = seg["TRAIN"]["IMAGE_SIZE"]
    assert hc.parse_mapping(seg).input_hw == (sh, sw)


def test_seg_align_corners_defaults_to_official_true():
    seg = _official("seg/seg_hrnet_w48_train_512x1024_sgd_lr1e-2_wd5e-4_bs_12_epoch484.yaml")
    assert hc.parse_mapping(seg).upsample == hc.UpsampleConfig("bilinear", bool(seg["MODEL"]["ALIGN_CORNERS"]))
    del seg["MODEL"]["ALIGN_CORNERS"]
    assert hc.parse_mapping(seg).upsample == hc.UpsampleConfig("bilinear", True)


def test_family_specific_heads_and_upsampling():
    face = hc.load_config(SHARED / "official/face/face_alignment_wflw_hrnet_w18.yaml")
    assert (face.head.kind, face.upsample) == ("v2", hc.UpsampleConfig("bilinear", False))
    pose = hc.load_config(SHARED / "official/pose_coco/w32_256x192_adam_lr1e-3.yaml")
    assert (pose.head.kind, pose.upsample.mode) == ("v1", "nearest")
    cls = hc.load_config(SHARED / "official/cls/cls_hrnet_w18_sgd_lr5e-2_wd1e-4_bs32_x100.yaml")
    assert (cls.head.kind, cls.upsample.mode, cls.head.outputs) == ("cls", "nearest", 1000)


def test_pose_ignores_stage1_like_the_official_code():
    raw = _official("pose_coco/w32_256x192_adam_lr1e-3.yaml")
    plain = hc.parse_mapping(raw)
    with_stage1 = copy.deepcopy(raw)
    with_stage1["MODEL"]["EXTRA"]["STAGE1"] = {
        "NUM_MODULES": 1, "NUM_RANCHES": 1, "BLOCK": "BASIC", "NUM_BLOCKS": [2], "NUM_CHANNELS": [32],
    }
    assert hc.parse_mapping(with_stage1).stage1 == plain.stage1


def test_missing_optional_keys_take_official_defaults():
    raw = _official("pose_coco/w32_256x192_adam_lr1e-3.yaml")
    minimal = {"MODEL": {"NAME": "pose_hrnet", "EXTRA": raw["MODEL"]["EXTRA"]}}
    cfg = hc.parse_mapping(minimal)
    assert cfg.head.outputs == 17 and cfg.input_hw == (256, 256) and cfg.head.final_conv_kernel == 1


def test_other_official_layouts_load():
    """Variants present in the official repos beyond the shared files: MPII (16 joints, 256x256),
    another dataset's class count for seg, 68 face landmarks, a Small-v2 classification layout."""
    mpii = _official("pose_coco/w32_256x192_adam_lr1e-3.yaml")
    mpii["MODEL"].update(NUM_JOINTS=16, IMAGE_SIZE=[256, 256])
    cfg = hc.parse_mapping(mpii)
    assert output_shapes(cfg) == [(1, 16, 64, 64)]
    seg = _official("seg/seg_hrnet_w48_train_512x1024_sgd_lr1e-2_wd5e-4_bs_12_epoch484.yaml")
    seg["DATASET"]["NUM_CLASSES"] = 59
    seg["TRAIN"]["IMAGE_SIZE"] = [473, 473]  # LIP size: not a multiple of 32, fine with bilinear fusion
    assert output_shapes(hc.parse_mapping(seg)) == [(1, 59, 119, 119)]
    face = _official("face/face_alignment_wflw_hrnet_w18.yaml")
    face["MODEL"]["NUM_JOINTS"] = 68
    assert output_shapes(hc.parse_mapping(face))[0][1] == 68


def test_seg_ocr_yaml_builds_the_ocr_head():
    """HRNet + OCR (``MODEL.NAME: seg_hrnet_ocr``): backbone as seg_hrnet, ``last_layer`` replaced by the OCR
    head of seg_hrnet_ocr.py; output ``[aux, out]`` at 1/4 resolution."""
    raw = _official("seg/seg_hrnet_w48_train_512x1024_sgd_lr1e-2_wd5e-4_bs_12_epoch484.yaml")
    plain = hc.parse_mapping(raw)
    raw["MODEL"]["NAME"] = "seg_hrnet_ocr"
    cfg = hc.parse_mapping(raw)
    assert (cfg.head.kind, cfg.head.channels, cfg.head.key_channels) == ("ocr", 512, 256)
    keys = hc.build_on_meta(cfg).state_dict()
    for prefix in ("conv3x3_ocr.0.bias", "ocr_distri_head.object_context_block.f_pixel.1.0.running_var",
                   "ocr_distri_head.conv_bn_dropout.1.0.weight", "cls_head.bias", "aux_head.3.weight"):
        assert prefix in keys
    assert not any(k.startswith("last_layer") for k in keys)
    c = sum(plain.stages[-1].out_channels)  # concat of the four branches
    k, m, kc = plain.head.outputs, 512, 256
    bn = 2  # affine parameters per channel
    head = (c * m * 9 + m + bn * m                                   # conv3x3_ocr
            + 2 * (m * kc + bn * kc + kc * kc + bn * kc)             # f_pixel, f_object
            + (m * kc + bn * kc) + (kc * m + bn * m)                 # f_down, f_up
            + (2 * m * m + bn * m)                                   # conv_bn_dropout
            + (m * k + k)                                            # cls_head
            + (c * c + c + bn * c + c * k + k))                      # aux_head
    last_layer = c * c + c + bn * c + c * k + k
    assert hc.count_params(cfg) == hc.count_params(plain) - last_layer + head
    assert output_shapes(cfg, (64, 128)) == [(1, k, 16, 32), (1, k, 16, 32)]


def test_development_only_ocr_names_are_refused_with_a_reason():
    raw = _official("seg/seg_hrnet_w48_train_512x1024_sgd_lr1e-2_wd5e-4_bs_12_epoch484.yaml")
    raw["MODEL"]["NAME"] = "seg_hrnet_ocr_bndefault_alignTrue_1x1"
    with pytest.raises(hc.ConfigError, match="development-only"):
        hc.parse_mapping(raw)
