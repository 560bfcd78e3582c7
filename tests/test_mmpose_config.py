"""mmpose ``.py`` configs read without executing them (hrnet_core.mmpose_config) and turned into our typed configs
(hrnet_core.mmpose_model.config_from_mmpose, load_config, the CLI): the shared 1.x configs, a 0.x config, a
throwaway network, and a corpus of hostile files, each refused in one line naming the file and the line."""

from __future__ import annotations

import builtins
import json
import keyword
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
from conftest import ROOT, SHARED
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import hrnet_core as hc
from analysis.cli import main
from hrnet_core.mmpose_config import BaseRef, MmposeConfigError, read_mmpose_file, read_mmpose_text
from hrnet_core.networks import NetworkSpec, register, unregister
from hrnet_core.networks.model_config import NetworkConfig

MMPOSE = SHARED / "official" / "mmpose"
W32_PY = MMPOSE / "td-hm_hrnet-w32_8xb64-210e_coco-256x192.py"
LITE_PY = MMPOSE / "td-hm_litehrnet-18_8xb64-210e_coco-256x192.py"
HRFORMER_PY = MMPOSE / "td-hm_hrformer-small_8xb32-210e_coco-256x192.py"
W32_MANIFEST = SHARED / "fixtures" / "manifests" / "pose_coco__w32_256x192_adam_lr1e-3.json"
W32_PARAMS = 28_536_113  # ../shared/README.md, official/mmpose table

# Six valid lines, so that the hostile statement after them is on line 7.
PREFIX = ("# an mmpose config\n"
          "_base_ = ['../_base_/default_runtime.py']\n"
          "\n"
          "codec = dict(type='MSRAHeatmap', input_size=(192, 256), heatmap_size=(48, 64), sigma=2)\n"
          "data_root = 'data/coco/'\n"
          "\n")

STAGES = """dict(
            stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(4, ), num_channels=(64, )),
            stage2=dict(num_modules=1, num_branches=2, block='BASIC', num_blocks=(4, 4), num_channels=(32, 64)),
            stage3=dict(num_modules=4, num_branches=3, block='BASIC', num_blocks=(4, 4, 4),
                        num_channels=(32, 64, 128)),
            stage4=dict(num_modules=3, num_branches=4, block='BASIC', num_blocks=(4, 4, 4, 4),
                        num_channels=(32, 64, 128, 256)))"""
MODEL_1X = f"""model = dict(
    type='TopdownPoseEstimator',
    data_preprocessor=dict(type='PoseDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
    backbone=dict(type='HRNet', in_channels=3, extra={STAGES}),
    head=dict(type='HeatmapHead', in_channels=32, out_channels=17, deconv_out_channels=None,
              loss=dict(type='KeypointMSELoss', use_target_weight=True), decoder=codec),
    test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=True))
"""

# An mmpose 0.x top-down config, written in the layout of mmpose 0.x's hrnet_w32_coco_256x192.py: channel_cfg,
# a TopDown model with a TopdownHeatmapSimpleHead, data_cfg, f-strings and mmcv's {{_base_.dataset_info}}.
CONFIG_0X = f"""_base_ = [
    '../../../../_base_/default_runtime.py',
    '../../../../_base_/datasets/coco.py'
]
evaluation = dict(interval=10, metric='mAP', save_best='AP')
optimizer = dict(type='Adam', lr=5e-4)
lr_config = dict(policy='step', warmup='linear', warmup_iters=500, warmup_ratio=0.001, step=[170, 200])
total_epochs = 210
channel_cfg = dict(
    num_output_channels=17,
    dataset_joints=17,
    dataset_channel=[
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
    ],
    inference_channel=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16])

# model settings
model = dict(
    type='TopDown',
    pretrained='https://download.openmmlab.com/mmpose/'
    'pretrain_models/hrnet_w32-36af842e.pth',
    backbone=dict(type='HRNet', in_channels=3, extra={STAGES}),
    keypoint_head=dict(
        type='TopdownHeatmapSimpleHead',
        in_channels=32,
        out_channels=channel_cfg['num_output_channels'],
        num_deconv_layers=0,
        extra=dict(final_conv_kernel=1, ),
        loss_keypoint=dict(type='JointsMSELoss', use_target_weight=True)),
    train_cfg=dict(),
    test_cfg=dict(flip_test=True, post_process='default', shift_heatmap=True, modulate_kernel=11))

data_cfg = dict(
    image_size=[192, 256],
    heatmap_size=[48, 64],
    num_output_channels=channel_cfg['num_output_channels'],
    num_joints=channel_cfg['dataset_joints'],
    dataset_channel=channel_cfg['dataset_channel'],
    inference_channel=channel_cfg['inference_channel'],
    soft_nms=False,
    bbox_file='data/coco/person_detection_results/'
    'COCO_val2017_detections_AP_H_56_person.json',
)
val_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TopDownAffine'),
    dict(type='NormalizeTensor', mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    dict(type='Collect', keys=['img'], meta_keys=['image_file', 'center', 'scale', 'rotation', 'flip_pairs']),
]
test_pipeline = val_pipeline
data_root = 'data/coco'
data = dict(
    samples_per_gpu=64,
    workers_per_gpu=2,
    train=dict(
        type='TopDownCocoDataset',
        ann_file=f'{{data_root}}/annotations/person_keypoints_train2017.json',
        img_prefix=f'{{data_root}}/train2017/',
        data_cfg=data_cfg,
        pipeline=val_pipeline,
        dataset_info={{{{_base_.dataset_info}}}}),
)
"""


def _refused_text(text: str, *words: str) -> MmposeConfigError:
    start = time.process_time()
    with pytest.raises(MmposeConfigError) as info:
        read_mmpose_text(text, "x.py")
    assert time.process_time() - start < 5  # CPU seconds: a loaded machine does not inflate them
    message = str(info.value)
    assert "\n" not in message and message.startswith("x.py"), message
    for w in words:
        assert w in message, message
    return info.value


# ---- the shared mmpose 1.x configs ---------------------------------------------------------------------
def test_shared_hrnet_w32_reads_to_the_official_pose_model():
    cfg = hc.load_config(W32_PY)
    assert isinstance(cfg, hc.HRNetConfig)
    assert cfg.name == W32_PY.stem and cfg.family == "pose" and cfg.input_hw == (256, 192)
    assert cfg.head == hc.HeadConfig(kind="v1", outputs=17, final_conv_kernel=1)
    assert [st.channels for st in cfg.stages] == [(32, 64), (32, 64, 128), (32, 64, 128, 256)]
    assert [st.modules for st in cfg.stages] == [1, 4, 3]
    assert cfg.stage1 == hc.Stage1Config("BOTTLENECK", 4, 64) and cfg.upsample == hc.UpsampleConfig("nearest", False)
    assert hc.count_params(cfg) == W32_PARAMS
    # the official pose HRNet's keys and shapes (mmpose's HRNet keeps them), so its checkpoints load strictly
    manifest = json.loads(W32_MANIFEST.read_text())["state_dict"]
    sd = hc.build_on_meta(cfg).state_dict()
    assert list(sd) == list(manifest)
    assert {k: list(v.shape) for k, v in sd.items()} == manifest
    # the same model as the official experiment YAML
    official = hc.load_config(SHARED / "official" / "pose_coco" / "w32_256x192_adam_lr1e-3.yaml")
    assert (cfg.stages, cfg.stage1, cfg.head, cfg.upsample, cfg.input_hw) == \
        (official.stages, official.stage1, official.head, official.upsample, official.input_hw)


def test_shared_hrnet_w32_values():
    data = read_mmpose_file(W32_PY)
    assert data["_base_"] == ["../../../_base_/default_runtime.py"]  # recorded, not followed
    assert data["codec"]["input_size"] == (192, 256)
    head = data["model"]["head"]
    assert head["decoder"] == data["codec"] and head["decoder"] is not data["codec"]  # a copy, not shared
    assert data["train_pipeline"][5] == {"type": "TopdownAffine", "input_size": (192, 256)}
    assert data["val_evaluator"]["ann_file"] == "data/coco/annotations/person_keypoints_val2017.json"
    assert data["test_dataloader"] == data["val_dataloader"]
    assert data["val_dataloader"]["dataset"]["bbox_file"] == \
        "data/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json"
    assert data["param_scheduler"][0]["start_factor"] == 0.001 and data["optim_wrapper"]["optimizer"]["lr"] == 5e-4
    assert data["model"]["backbone"]["init_cfg"]["checkpoint"].endswith("pretrain_models/hrnet_w32-36af842e.pth")


def test_reading_never_executes_or_evaluates(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("exec/eval called while reading a config")

    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "eval", forbidden)
    for path in (W32_PY, LITE_PY, HRFORMER_PY):
        assert read_mmpose_file(path)["model"]["type"] == "TopdownPoseEstimator"
    read_mmpose_text(CONFIG_0X, "zero.py")


@pytest.mark.parametrize("path, mmpose_type, module, arch, params", [
    (LITE_PY, "LiteHRNet", "hrnet_core.networks.litehrnet", "litehrnet", 1_130_769),
    (HRFORMER_PY, "HRFormer", "hrnet_core.networks.hrformer", "hrformer", 7_746_779),
])
def test_shared_family_configs(path, mmpose_type, module, arch, params):
    cfg = hc.load_config(path)
    assert isinstance(cfg, NetworkConfig)
    assert cfg.arch == arch and cfg.name == path.stem and cfg.input_hw == (256, 192)
    assert cfg.head == hc.HeadConfig(kind="v1", outputs=17)
    assert hc.count_params(cfg) == params  # ../shared/README.md, official/mmpose table


# ---- mmpose 0.x ----------------------------------------------------------------------------------------
def test_mmpose_0x_config(tmp_path):
    data = read_mmpose_text(CONFIG_0X, "zero.py")
    assert data["data"]["train"]["ann_file"] == "data/coco/annotations/person_keypoints_train2017.json"
    assert data["data"]["train"]["img_prefix"] == "data/coco/train2017/"
    assert data["data"]["train"]["dataset_info"] == BaseRef("dataset_info")
    assert data["data_cfg"]["dataset_channel"] == [list(range(17))]
    assert data["model"]["keypoint_head"]["out_channels"] == 17
    path = tmp_path / "hrnet_w32_coco_256x192.py"
    path.write_text(CONFIG_0X)
    cfg = hc.load_config(path)
    w32 = hc.load_config(W32_PY)
    assert isinstance(cfg, hc.HRNetConfig) and cfg.name == "hrnet_w32_coco_256x192"
    assert (cfg.stages, cfg.stage1, cfg.head, cfg.input_hw) == (w32.stages, w32.stage1, w32.head, w32.input_hw)
    assert hc.count_params(cfg) == W32_PARAMS
    # a 3x3 final conv (padding 1, as the official FINAL_CONV_KERNEL: 3) and data_cfg's [W, H]
    other = CONFIG_0X.replace("final_conv_kernel=1, ", "final_conv_kernel=3").replace("[192, 256]", "[288, 384]")
    d = read_mmpose_text(other)
    cfg3 = hc.config_from_mmpose(d["model"], data_cfg=d["data_cfg"], name="k3")
    assert cfg3.head.final_conv_kernel == 3 and cfg3.input_hw == (384, 288)
    assert hc.count_params(cfg3) == W32_PARAMS + 17 * 32 * 8


# ---- config_from_mmpose --------------------------------------------------------------------------------
def _w32_model(text: str = MODEL_1X) -> dict:
    return read_mmpose_text(PREFIX + text)["model"]


def test_hrnet_stage1_upsample_and_input_size():
    text = MODEL_1X.replace("block='BOTTLENECK', num_blocks=(4, ), num_channels=(64, )",
                            "block='BASIC', num_blocks=(2, ), num_channels=(32, )")
    text = text.replace("num_channels=(32, 64, 128, 256)))", "num_channels=(32, 64, 128, 256)), "
                        "upsample=dict(mode='bilinear', align_corners=True))")
    cfg = hc.config_from_mmpose(_w32_model(text), codec={"input_size": (288, 384)}, name="custom")
    assert cfg.stage1 == hc.Stage1Config("BASIC", 2, 32) and cfg.upsample == hc.UpsampleConfig("bilinear", True)
    assert cfg.input_hw == (384, 288) and cfg.name == "custom"
    assert hc.config_from_mmpose(_w32_model()).input_hw == (256, 192)  # the default without a codec
    with pytest.raises(hc.ConfigError, match=r"^codec.input_size: .*multiple of 32"):
        hc.config_from_mmpose(_w32_model(text), codec={"input_size": (190, 250)})
    with pytest.raises(hc.ConfigError, match=r"^codec.input_size: .*multiple of 32"):
        hc.config_from_mmpose(_w32_model(), codec={"input_size": (190, 250)})


@pytest.mark.parametrize("old, new, field", [
    ("in_channels=32, out_channels=17", "in_channels=48, out_channels=17", "model.head.in_channels"),
    ("deconv_out_channels=None", "deconv_out_channels=(256, 256, 256)", "model.head.deconv_out_channels"),
    ("deconv_out_channels=None,", "", "model.head.deconv_out_channels"),
    ("deconv_out_channels=None", "deconv_out_channels=None, conv_out_channels=(64, )", "model.head.conv_out_channels"),
    ("deconv_out_channels=None", "deconv_out_channels=None, final_layer=dict(kernel_size=3)",
     "model.head.final_layer.kernel_size"),
    ("out_channels=17", "out_channels=0", "model.head.out_channels"),
    ("type='HeatmapHead'", "type='SimCCHead'", "model.head.type"),
    ("num_channels=(32, 64, 128)),", "num_channels=(32, 64)),", "model.backbone.extra.stage3.num_channels"),
    ("num_blocks=(4, 4, 4),", "num_blocks=(4, 0, 4),", "model.backbone.extra.stage3.num_blocks[1]"),
    ("num_branches=3,", "num_branches=4,", "model.backbone.extra.stage3.num_branches"),
    ("block='BASIC', num_blocks=(4, 4),", "block='DENSE', num_blocks=(4, 4),", "model.backbone.extra.stage2.block"),
    ("num_channels=(32, 64, 128, 256)))", "num_channels=(32, 64, 128, 256), multiscale_output=True))",
     "model.backbone.extra.stage4.multiscale_output"),
    ("num_channels=(32, 64, 128, 256)))", "num_channels=(32, 64, 128, 256), fuse_methd='SUM'))",
     "model.backbone.extra.stage4.fuse_methd"),
    ("type='HRNet', in_channels=3", "type='HRNet', in_channels=1", "model.backbone.in_channels"),
    ("type='HRNet', in_channels=3", "type='HRNet', norm_cfg=dict(type='GN', num_groups=2)",
     "model.backbone.norm_cfg.num_groups"),
    ("type='HRNet', in_channels=3", "type='HRNet', norm_cfg=dict(type='GN')", "model.backbone.norm_cfg.type"),
    ("type='HRNet', in_channels=3", "type='ResNet', depth=50", "model.backbone.type"),
    ("type='TopdownPoseEstimator'", "type='BottomupPoseEstimator'", "model.type"),
    ("type='TopdownPoseEstimator',", "type='TopdownPoseEstimator', neck=dict(type='FPN'),", "model.neck"),
    ("test_cfg=dict(", "tset_cfg=dict(", "model.tset_cfg"),
])
def test_model_errors_name_the_mmpose_field(old, new, field):
    assert old in MODEL_1X
    model = _w32_model(MODEL_1X.replace(old, new, 1))
    with pytest.raises(hc.ConfigError) as info:
        hc.config_from_mmpose(model)
    assert info.value.field == field, str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_backbone_names_the_supported_types():
    model = _w32_model(MODEL_1X.replace("type='HRNet'", "type='ResNet'"))
    with pytest.raises(hc.ConfigError, match=r"^model.backbone.type: unknown backbone 'ResNet'; supported: HRNet"):
        hc.config_from_mmpose(model)


def test_bare_hrnet_backbone_and_non_dicts_are_refused():
    backbone = _w32_model()["backbone"]
    with pytest.raises(hc.ConfigError, match="bare HRNet backbone has no head"):
        hc.config_from_mmpose(backbone)
    for bad in ([1, 2], "model", None):
        with pytest.raises(hc.ConfigError, match=r"^model: must be a dict"):
            hc.config_from_mmpose(bad)
    with pytest.raises(hc.ConfigError, match=r"^codec: must be a dict"):
        hc.config_from_mmpose(_w32_model(), codec=[192, 256])


# ---- a network registered here (the Lite-HRNet / HRFormer path) ----------------------------------------
@dataclass(frozen=True)
class ToySection:
    channels: int = 8


def _toy_parse(mapping, field):
    unknown = sorted(set(mapping) - {"in_channels", "extra"})
    if unknown:
        raise hc.ConfigError(f"{field}.{unknown[0]}", "unknown key")
    channels = (mapping.get("extra") or {}).get("channels", 8)
    if isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0:
        raise hc.ConfigError(f"{field}.extra.channels", f"must be a positive integer, got {channels!r}")
    return ToySection(channels)


@pytest.fixture
def toynet():
    spec = register(NetworkSpec(
        name="toynet", title="ToyNet", mmpose_type="ToyNet", section_type=ToySection, parse=_toy_parse,
        dump=lambda s: {"type": "ToyNet", "extra": {"channels": s.channels}}, build=lambda s: nn.Identity(),
        out_channels=lambda s: (s.channels,), out_strides=lambda s: (4,), counts=lambda s, hw: (),
        parts=lambda s: ()))
    yield spec
    unregister("toynet")


TOY_MODEL = """model = dict(
    type='TopdownPoseEstimator',
    backbone=dict(type='ToyNet', in_channels=3, extra=dict(channels=40)),
    head=dict(type='HeatmapHead', in_channels=40, out_channels=21, deconv_out_channels=None, decoder=codec))
"""


def test_registered_network(toynet, tmp_path):
    data = read_mmpose_text(PREFIX + TOY_MODEL)
    cfg = hc.config_from_mmpose(data["model"], codec=data["codec"], name="toy")
    assert cfg == NetworkConfig(arch="toynet", backbone=ToySection(40), head=hc.HeadConfig(kind="v1", outputs=21),
                                input_hw=(256, 192), name="toy")
    bare = hc.config_from_mmpose(data["model"]["backbone"])
    assert bare.arch == "toynet" and bare.head is None and bare.backbone == ToySection(40)
    path = tmp_path / "toy_config.py"
    path.write_text(PREFIX + TOY_MODEL)
    assert hc.load_config(path) == NetworkConfig(arch="toynet", backbone=ToySection(40),
                                                 head=hc.HeadConfig(kind="v1", outputs=21), name="toy_config")
    # 0.x head on the same backbone, its final conv 3x3
    zero = read_mmpose_text(PREFIX + TOY_MODEL.replace("TopdownPoseEstimator", "TopDown").replace(
        "head=dict(type='HeatmapHead', in_channels=40, out_channels=21, deconv_out_channels=None, decoder=codec)",
        "keypoint_head=dict(type='TopdownHeatmapSimpleHead', in_channels=40, out_channels=21, num_deconv_layers=0, "
        "extra=dict(final_conv_kernel=3))"))["model"]
    assert hc.config_from_mmpose(zero).head == hc.HeadConfig(kind="v1", outputs=21, final_conv_kernel=3)


@pytest.mark.parametrize("old, new, field", [
    ("in_channels=40, out_channels", "in_channels=32, out_channels", "model.head.in_channels"),
    ("extra=dict(channels=40)", "extra=dict(channels=-1)", "model.backbone.extra.channels"),
    ("in_channels=3, extra", "in_chanels=3, extra", "model.backbone.in_chanels"),
    ("out_channels=21", "out_channels=0", "model.head.out_channels"),
])
def test_registered_network_errors(toynet, old, new, field):
    model = read_mmpose_text(PREFIX + TOY_MODEL.replace(old, new))["model"]
    with pytest.raises(hc.ConfigError) as info:
        hc.config_from_mmpose(model)
    assert info.value.field == field, str(info.value)


def test_unknown_type_lists_registered_networks(toynet):
    model = _w32_model(MODEL_1X.replace("type='HRNet'", "type='ResNet'"))
    with pytest.raises(hc.ConfigError, match=r"^model.backbone.type: .*supported: HRNet, .*ToyNet"):
        hc.config_from_mmpose(model)


# ---- the accepted language ------------------------------------------------------------------------------
def test_expression_language():
    text = '''"""A docstring."""
# a comment
a = 1
b = c = -2.5
s = 'x' + 'y' 'z'
t = (1, ) + (2, 3)
items = [1, [2, 3]] + [{'k': None, 7: True}]
d = dict(a=a, s=s, nested=dict(t=t))
first = items[1][-1]
key = d['nested']['t'][0]
f = f'{s}/{a}/{b}.json'
base = {{_base_.dataset_info}}
a = 'rebound'
'''
    data = read_mmpose_text(text)
    assert data == {"a": "rebound", "b": -2.5, "c": -2.5, "s": "xyz", "t": (1, 2, 3),
                    "items": [1, [2, 3], {"k": None, 7: True}], "d": {"a": 1, "s": "xyz", "nested": {"t": (1, 2, 3)}},
                    "first": 3, "key": 1, "f": "xyz/1/-2.5.json", "base": BaseRef("dataset_info")}
    assert data["d"]["nested"]["t"] is not data["t"] and data["d"]["s"] == data["s"]
    assert read_mmpose_text("") == {} and read_mmpose_text("# only a comment\n") == {}
    assert read_mmpose_text("\ufeffx = 1\r\ny = 2\r\n") == {"x": 1, "y": 2}


TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
LITERALS = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**18) + 1, 10**18 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(TEXT, max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple)
    | st.dictionaries(st.text(TEXT, max_size=8) | st.integers(-5, 5), inner, max_size=4),
    max_leaves=20)
IDENT = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(lambda s: not keyword.iskeyword(s))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=LITERALS, keys=st.lists(IDENT, min_size=1, max_size=4, unique=True))
def test_literals_round_trip(value, keys):
    text = f"x = {value!r}\ny = dict({', '.join(f'{k}=x' for k in keys)})\n"
    data = read_mmpose_text(text)
    assert data["x"] == value and type(data["x"]) is type(value)
    assert data["y"] == {k: value for k in keys}


TOKENS = ["x", "=", "dict", "(", ")", "[", "]", "{", "}", ",", "+", "-", "*", "1", "'a'", "f'{x}'", ".", "a", "=",
          ":", "\n", " ", "lambda", "import", "os", "__import__", "**", "_base_", "if", "for", "in", "0x" + "f" * 30,
          "1e999", "\\", "#", "\t", "\x00", "'\\ud800'", "(y:=1)"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_token_soup_is_a_dict_or_one_line_refusal(tokens):
    try:
        assert isinstance(read_mmpose_text("".join(tokens), "soup.py"), dict)
    except MmposeConfigError as err:
        assert "\n" not in str(err) and str(err).startswith("soup.py")


# ---- hostile configs -------------------------------------------------------------------------------------
def _laughs() -> str:
    lines = ["a0 = [" + ", ".join(["'lol'"] * 100) + "]"]
    lines += [f"a{i} = [" + ", ".join([f"a{i - 1}"] * 10) + "]" for i in range(1, 6)]
    return "\n".join(lines) + "\n"


def _hostile(sentinel: str) -> dict[str, tuple[str | bytes, tuple[str, ...]]]:
    """name -> (file content, words its one-line refusal holds)."""
    p = PREFIX
    nested = "a0 = [[[[[[[[1]]]]]]]]\n" + "".join(f"a{i} = [[[[[[[[a{i - 1}]]]]]]]]\n" for i in range(1, 6))
    return {
        "import": (p + "import os\n", ("line 7", "an import", "nothing was executed")),
        "from_import": (p + "from os import system\n", ("line 7", "an import")),
        "dunder_import": (p + f"x = __import__('os').system('touch {sentinel}')\n",
                          ("line 7", "a call to '__import__(...).system'", "nothing was executed")),
        "bare_system_call": (p + f"__import__('os').system('touch {sentinel}')\n", ("line 7", "a call to")),
        "open": (p + "x = open('/etc/passwd')\n",
                 ("line 7: a call to 'open' is not allowed in a config", "nothing was executed")),
        "exec": (p + f"exec(\"import os; os.system('touch {sentinel}')\")\n", ("line 7", "a call to 'exec'")),
        "eval_in_dict": (p + f"model = dict(type=eval(\"__import__('os').system('touch {sentinel}')\"))\n",
                         ("line 7", "a call to 'eval'")),
        "other_call": (p + "x = list(range(17))\n", ("line 7", "a call to 'list'")),
        "positional_dict": (p + "x = dict([('a', 1)])\n", ("line 7", "keyword arguments only")),
        "lambda": (p + "f = lambda: 0\n", ("line 7", "a lambda")),
        "fstring_call": (p + f"x = f'{{__import__(\"os\").system(\"touch {sentinel}\")}}'\n",
                         ("line 7", "f-string placeholder")),
        "fstring_conversion": (p + "x = f'{data_root!r}'\n", ("line 7", "f-string")),
        "fstring_unbound": (p + "x = f'{nope}/a'\n", ("line 7", "f-string", "'nope'")),
        "attribute": (p + "x = codec.keys\n", ("line 7", "attribute access (codec.keys)")),
        "subclasses": (p + "x = ().__class__.__bases__[0].__subclasses__()\n", ("line 7", "a call to")),
        "list_comp": (p + "x = [i for i in range(3)]\n", ("line 7", "a comprehension")),
        "dict_comp": (p + "x = {k: 1 for k in 'ab'}\n", ("line 7", "a comprehension")),
        "generator": (p + "x = tuple(i for i in 'ab')\n", ("line 7", "a call to 'tuple'")),
        "walrus": (p + "x = [(y := 1)]\n", ("line 7", "(:=)")),
        "star": (p + "x = [*data_root]\n", ("line 7", "'*' unpacking")),
        "double_star_call": (p + "x = dict(**codec)\n", ("line 7", "'**' unpacking")),
        "double_star_dict": (p + "x = {**codec}\n", ("line 7", "'**' unpacking")),
        "if": (p + "if True:\n    x = 1\n", ("line 7", "an 'if' statement")),
        "for": (p + "for i in [1]:\n    x = i\n", ("line 7", "a 'for' loop")),
        "while": (p + "while False:\n    pass\n", ("line 7", "a 'while' loop")),
        "def": (p + "def f():\n    return 1\n", ("line 7", "a function definition")),
        "decorated": (p + "@dict\ndef f():\n    return 1\n", ("line", "a function definition")),
        "class": (p + "class A:\n    pass\n", ("line 7", "a class definition")),
        "with": (p + "with open('x') as fh:\n    pass\n", ("line 7", "a 'with' statement")),
        "try": (p + "try:\n    x = 1\nexcept Exception:\n    pass\n", ("line 7", "a 'try' statement")),
        "augmented": (p + "data_root += 'x'\n", ("line 7", "an augmented assignment")),
        "attribute_target": (p + "codec.x = 1\n", ("line 7", "an assignment to an attribute")),
        "item_target": (p + "codec['x'] = 1\n", ("line 7", "an assignment to an item")),
        "tuple_target": (p + "a, b = 1, 2\n", ("line 7", "an unpacking assignment")),
        "unbound": (p + "x = os\n", ("line 7", "'os' is not bound")),
        "set": (p + "x = {1, 2}\n", ("line 7", "a set")),
        "base_attribute_chain": (p + "x = {{os.system}}\n", ("line 7", "a set")),
        "multiply": (p + "x = [0] * 10**9\n", ("line 7", "the operator '*'")),
        "comparison": (p + "x = 1 < 2\n", ("line 7", "a comparison")),
        "conditional": (p + "x = 1 if data_root else 2\n", ("line 7", "a conditional expression")),
        "mixed_plus": (p + "x = data_root + 1\n", ("line 7", "+ joins two strings")),
        "big_int": (p + "x = 0x" + "f" * 100 + "\n", ("line 7", "more than 18 digits")),
        "infinite_float": (p + "x = 1e999\n", ("line 7", "not a finite number")),
        "complex": (p + "x = 1j\n", ("line 7", "a complex number")),
        "bytes": (p + "x = b'abc'\n", ("line 7", "a bytes literal")),
        "duplicate_key": (p + "x = {'a': 1, 'a': 2}\n", ("line 7", "duplicate key 'a'")),
        "float_key": (p + "x = {1.5: 1}\n", ("line 7", "dict keys must be")),
        "variable_index": (p + "x = codec[data_root]\n", ("line 7", "only a string or integer literal")),
        "missing_key": (p + "x = codec['nope']\n", ("line 7", "no key 'nope'")),
        "surrogate": (p + "x = '\\ud800'\n", ("line 7", "unpaired surrogate")),
        "nul_byte": (p + "x = 1\x00\n", ("line 7", "NUL")),
        "bare_expression": (p + "codec\n", ("line 7", "a bare expression")),
        "syntax_warning": (p + "x = 1if 2 else 3\n", ("line 7", "a conditional expression")),
        "syntax_error": (p + "model = dict(\n", ("line 7", "invalid Python", "never closed")),
        "indentation": (p + "  x = 1\n", ("line 7", "invalid Python")),
        "repeated_keyword": (p + "x = dict(a=1, a=2)\n", ("line 7", "keyword argument repeated: a")),
        "non_utf8": (p.encode() + b"x = '\xff\xfe'\n", ("line 7", "not UTF-8 text")),
        "brackets_100000": (p + "x = " + "[" * 100_000 + "]" * 100_000 + "\n", ("line 7", "invalid Python")),
        "dict_calls_100000": (p + "x = " + "dict(a=" * 100_000 + "1" + ")" * 100_000 + "\n", ("line 7",)),
        "unary_100000": (p + "x = " + "-" * 100_000 + "1\n", ("line 7", "too deeply")),
        "plus_chain_100000": (p + "x = " + " + ".join(["'a'"] * 100_000) + "\n", ("line 7", "too deeply")),
        "attribute_chain_100000": (p + "x = a" + ".b" * 100_000 + "\n", ("line 7", "too deeply")),
        "brackets_150": (p + "x = " + "[" * 150 + "]" * 150 + "\n", ("line 7", "nested more than 100 levels")),
        "value_depth_via_names": (p + nested, ("line 10", "nested deeper than 32")),
        "list_doubling": (p + "a = [" + "0, " * 1000 + "]\n" + "a = a + a\n" * 30,
                          ("line 14", "of 128,000 entries")),
        "string_doubling": (p + "s = '" + "x" * 1000 + "'\n" + "s = s + s\n" * 30,
                            ("line 14", "string of 128,000 characters")),
        "billion_laughs": (p + _laughs(), ("line 11", "more than 1,000,000 values")),
        "statements_1001": ("x = 1\n" * 1001, ("line 1001", "more than 1000 statements")),
        "huge_file_5mb": ("x = 1\n" + "# padding\n" * 500_000, ("at most 1,000,000",)),
        "model_missing": (p, ("has no top-level model",)),
        "model_not_a_dict": (p + "model = [1, 2]\n", ("model: must be a dict(...), got list",)),
        "unknown_backbone": (p + MODEL_1X.replace("type='HRNet'", "type='ResNet'"),
                             ("model.backbone.type", "unknown backbone 'ResNet'", "HRNet")),
        "head_channels": (p + MODEL_1X.replace("in_channels=32,", "in_channels=64,"), ("model.head.in_channels",)),
    }


HOSTILE = sorted(_hostile("SENTINEL"))
MODEL_LEVEL = {"model_missing", "model_not_a_dict", "unknown_backbone", "head_channels"}  # read, then refused


def _write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / f"{name}.py"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    return path


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_configs_are_refused_by_the_library(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    sentinel = tmp_path / "SENTINEL"
    content, words = _hostile(str(sentinel))[case]
    path = _write(tmp_path, case, content)
    start = time.process_time()
    with pytest.raises(hc.ConfigError) as info:
        hc.load_config(path)
    assert time.process_time() - start < 5
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    assert message.count(str(path)) == 1, message
    for w in words:
        assert w in message, message
    assert not sentinel.exists()
    if isinstance(content, str) and case not in MODEL_LEVEL:  # the text reader alone refuses it too
        with pytest.raises(MmposeConfigError):
            read_mmpose_text(content, "x.py")
        assert not sentinel.exists()


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_configs_through_the_cli(tmp_path, monkeypatch, capsys, case):
    monkeypatch.chdir(tmp_path)
    sentinel = tmp_path / "SENTINEL"
    content, words = _hostile(str(sentinel))[case]
    path = _write(tmp_path, case, content)
    start = time.process_time()
    rc = main(["inspect", str(path)])
    assert time.process_time() - start < 5
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("hrnet-explorer inspect: error: "), err
    assert "Traceback" not in err and str(path) in err and len(err) < 600, err
    for w in words:
        assert w in err, err
    assert not sentinel.exists()


def test_file_errors(tmp_path, capsys):
    folder = tmp_path / "folder.py"
    folder.mkdir()
    for path, words in ((tmp_path / "nope.py", "no such config file"), (folder, "is a folder")):
        with pytest.raises(MmposeConfigError, match=words):
            read_mmpose_file(path)
        assert main(["inspect", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err
    _refused_text("x = 'a'\n" * 200_000, "at most 1,000,000")
    _refused_text(b"x = 1".decode() + "\x00", "line 1", "NUL")


def test_cli_inspect_of_the_shared_w32_config(capsys):
    assert main(["inspect", str(W32_PY), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == W32_PARAMS and out["input_hw"] == [256, 192] and out["output_shapes"] == [[1, 17, 64, 48]]


@pytest.mark.parametrize("case", ["dunder_import", "syntax_warning"])
def test_console_process_prints_one_line(tmp_path, case):
    """In a real process (no pytest capture of warnings): exit 2, one line on stderr, nothing else."""
    sentinel = tmp_path / "SENTINEL"
    content, words = _hostile(str(sentinel))[case]
    path = _write(tmp_path, case, content)
    proc = subprocess.run([sys.executable, "-m", "analysis.cli", "inspect", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.count("\n") == 1 and all(w in proc.stderr for w in words), proc.stderr
    assert not sentinel.exists()
