"""The classic HRNet behind the network registry (``hrnet_core/networks/hrnet/``), as Lite-HRNet and HRFormer are:
its ``NetworkSpec`` parses and dumps mmpose's ``HRNet`` backbone dict, builds the backbone, counts it per part in
closed form (equal to fvcore's measured rows, part by part), plans its parts, switches its fusion and resizes it —
and every classic preset's section goes through it unchanged."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import NETWORK_PRESETS, PRESETS, SHARED

import hrnet_core as hc
from analysis.ablation.recipes import apply_model_overrides
from analysis.complexity import analyze
from hrnet_core.networks import hrnet, load_builtin, network_names, network_spec, spec_for_mmpose_type
from hrnet_core.networks.model_config import NetworkConfig
from hrnet_core.networks.views import backbone_of, spec_of

pytestmark = pytest.mark.usefixtures("one_torch_thread")
load_builtin()
SPEC = network_spec("hrnet")
ROOT_W32 = next(p for p in PRESETS if p.stem == "pose_hrnet_w32_256x192")
W32_MMPOSE = SHARED / "official" / "mmpose" / "td-hm_hrnet-w32_8xb64-210e_coco-256x192.py"


def _bare(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "type"}


def test_registered_like_the_other_networks():
    assert network_names()[0] == "hrnet" and SPEC is hrnet.SPEC
    assert spec_for_mmpose_type("HRNet") is SPEC
    cfg = hc.load_config(PRESETS[0])
    assert cfg.arch == "hrnet" and spec_of(cfg) is SPEC and isinstance(backbone_of(cfg), SPEC.section_type)
    lite = hc.load_config(NETWORK_PRESETS[0])
    assert spec_of(lite) is lite.spec and backbone_of(lite) is lite.backbone


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_classic_preset_round_trips_through_the_spec(path):
    cfg = hc.load_config(path)
    section = backbone_of(cfg)
    dumped = SPEC.dump(section)
    assert dumped["type"] == "HRNet" and SPEC.parse(_bare(dumped), "backbone") == section
    assert hrnet.with_section(cfg, section) == cfg
    assert SPEC.fusion_schedule(section) == cfg.fusion_schedule
    assert SPEC.with_fusion(section, "final_only") == backbone_of(cfg.with_fusion("final_only"))


def test_our_knobs_beyond_mmpose_round_trip():
    cfg = hc.load_config(ROOT_W32).with_fusion("final_only")
    section = hrnet.resize(backbone_of(cfg), {"stem": 32})
    dumped = SPEC.dump(section)
    assert dumped["extra"]["stem_channels"] == 32
    assert dumped["extra"]["stage3"]["with_fuse"] == [False] * cfg.stages[1].modules
    assert SPEC.parse(_bare(dumped), "backbone") == section
    assert "with_fuse" not in SPEC.dump(backbone_of(hc.load_config(ROOT_W32)))["extra"]["stage3"]


def test_the_shared_mmpose_hrnet_config_parses_to_the_same_backbone():
    text = W32_MMPOSE.read_text()
    cfg = hc.load_config(W32_MMPOSE)
    from hrnet_core.mmpose_config import read_mmpose_text

    model = read_mmpose_text(text, str(W32_MMPOSE))["model"]
    assert SPEC.parse(_bare(model["backbone"]), "model.backbone") == backbone_of(cfg)


def test_backbone_forward_and_names():
    cfg = hc.load_config(ROOT_W32).with_input((64, 64))
    section = backbone_of(cfg)
    backbone = SPEC.build(section).eval()
    full = hc.build_model(cfg).eval()
    head = {k for k in full.state_dict() if k.startswith("final_layer.")}
    assert set(backbone.state_dict()) == set(full.state_dict()) - head and head
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 64, 64))
    assert isinstance(out, list) and len(out) == len(SPEC.out_channels(section))
    assert tuple(out[0].shape) == (2, SPEC.out_channels(section)[0], 64 // SPEC.out_strides(section)[0], 64 // 4)
    full.load_state_dict({**backbone.state_dict(), **{k: v for k, v in full.state_dict().items() if k in head}})
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)
        assert torch.equal(full.forward_features(x)[0], backbone(x)[0])



def _fvcore_per_part(cfg) -> dict[str, tuple[int, int, int]]:
    """fvcore's measured rows (``analyze(backend="fvcore")``) summed by the registry's part keys."""
    df = analyze(cfg, backend="fvcore").breakdown
    df = df[df["component"] != "head"]
    out: dict[str, list[int]] = {}
    for r in df.itertuples():
        src = None if pd.isna(r.source_branch) else int(r.source_branch)
        kind = {"branch_blocks": "branch"}.get(r.component, r.component)
        if kind == "fusion" and src is None:
            continue
        snum = int(r.stage[len("stage"):]) if kind in ("transition", "branch", "fusion") else None
        key = hc.keys.part_key(kind, snum, None if pd.isna(r.module) else int(r.module),
                               None if pd.isna(r.branch) else int(r.branch), src)
        t = out.setdefault(key, [0, 0, 0])
        t[0] += int(r.params)
        t[1] += int(r.macs)
        t[2] += int(r.flops)
    return {k: tuple(v) for k, v in out.items()}


LAST_UNFUSED = ((True,), (True,) * 4, (True, True, False))  # branches 1..3 of the last module never reach branch 0


@pytest.mark.parametrize("schedule", ["all", LAST_UNFUSED], ids=["all", "last_unfused"])
def test_closed_form_per_part_equals_fvcore(schedule):
    cfg = hc.load_config(ROOT_W32).with_input((64, 64)).with_fusion(schedule)
    counts = SPEC.counts(backbone_of(cfg), cfg.input_hw)
    assert [c.key for c in counts] == [p.key for p in SPEC.parts(backbone_of(cfg))]
    measured = _fvcore_per_part(cfg)
    ours = {c.key: (c.params, c.conv_linear_macs, c.fvcore_flops) for c in counts}
    assert {k: v for k, v in ours.items() if any(v)} == {k: v for k, v in measured.items() if any(v)}
    model = SPEC.build(backbone_of(cfg))
    assert sum(c.params for c in counts) == sum(p.numel() for p in model.parameters())
    if schedule == LAST_UNFUSED:  # run in PyTorch, dropped from fvcore's trace
        assert any(c.fvcore_flops == 0 and c.conv_linear_macs > 0 for c in counts)


def test_parts_own_every_backbone_parameter_once():
    section = backbone_of(hc.load_config(ROOT_W32))
    plans = SPEC.parts(section)
    model = SPEC.build(section)
    for name, _ in model.named_parameters():
        assert sum(any(name.startswith(q + ".") for q in p.prefixes) for p in plans) == 1, name
    assert {p.kind for p in plans} == {"stem", "layer1", "transition", "branch", "fusion"}
    assert {p.block for p in plans if p.kind == "branch"} == {"BASIC"}


def test_resize_is_the_recipes_size_override():
    cfg = hc.load_config(ROOT_W32)
    small = apply_model_overrides(cfg, {"width": 8, "blocks": 1, "stem": 16, "stage1_blocks": 1, "stage1_planes": 16})
    assert small.name == f"{cfg.name}_resized" and small.head == cfg.head
    assert [st.channels for st in small.stages] == [(8, 16), (8, 16, 32), (8, 16, 32, 64)]
    assert all(b == 1 for st in small.stages for b in st.blocks)
    assert (small.stem.channels, small.stage1.blocks, small.stage1.planes) == (16, 1, 16)
    assert small.fusion_schedule == cfg.fusion_schedule


def test_one_description_per_model():
    section = backbone_of(hc.load_config(ROOT_W32))
    with pytest.raises(hc.ConfigError, match="arch: the classic HRNet's model is an HRNetConfig"):
        NetworkConfig(arch="hrnet", backbone=section)
    assert isinstance(hc.load_config_text("arch: hrnet\n" + ROOT_W32.read_text()), hc.HRNetConfig)


@pytest.mark.parametrize("edit, field", [
    (lambda e: e["stage3"].update(with_fuse=[True]), "backbone.extra.stage3.with_fuse"),
    (lambda e: e["stage3"].update(with_fuse="yes"), "backbone.extra.stage3.with_fuse"),
    (lambda e: e["stage2"].update(num_channels=[32]), "backbone.extra.stage2"),
    (lambda e: e.update(stem_channels=0), "backbone.extra.stem_channels"),
    (lambda e: e.update(stage5={}), "backbone.extra.stage5"),
])
def test_bad_backbone_dicts_name_the_field(edit, field):
    dumped = SPEC.dump(backbone_of(hc.load_config(ROOT_W32)))
    edit(dumped["extra"])
    with pytest.raises(hc.ConfigError) as err:
        SPEC.parse(_bare(dumped), "backbone")
    assert err.value.field.startswith(field), err.value.field
