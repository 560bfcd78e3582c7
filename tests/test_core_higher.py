"""HigherHRNet (HRNet/HigherHRNet-Human-Pose-Estimation, ``MODEL.NAME: pose_higher_hrnet``): every official
experiment layout loads, the head's settings build the official layers, the concise schema round-trips, the
presets are the official experiments. The shared manifest and numeric fixture are checked in test_core_official."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from conftest import ROOT, SHARED

import hrnet_core as hc
from hrnet_core.shapes import output_shapes

OFFICIAL = SHARED / "official" / "higherhrnet" / "coco" / "w32_512_adam_lr1e-3.yaml"


def official() -> dict:
    return yaml.safe_load(OFFICIAL.read_text())


def widen(raw: dict, width: int) -> dict:
    """The shared W32 file as the official W48 files are: branch widths and the deconvolution width."""
    extra = raw["MODEL"]["EXTRA"]
    for k in (2, 3, 4):
        extra[f"STAGE{k}"]["NUM_CHANNELS"] = [width * 2**i for i in range(k)]
    extra["DECONV"]["NUM_CHANNELS"] = [width]
    return raw


def experiment(dataset: str, width: int, side: int) -> dict:
    """The official ``experiments/{coco,crowd_pose}/higher_hrnet/w{32,48}_{512,640}_adam_lr1e-3.yaml`` layouts
    (they differ from the shared file only in these keys): CrowdPose has 14 joints."""
    raw = widen(official(), width)
    raw["DATASET"]["INPUT_SIZE"] = side
    joints = {"coco": 17, "crowd_pose": 14}[dataset]
    raw["DATASET"]["NUM_JOINTS"] = raw["MODEL"]["NUM_JOINTS"] = joints
    return raw


def head_params(c0: int, preds: tuple[int, ...], deconv: tuple[int, ...], kernels: tuple[int, ...], blocks: int,
                cat: tuple[bool, ...], final_kernel: int = 1) -> int:
    """Parameters of the official head, layer by layer (pose_higher_hrnet.py ``_make_final_layers`` and
    ``_make_deconv_layers``)."""
    feats = (c0, *deconv)
    n = sum(f * p * final_kernel**2 + p for f, p in zip(feats, preds))  # final_layers (with bias)
    for i, (c, k) in enumerate(zip(deconv, kernels)):
        cin = feats[i] + (preds[i] if cat[i] else 0)
        n += cin * c * k * k + 2 * c  # ConvTranspose2d (no bias) + BN
        n += blocks * (2 * 9 * c * c + 4 * c)  # BasicBlocks: two 3x3 convs + two BNs
    return n


def v1_of(raw: dict) -> hc.HRNetConfig:
    """The same backbone under the top-down pose head (the pose_hrnet model of the same YAML)."""
    plain = copy.deepcopy(raw)
    plain["MODEL"]["NAME"] = "pose_hrnet"
    side = raw["DATASET"]["INPUT_SIZE"]
    plain["MODEL"]["IMAGE_SIZE"] = [side, side]
    return hc.parse_mapping(plain)


@pytest.mark.parametrize("dataset, width, side", [("coco", 32, 512), ("coco", 32, 640), ("coco", 48, 640),
                                                  ("crowd_pose", 32, 512), ("crowd_pose", 32, 640),
                                                  ("crowd_pose", 48, 640)])
def test_every_official_experiment_layout_loads(dataset, width, side):
    raw = experiment(dataset, width, side)
    cfg = hc.parse_mapping(raw)
    j = raw["MODEL"]["NUM_JOINTS"]
    assert (cfg.family, cfg.head.kind, cfg.input_hw, cfg.head.outputs) == ("pose", "higher", (side, side), j)
    assert cfg.stage1 == hc.Stage1Config("BOTTLENECK", 4, 64) and cfg.stem.channels == 64
    # 1/4: joints + one tag map per joint; 1/2: joints
    assert output_shapes(cfg) == [(1, 2 * j, side // 4, side // 4), (1, j, side // 2, side // 2)]
    plain = v1_of(raw)
    assert cfg.stages == plain.stages
    v1_final = width * j + j
    expected = head_params(width, (2 * j, j), (width,), (4,), 4, (True,))
    assert hc.count_params(cfg) == hc.count_params(plain) - v1_final + expected
    keys = list(hc.build_on_meta(cfg).state_dict())
    head = [k for k in keys if k.startswith(("final_layers", "deconv_layers"))]
    assert keys[-len(head):] == head  # the head comes last, final_layers before deconv_layers
    assert head[0] == "final_layers.0.weight" and head[4] == "deconv_layers.0.0.0.weight"
    assert "deconv_layers.0.4.0.conv2.weight" in head and not any(k.startswith("final_layer.") for k in keys)


def test_the_last_module_fuses_into_branch_0_only():
    cfg = hc.parse_mapping(official())
    model = hc.build_on_meta(cfg)
    assert len(model.stage4[-1].fuse_layers) == 1 and len(model.stage4[-2].fuse_layers) == 4
    assert cfg.fuse_outputs(2, 2) == 1


def test_stage1_and_stem_in_the_yaml_are_ignored_like_the_official_code():
    raw = official()
    raw["MODEL"]["EXTRA"]["STAGE1"] = {"NUM_MODULES": 1, "NUM_RANCHES": 1, "BLOCK": "BASIC", "NUM_BLOCKS": [2],
                                       "NUM_CHANNELS": [32]}
    raw["MODEL"]["EXTRA"]["STEM_INPLANES"] = 32
    raw["MODEL"]["EXTRA"]["PRETRAINED_LAYERS"] = ["conv1", "bn1", "layer1", "stage4"]
    assert hc.parse_mapping(raw) == hc.parse_mapping(official())


@pytest.mark.parametrize("edit, outputs", [
    # TAG_PER_JOINT false: one tag map for all joints
    (lambda r: r["MODEL"].update(TAG_PER_JOINT=False), [(1, 18, 32, 32), (1, 17, 64, 64)]),
    # tags at both resolutions
    (lambda r: r["LOSS"].update(WITH_AE_LOSS=[True, True]), [(1, 34, 32, 32), (1, 34, 64, 64)]),
    # no tags at all
    (lambda r: r["LOSS"].update(WITH_AE_LOSS=[False, False]), [(1, 17, 32, 32), (1, 17, 64, 64)]),
    # yacs reads a tuple string as a Python literal
    (lambda r: r["LOSS"].update(WITH_AE_LOSS="(True, False)"), [(1, 34, 32, 32), (1, 17, 64, 64)]),
    # other transposed-conv kernels keep the exact doubling (official _get_deconv_cfg)
    (lambda r: r["MODEL"]["EXTRA"]["DECONV"].update(KERNEL_SIZE=[2]), [(1, 34, 32, 32), (1, 17, 64, 64)]),
    (lambda r: r["MODEL"]["EXTRA"]["DECONV"].update(KERNEL_SIZE=[3]), [(1, 34, 32, 32), (1, 17, 64, 64)]),
    # two deconvolution stages (the models.py defaults): up to the input resolution
    (lambda r: (r["MODEL"]["EXTRA"]["DECONV"].update(NUM_DECONVS=2, NUM_CHANNELS=[32, 32], KERNEL_SIZE=[4, 4],
                                                     CAT_OUTPUT=[True, True]),
                r["LOSS"].update(WITH_AE_LOSS=[True, False, False])),
     [(1, 34, 32, 32), (1, 17, 64, 64), (1, 17, 128, 128)]),
    # lists longer than NUM_DECONVS: the code reads the first entries only
    (lambda r: (r["MODEL"]["EXTRA"]["DECONV"].update(NUM_CHANNELS=[32, 64], KERNEL_SIZE=[4, 2],
                                                     CAT_OUTPUT=[True, False]),
                r["LOSS"].update(WITH_AE_LOSS=[True, False, True])), [(1, 34, 32, 32), (1, 17, 64, 64)]),
    # no deconvolution: one prediction
    (lambda r: r["MODEL"]["EXTRA"]["DECONV"].update(NUM_DECONVS=0), [(1, 34, 32, 32)]),
    # the centre as one more joint (update_config: DATASET.NUM_JOINTS + 1)
    (lambda r: r["DATASET"].update(WITH_CENTER=True), [(1, 36, 32, 32), (1, 18, 64, 64)]),
])
def test_head_settings_build_the_official_layers(edit, outputs):
    raw = official()
    raw["DATASET"]["INPUT_SIZE"] = 128
    edit(raw)
    cfg = hc.parse_mapping(raw)
    assert output_shapes(cfg) == outputs
    hd = cfg.head
    assert hd.prediction_channels == tuple(o[1] for o in outputs)
    expected = head_params(32, hd.prediction_channels, hd.deconv_channels, hd.deconv_kernels, hd.deconv_blocks,
                           hd.cat_output)
    assert hc.count_params(cfg) == hc.count_params(v1_of(raw)) - (32 * 17 + 17) + expected
    assert hc.load_config_text(hc.dump_config(cfg)) == cfg


def test_tiny_model_runs_and_matches_its_shapes():
    raw = widen(official(), 4)
    raw["DATASET"]["INPUT_SIZE"] = 64
    for k in (2, 3, 4):
        raw["MODEL"]["EXTRA"][f"STAGE{k}"].update(NUM_MODULES=1, NUM_BLOCKS=[1] * k)
    raw["MODEL"]["EXTRA"]["DECONV"]["NUM_BASIC_BLOCKS"] = 1
    cfg = hc.parse_mapping(raw)
    model = hc.build_model(cfg).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert isinstance(out, list) and [tuple(o.shape) for o in out] == output_shapes(cfg, batch=2)
    assert all(isinstance(m.weight, torch.nn.Parameter) and float(m.weight.detach().std()) < 0.01
               for m in model.modules() if isinstance(m, torch.nn.ConvTranspose2d))  # official N(0, 0.001)


@pytest.mark.parametrize("edit, field", [
    (lambda r: r["MODEL"]["EXTRA"].pop("DECONV"), "MODEL.EXTRA.DECONV"),
    (lambda r: r["MODEL"]["EXTRA"]["DECONV"].update(KERNEL_SIZE=[5]), "MODEL.EXTRA.DECONV.KERNEL_SIZE[0]"),
    (lambda r: r["MODEL"]["EXTRA"]["DECONV"].update(NUM_DECONVS=3), "MODEL.EXTRA.DECONV.NUM_DECONVS"),
    (lambda r: r["MODEL"]["EXTRA"]["DECONV"].update(NUM_DECONVS="1"), "MODEL.EXTRA.DECONV.NUM_DECONVS"),
    (lambda r: r["MODEL"]["EXTRA"]["DECONV"].update(NUM_DECONVS=2), "MODEL.EXTRA.DECONV.NUM_CHANNELS"),
    (lambda r: r["MODEL"]["EXTRA"]["DECONV"].update(CAT_OUTPUT=["yes"]), "MODEL.EXTRA.DECONV.CAT_OUTPUT[0]"),
    (lambda r: r["MODEL"]["EXTRA"]["DECONV"].pop("NUM_BASIC_BLOCKS"), "MODEL.EXTRA.DECONV.NUM_BASIC_BLOCKS"),
    (lambda r: r["LOSS"].update(WITH_AE_LOSS=[True]), "LOSS.WITH_AE_LOSS"),
    (lambda r: r["LOSS"].update(WITH_AE_LOSS=True), "LOSS.WITH_AE_LOSS"),
    (lambda r: r["MODEL"].update(TAG_PER_JOINT="yes"), "MODEL.TAG_PER_JOINT"),
    (lambda r: r["DATASET"].update(INPUT_SIZE=[512, 512]), "DATASET.INPUT_SIZE"),
    (lambda r: r["DATASET"].update(INPUT_SIZE=500), "DATASET.INPUT_SIZE"),
])
def test_bad_official_settings_name_the_field(edit, field):
    raw = official()
    edit(raw)
    with pytest.raises(hc.ConfigError) as info:
        hc.parse_mapping(raw)
    assert info.value.field == field and "\n" not in str(info.value)


@pytest.mark.parametrize("head, field", [
    ({"kind": "v1", "deconv_channels": [8]}, "head.deconv_channels"),
    ({"kind": "higher", "deconv_kernels": [4, 4]}, "head.deconv_kernels"),
    ({"kind": "higher", "with_ae": [True]}, "head.with_ae"),
    ({"kind": "higher", "deconv_channels": [8, 8, 8]}, "head.deconv_channels"),
    ({"kind": "higher", "deconv_blocks": -1}, "head.deconv_blocks"),
    ({"kind": "higher", "tag_per_joint": 1}, "head.tag_per_joint"),
])
def test_bad_concise_settings_name_the_field(head, field):
    raw = {"family": "pose", "width": 4, "input_size": [64, 64], "head": head}
    with pytest.raises(hc.ConfigError) as info:
        hc.load_config(raw)
    assert info.value.field == field


def test_concise_defaults_are_the_official_head():
    """``head: {kind: higher}`` alone gives the released layout: one deconvolution stage as wide as branch 0,
    kernel 4, four BasicBlocks, the 1/4 prediction concatenated and carrying one tag map per joint."""
    short = hc.load_config({"family": "pose", "width": 48, "input_size": [640, 640], "head": {"kind": "higher"}})
    raw = experiment("coco", 48, 640)
    assert short.head == hc.parse_mapping(raw).head
    assert hc.load_config_text(hc.dump_config(short)) == short


@pytest.mark.parametrize("tag, width, side", [("w32_512", 32, 512), ("w32_640", 32, 640), ("w48_640", 48, 640)])
def test_presets_are_the_official_coco_experiments(tag, width, side):
    preset = hc.load_config(ROOT / "configs" / f"higherhrnet_{tag}.yaml")
    off = hc.parse_mapping(experiment("coco", width, side))
    assert (preset.family, preset.stages, preset.stage1, preset.stem, preset.head, preset.upsample,
            preset.input_hw) == (off.family, off.stages, off.stage1, off.stem, off.head, off.upsample, off.input_hw)
    assert hc.count_params(preset) == hc.count_params(off)
