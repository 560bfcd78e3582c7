"""A head kind added in one place (here: inside this test) works everywhere: the model, its parameters, the
analytic counts (= fvcore's), the diagram at every level and the feature maps, with no other file touched."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from conftest import ROOT
from streamlit.testing.v1 import AppTest
from torch import nn

import hrnet_core as hc
from analysis.complexity import analytic_counts, analyze
from analysis.diagram import build as dg
from analysis.features import capture
from hrnet_core.graph import architecture
from hrnet_core.heads import HeadSpec, head_kinds, register, unregister

TOY = {"family": "pose", "input_size": [64, 64], "width": 4, "modules": [1, 1, 1], "blocks": 1,
       "stage1": {"blocks": 1, "planes": 8}, "head": {"kind": "toy", "outputs": 5}}


class ToyHead(nn.Module):
    """Branch 0 -> 3x3 conv + BN + ReLU -> 1x1 conv: ``(N, outputs, H/4, W/4)``."""

    def __init__(self, in_channels: tuple[int, ...], outputs: int):
        super().__init__()
        self.toy_neck = nn.Sequential(nn.Conv2d(in_channels[0], 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                                      nn.ReLU(inplace=True))
        self.toy_out = nn.Conv2d(8, outputs, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.toy_out(self.toy_neck(feats[0]))


@pytest.fixture
def toy():
    register(HeadSpec("toy", lambda family, head, in_ch, align: ToyHead(in_ch, head.outputs), fields=("outputs",),
                      state_dict_names=("toy_neck", "toy_out"), reads_branch0=True))
    yield hc.load_config(TOY)
    unregister("toy")
    architecture.cache_clear()
    analytic_counts.cache_clear()


def test_unknown_kind_is_refused_until_registered():
    assert "toy" not in head_kinds()
    with pytest.raises(hc.ConfigError, match="head.kind"):
        hc.load_config(TOY)


def test_model_and_params(toy):
    model = hc.build_model(toy).eval()
    keys = list(model.state_dict())
    assert [k for k in keys if k.startswith("toy_")] == [
        "toy_neck.0.weight", "toy_neck.1.weight", "toy_neck.1.bias", "toy_neck.1.running_mean",
        "toy_neck.1.running_var", "toy_neck.1.num_batches_tracked", "toy_out.weight", "toy_out.bias"]
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 5, 16, 16)
    assert hc.count_params(toy) == sum(p.numel() for p in model.parameters())
    # the last module fuses into branch 0 only, as for the official V1 head (reads_branch0)
    assert len(model.stage4[-1].fuse_layers) == 1
    g = architecture(toy)
    assert [p.key for p in g.of_kind("head")] == ["head.toy_neck", "head.toy_out"]
    assert [layer.name for layer in g.head_layers] == ["toy_neck.0", "toy_neck.1", "toy_neck.2", "toy_out"]


def test_analytic_counts_equal_fvcore(toy):
    a, f = analyze(toy), analyze(toy, backend="fvcore")
    for field in ("params", "conv_linear_macs", "fvcore_flops", "torch_flops", "activations"):
        assert getattr(a, field) == getattr(f, field), field
    assert a.params == hc.count_params(toy)

    def per_module(rep):
        df = rep.breakdown
        df = df[df["component"] == "head"]
        return {(r.name, r.operator): (r.params, r.flops, r.macs) for r in df.itertuples()}

    cols = set(a.breakdown.columns)
    assert {"name", "operator"} <= cols, cols
    head_a, head_f = per_module(a), per_module(f)
    assert head_a == head_f
    assert ("toy_neck.0", "conv") in head_a and ("toy_out", "conv") in head_a


def _drawn(counts: Counter) -> dict:
    return {k: v for k, v in counts.items() if v and k not in ("layout", "header")}  # layout aids are not parts


def test_diagram_every_level(toy):
    for level in ("stage", "module"):
        source = dg.build_diagram(toy, level=level).source
        counts = dg.count_classes(source)
        exp = dg.expected_counts(toy, level)
        assert _drawn(counts["nodes"]) == exp["nodes"] and exp["nodes"]["head"] == 2
        assert _drawn(counts["edges"]) == exp["edges"] and exp["edges"]["head"] == 3  # branch 0 -> neck -> out -> output
        assert "toy_neck" in source and "toy_out" in source
    last = dg.module_names(toy)[-1]
    block = dg.count_classes(dg.build_diagram(toy, level="block", module=last).source)
    assert _drawn(block["nodes"]) == dg.expected_counts(toy, "block", last)["nodes"]


def test_feature_maps(toy):
    model = hc.build_model(toy).eval()
    image = np.full((80, 60, 3), 128, dtype=np.uint8)
    cap = capture(model, toy, image, device="cpu")
    with torch.no_grad():
        keys = list(model.forward_intermediates(torch.zeros(1, 3, 64, 64)))
    assert list(cap.branches) == keys == [m.key for m in architecture(toy).maps]
    last = cap.branches[keys[-1]]
    assert (last.stage, last.module, last.branch) == ("stage4", "stage4.module0", 0)
    assert cap.head.kind == "heatmaps" and cap.head.shapes == ((1, 5, 16, 16),)


def test_build_page_offers_a_registered_kind_and_its_outputs_control(toy, app_dirs):
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180).run()
    assert "toy" in at.selectbox(key="b_head_kind").options
    at.selectbox(key="b_head_kind").set_value("toy").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state.cfg.head.kind == "toy"
    at.number_input(key="b_head_out").set_value(7).run()  # the toy reads ``outputs``: its control is shown
    assert at.session_state.cfg.head.outputs == 7
