"""timm-compatible feature maps: ``HRNet.features_only`` / ``feature_info`` against timm's
``features_only=True`` and ``forward_features`` on the same weights where timm is installed, and against
shapes derived from the config otherwise."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, import_timm

import hrnet_core as hc
from hrnet_core.heads import CLS_FEATURES, cls_head_channels

CLS = {"cls_hrnet_w18_small_v1": "hrnet_w18_small", "cls_hrnet_w18_small_v2": "hrnet_w18_small_v2"}


def _model(preset: str):
    cfg = hc.load_config(ROOT / "configs" / f"{preset}.yaml")
    torch.manual_seed(0)
    return cfg, hc.build_model(cfg, init="default").eval()


def _expected_shapes(cfg: hc.HRNetConfig, location: str, pre_pool: bool, n: int = 1) -> list[tuple[int, ...]]:
    h, w = cfg.input_hw
    shapes = [(n, cfg.stem.channels, h // 2, w // 2)]
    k_range = range(cfg.num_branches)
    if location == "incre":
        shapes += [(n, 4 * c, h // 4 // 2**k, w // 4 // 2**k) for k, c in zip(k_range, cls_head_channels(cfg.num_branches))]
    else:
        outs = cfg.fuse_outputs(len(cfg.stages) - 1, cfg.stages[-1].modules - 1) or cfg.num_branches
        shapes += [(n, c, h // 4 // 2**k, w // 4 // 2**k) for k, c in zip(k_range, cfg.stages[-1].out_channels[:outs])]
    if pre_pool:
        shapes.append((n, CLS_FEATURES, h // 4 // 2 ** (cfg.num_branches - 1), w // 4 // 2 ** (cfg.num_branches - 1)))
    return shapes


@pytest.mark.parametrize("preset", list(CLS))
def test_cls_features_match_the_config_and_the_head(preset):
    cfg, model = _model(preset)
    x = torch.randn(2, 3, *cfg.input_hw)
    with torch.no_grad():
        maps = model.features_only(x, pre_pool=True)
        branches = model.forward_features(x)
        logits = model(x)
    assert [tuple(m.shape) for m in maps] == _expected_shapes(cfg, "incre", True, 2)
    assert maps[-1].shape[-2:] == (7, 7) and maps[-1].shape[1] == 2048  # the pre-pool map at 224x224
    info = model.feature_info(pre_pool=True)
    assert [(i.channels, i.reduction) for i in info] == [(s[1], cfg.input_hw[0] // s[2]) for s in _expected_shapes(
        cfg, "incre", True)]
    assert [i.module for i in info][1:5] == [f"incre_modules.{k}" for k in range(4)]
    with torch.no_grad():
        for k, branch in enumerate(branches):
            assert torch.equal(maps[1 + k], model.incre_modules[k](branch))
        assert torch.equal(model.classifier(F.adaptive_avg_pool2d(maps[-1], 1).flatten(1)), logits)


@pytest.mark.parametrize("preset", ["pose_hrnet_w32_256x192", "seg_hrnetv2_w18_small_v1"])
def test_branch_features_for_every_family(preset):
    cfg = hc.load_config(ROOT / "configs" / f"{preset}.yaml").with_input((64, 64))
    model = hc.build_model(cfg).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = model.features_only(x, location="branches")
        feats = model.forward_features(x)
    assert [tuple(m.shape) for m in maps] == _expected_shapes(cfg, "branches", False)
    assert all(torch.equal(a, b) for a, b in zip(maps[1:], feats))
    assert len(model.feature_info("branches")) == len(maps)
    with pytest.raises(ValueError, match="classification head"):
        model.features_only(x)


@pytest.mark.parametrize("preset, variant", list(CLS.items()))
def test_equal_to_timm_on_the_same_weights(preset, variant):
    timm = import_timm()
    cfg, model = _model(preset)
    theirs = timm.create_model(variant, pretrained=False, features_only=True).eval()
    missing, unexpected = theirs.load_state_dict(model.state_dict(), strict=False)
    assert not missing
    full = timm.create_model(variant, pretrained=False).eval()
    full.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, 3, *cfg.input_hw)
    with torch.no_grad():
        ours = model.features_only(x, pre_pool=True)
        want = theirs(x) + [full.forward_features(x)]
    assert len(ours) == len(want) and all(torch.equal(a, b) for a, b in zip(ours, want))
    assert [i.as_timm()["num_chs"] for i in model.feature_info()] == theirs.feature_info.channels()
    assert [i.reduction for i in model.feature_info()] == theirs.feature_info.reduction()
