"""hrnet_core.graph: one description of the built model; its parts cover the state_dict, its shapes are the
model's, its keys are the feature-map keys, and its feature_info is timm's."""

from __future__ import annotations

import pytest
import torch
from conftest import PRESETS, ROOT

import hrnet_core as hc
from hrnet_core.graph import architecture

TINY = {"family": "pose", "input_size": [64, 64], "width": 4, "modules": [1, 2, 1], "blocks": 1,
        "stage1": {"blocks": 1, "planes": 8}, "head": {"kind": "v1", "outputs": 3}}


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_parts_cover_the_state_dict_and_the_params(path):
    cfg = hc.load_config(path)
    g = architecture(cfg)
    sd = hc.build_on_meta(cfg).state_dict()
    assert [k for k in sd if g.owner(k) is None] == []
    assert sum(p.params for p in g.parts) == hc.count_params(cfg)
    assert len({p.key for p in g.parts}) == len(g.parts)
    # forward_intermediates keys are the graph's maps, in order
    assert [m.key for m in g.maps][:2] == ["stem", "layer1"]
    assert g.maps[-1].shape[1] == cfg.stages[-1].out_channels[g.maps[-1].branch]


def test_shapes_keys_and_edges_of_a_small_model():
    cfg = hc.parse_mapping(TINY)
    g = architecture(cfg)
    model = hc.build_model(cfg).eval()
    with torch.no_grad():
        inter = model.forward_intermediates(torch.zeros(1, 3, 64, 64))
    assert [m.key for m in g.maps] == list(inter)
    assert [m.shape for m in g.maps] == [tuple(v.shape) for v in inter.values()]
    f = g.part("stage3.module1.fuse.0<-1")
    assert (f.kind, f.prefix, f.branch, f.source, f.resolution) == ("fusion", "stage3.1.fuse_layers.0.1", 0, 1, 8)
    assert f.in_shape == (1, 8, 8, 8) and f.out_shape == (1, 4, 8, 8)
    b = g.part("stage4.module0.branch3")
    assert (b.resolution, b.out_shape) == (32, (1, 32, 2, 2))
    assert ("stage3.module0.fuse.1<-0", "stage3.module1.branch1") in g.edges
    assert ("stage3.module0.branch0", "stage3.module0.fuse.1<-0") in g.edges
    assert g.parts[-1].key == "head.final_layer" and ("stage4.module0.fuse.0<-3", "head.final_layer") in g.edges
    # a bigger input: shapes follow
    assert architecture(cfg, (128, 128)).part("head.final_layer").out_shape == (1, 3, 32, 32)


def test_feature_info_is_the_models():
    for name in ("cls_hrnet_w18_small_v1", "seg_hrnetv2_w18_small_v1", "pose_hrnet_w32_256x192"):
        cfg = hc.load_config(ROOT / "configs" / f"{name}.yaml")
        model = hc.build_on_meta(cfg)
        assert architecture(cfg).feature_info() == [i.as_timm() for i in model.feature_info("branches")[1:]]


def test_higher_head_parts_in_forward_order():
    g = architecture(hc.load_config(ROOT / "configs" / "higherhrnet_w32_512.yaml"))
    heads = [p.key for p in g.of_kind("head")]
    assert heads == ["head.final_layers.0", "head.deconv_layers.0", "head.final_layers.1"]
    assert g.part("head.final_layers.1").resolution == 2
