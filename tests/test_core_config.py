"""Config model, concise schema, fusion schedules and validation rules of hrnet_core."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import PRESETS, ROOT, SHARED

import hrnet_core as hc
from hrnet_core.exchange import HighResolutionModule
from hrnet_core.shapes import intermediate_shapes, output_shapes

POSE_W32 = ROOT / "configs" / "pose_hrnet_w32_256x192.yaml"
OFFICIAL_POSE = SHARED / "official" / "pose_coco" / "w32_256x192_adam_lr1e-3.yaml"

TINY = {"family": "pose", "input_size": [64, 64], "width": 4, "modules": [1, 2, 2], "blocks": 1,
        "stage1": {"blocks": 1, "planes": 8}, "head": {"kind": "v1", "outputs": 3}}


def test_presets_exist_for_the_whole_zoo():
    names = {p.stem for p in PRESETS}
    for wanted in ["pose_hrnet_w32_256x192", "pose_hrnet_w48_384x288", "mpii_hrnet_w32_256x256",
                   "mpii_hrnet_w48_256x256", "cls_hrnet_w18_small_v1", "cls_hrnet_w18_small_v2", "cls_hrnet_w64",
                   "seg_hrnetv2_w18_small_v1", "seg_hrnetv2_w18_small_v2", "seg_hrnetv2_w18", "seg_hrnetv2_w48",
                   "face_hrnetv2_w18_wflw", "ablation_pose_w32_fusion1", "ablation_pose_w32_fusion3",
                   "ablation_pose_w32_fusion8"]:
        assert wanted in names


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_dump_then_load_is_identity(preset: Path):
    cfg = hc.load_config(preset)
    text = hc.dump_config(cfg)
    assert hc.load_config_text(text) == cfg
    assert hc.load_config(yaml.safe_load(text)) == cfg


def test_shorthand_defaults_give_the_standard_layout():
    cfg = hc.load_config({"family": "pose", "width": 32})
    assert [st.modules for st in cfg.stages] == [1, 4, 3]
    assert all(set(st.blocks) == {4} and st.block == "BASIC" for st in cfg.stages)
    assert cfg.stages == hc.load_config(POSE_W32).stages


def test_width_shorthand_expands_and_matches_official_model():
    cfg = hc.load_config(POSE_W32)
    assert [st.channels for st in cfg.stages] == [(32, 64), (32, 64, 128), (32, 64, 128, 256)]
    official = hc.load_config(OFFICIAL_POSE)
    assert (cfg.stages, cfg.stage1, cfg.head, cfg.upsample, cfg.input_hw) == (
        official.stages, official.stage1, official.head, official.upsample, official.input_hw)


def test_fusion_presets_count_and_params_grow():
    base = hc.load_config(POSE_W32)
    counts, params = [], []
    for preset in ("final_only", "across_stage", "all"):
        cfg = base.with_fusion(preset)
        counts.append(cfg.num_fusions)
        params.append(hc.count_params(cfg))
    assert counts == [1, 3, 8]
    assert params[0] < params[1] < params[2]
    assert params[2] == hc.count_params(hc.load_config(OFFICIAL_POSE))
    assert base.with_fusion("all") == base
    for n, preset in ((1, "final_only"), (3, "across_stage"), (8, "all")):
        ablation = hc.load_config(ROOT / "configs" / f"ablation_pose_w32_fusion{n}.yaml")
        assert ablation.num_fusions == n and ablation.fusion_schedule == base.with_fusion(preset).fusion_schedule


def test_fusion_schedule_shapes_follow_the_paper():
    cfg = hc.load_config(POSE_W32)
    assert cfg.with_fusion("across_stage").fusion_schedule == ((True,), (False, False, False, True), (False, False, True))
    assert cfg.with_fusion("final_only").fusion_schedule == ((False,), (False,) * 4, (False, False, True))


def test_module_without_fusion_builds_no_fuse_layers_and_keeps_branches_apart():
    torch.manual_seed(0)
    kwargs = dict(block="BASIC", in_channels=(4, 8, 16), blocks=(1, 1, 1), channels=(4, 8, 16), fuse_outputs=3,
                  upsample_mode="nearest", align_corners=False)
    off = HighResolutionModule(fuse=False, **kwargs).eval()
    on = HighResolutionModule(fuse=True, **kwargs).eval()
    assert len(off.fuse_layers) == 0 and not any("fuse_layers" in k for k in off.state_dict())
    on.load_state_dict(off.state_dict(), strict=False)
    xs = [torch.randn(1, c, 16 // 2**k, 16 // 2**k) for k, c in enumerate((4, 8, 16))]
    with torch.no_grad():
        base_off, base_on = off(xs), on(xs)
        for j in range(3):
            perturbed = [x.clone() for x in xs]
            perturbed[j] += torch.randn_like(perturbed[j])
            out_off, out_on = off(perturbed), on(perturbed)
            for k in range(3):
                if k != j:
                    assert torch.equal(out_off[k], base_off[k]), f"branch {k} saw branch {j} without fusion"
                    assert not torch.allclose(out_on[k], base_on[k]), "fusion on should exchange"
            assert not torch.equal(out_off[j], base_off[j])


def test_whole_model_forward_views():
    cfg = hc.load_config(TINY)
    model = hc.build_model(cfg).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        inter = model.forward_intermediates(x)
        feats = model.forward_features(x)
        out = model(x)
    predicted = intermediate_shapes(cfg, batch=2)
    assert {k: tuple(v.shape) for k, v in inter.items()} == predicted
    assert "stage3.module1.branch2" in inter and list(inter)[:2] == ["stem", "layer1"]
    last = [k for k in inter if k.startswith("stage4.module1.")]
    assert last == ["stage4.module1.branch0"]  # V1: the last module fuses into branch 0 only
    assert torch.equal(feats[0], inter["stage4.module1.branch0"])
    assert out.shape == (2, 3, 16, 16)
    assert not any(isinstance(m, type(None)) for m in model.modules())


@pytest.mark.parametrize("head", [{"kind": "v2", "outputs": 5}, {"kind": "v2p", "channels": 16, "levels": 3},
                                  {"kind": "v1", "outputs": 2, "final_conv_kernel": 3}])
def test_heads_build_and_run(head):
    raw = dict(TINY, family="det" if head["kind"] == "v2p" else "face", upsample="bilinear", head=head)
    cfg = hc.load_config(raw)
    model = hc.build_model(cfg).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    outs = out if isinstance(out, list) else [out]
    assert [tuple(o.shape) for o in outs] == output_shapes(cfg)


def test_cls_head_names():
    cfg = hc.load_config(dict(TINY, family="cls", head={"kind": "cls", "outputs": 10}))
    keys = hc.build_on_meta(cfg).state_dict().keys()
    for prefix in ("incre_modules.3.", "downsamp_modules.2.", "final_layer.0.", "classifier.weight"):
        assert any(k.startswith(prefix) for k in keys)


# ---- validation rules ---------------------------------------------------------------------------
def _official_pose() -> dict:
    return yaml.safe_load(OFFICIAL_POSE.read_text())


def _expect(raw, field):
    with pytest.raises(hc.ConfigError) as info:
        hc.load_config(raw)
    assert field in info.value.field, (info.value.field, str(info.value))
    assert "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda e: e["STAGE3"].update(NUM_CHANNELS=[32, 64]), "STAGE3.NUM_CHANNELS"),
        (lambda e: e["STAGE2"].update(NUM_BLOCKS=[4, 4, 4]), "STAGE2.NUM_BLOCKS"),
        (lambda e: e["STAGE3"].update(NUM_BRANCHES=4), "STAGE3.NUM_BRANCHES"),
        (lambda e: e["STAGE4"].update(NUM_MODULES=0), "STAGE4.NUM_MODULES"),
        (lambda e: e["STAGE4"].update(NUM_MODULES=-2), "STAGE4.NUM_MODULES"),
        (lambda e: e["STAGE2"].update(NUM_BLOCKS=[4, 2.5]), "STAGE2.NUM_BLOCKS[1]"),
        (lambda e: e["STAGE2"].update(NUM_CHANNELS=["32", 64]), "STAGE2.NUM_CHANNELS[0]"),
        (lambda e: e["STAGE3"].update(BLOCK="RESNEXT"), "STAGE3.BLOCK"),
        (lambda e: e["STAGE3"].update(FUSE_METHOD="CONCAT"), "STAGE3.FUSE_METHOD"),
        (lambda e: e.pop("STAGE4"), "STAGE4"),
        (lambda e: e.update(FINAL_CONV_KERNEL=5), "FINAL_CONV_KERNEL"),
    ],
)
def test_official_validation_rules(mutate, field):
    raw = _official_pose()
    mutate(raw["MODEL"]["EXTRA"])
    _expect(raw, field)


def test_unknown_official_model_name():
    raw = _official_pose()
    raw["MODEL"]["NAME"] = "pose_resnet"
    _expect(raw, "MODEL.NAME")


def test_nearest_upsampling_needs_multiples_of_32():
    raw = _official_pose()
    raw["MODEL"]["IMAGE_SIZE"] = [190, 256]
    err = _expect(raw, "MODEL.IMAGE_SIZE")
    assert "32" in str(err)
    _expect(dict(TINY, input_size=[64, 50]), "input_size")
    assert hc.load_config(dict(TINY, input_size=[64, 50], upsample="bilinear")).input_hw == (64, 50)


@pytest.mark.parametrize(
    "raw, field",
    [
        (dict(TINY, head={"kind": "v9"}), "head.kind"),
        (dict(TINY, family="car"), "family"),
        (dict(TINY, block="DENSE"), "block"),
        (dict(TINY, widht=32), "widht"),
        (dict(TINY, modules=[1, 0, 2]), "modules[1]"),
        (dict(TINY, blocks=[1, 1]), "blocks"),
        (dict(TINY, fusion="sometimes"), "fusion"),
        (dict(TINY, fusion=[[True], [True], [True, False]]), "fusion[1]"),
        (dict(TINY, input_size=[64]), "input_size"),
        # a V2p pyramid of 5 levels pools the 1/4 map by 16: 40x40 input -> 10x10 is too small
        (dict(TINY, family="det", upsample="bilinear", input_size=[40, 40], head={"kind": "v2p", "levels": 5}),
         "head.levels"),
        (dict(TINY, stages=[{"channels": [4, 8]}]), "blocks"),
        ({k: v for k, v in TINY.items() if k != "width"}, "width"),
        (dict({k: v for k, v in TINY.items() if k not in ("width", "modules", "blocks")},
              stages=[{"channels": [4, 8]}, {"channels": [4, 8]}]), "stages[1].channels"),
    ],
)
def test_concise_validation_rules(raw, field):
    _expect(raw, field)


def test_too_large_model_is_refused_before_allocating():
    raw = dict(TINY, width=512, input_size=[256, 256])
    cfg = hc.load_config(raw)
    start = time.perf_counter()
    with pytest.raises(hc.ConfigError) as info:
        hc.build_model(cfg)
    assert info.value.field == "model" and "exceed" in str(info.value)
    assert hc.count_params(cfg) > hc.MAX_PARAMS
    assert time.perf_counter() - start < 30  # a real allocation of >4 GiB would not return like this


def test_bad_yaml_text_names_line():
    with pytest.raises(hc.ConfigError) as info:
        hc.load_config_text("family: pose\nwidth: [32\n", source="mine.yaml")
    assert info.value.field == "mine.yaml" and "line" in str(info.value)


def test_missing_and_directory_config_files(tmp_path):
    _expect(tmp_path / "absent.yaml", "absent.yaml")
    _expect(tmp_path, str(tmp_path))
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    err = _expect(bad, str(bad))  # an error about the whole document still names the file
    assert str(err).startswith(f"{bad}: ") and "mapping" in str(err)


def test_configs_are_frozen_and_not_mutated_by_building():
    cfg = hc.load_config(copy.deepcopy(TINY))
    before = copy.deepcopy(cfg)
    hc.build_model(cfg)
    assert cfg == before
    with pytest.raises(AttributeError):
        cfg.family = "seg"  # type: ignore[misc]
