"""Lite-HRNet (``hrnet_core.networks.litehrnet``): mmpose 1.x ``LiteHRNet`` numerics on the shared fixture, the
closed-form counts against the published figures and fvcore, the parts plan, config errors and ``with_cp``."""

from __future__ import annotations

import copy
import json
import logging
import random

import pytest
import torch
from conftest import SHARED

import hrnet_core.networks.litehrnet as lite
from hrnet_core.config import ConfigError
from hrnet_core.networks.litehrnet import modules as lite_modules
from hrnet_core.networks.registry import network_spec, spec_for_mmpose_type

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FIXTURE = SHARED / "fixtures" / "family" / "litehrnet_18"
FIELD = "model.backbone"


def _meta() -> dict:
    return json.loads((FIXTURE / "meta.json").read_text())


def _sub(section, **spec):
    """``section`` with some ``stages_spec`` tuples replaced."""
    from dataclasses import replace

    return replace(section, stages_spec=replace(section.stages_spec, **spec))


def _naive18():
    return _sub(lite.lite_hrnet_18(), module_type=("NAIVE",) * 3)


def _corner():
    """Stem widening (out > stem, expand 2), branches 3 -> 2 -> 1 (outputs nobody reads: fvcore's trace drops
    them), LITE then NAIVE, a stage without fusion, a one-branch NAIVE stage, no head, 1 input channel."""
    return lite.parse({
        "in_channels": 1,
        "extra": {"stem": {"stem_channels": 16, "out_channels": 24, "expand_ratio": 2}, "num_stages": 3,
                  "stages_spec": {"num_modules": [2, 1, 1], "num_branches": [3, 2, 1], "num_blocks": [2, 1, 2],
                                  "module_type": ["LITE", "NAIVE", "NAIVE"], "with_fuse": [True, False, True],
                                  "reduce_ratios": [4, 8, 8], "num_channels": [[16, 24, 32], [8, 16], [12]]},
                  "with_head": False}}, FIELD)


def _random(seed: int):
    rng = random.Random(seed)
    ns = rng.randint(1, 3)
    nbs = [rng.randint(1, 4) for _ in range(ns)]
    sc = rng.choice((8, 16))
    return lite.parse({
        "type": "LiteHRNet",
        "extra": {"stem": {"stem_channels": sc, "out_channels": sc + rng.choice((0, 0, 4)),
                           "expand_ratio": rng.choice((1, 2, 0.5))},
                  "num_stages": ns,
                  "stages_spec": {"num_modules": [rng.randint(1, 2) for _ in nbs], "num_branches": nbs,
                                  "num_blocks": [rng.randint(1, 2) for _ in nbs],
                                  "module_type": [rng.choice(("LITE", "NAIVE")) if nb > 1 else "NAIVE" for nb in nbs],
                                  "with_fuse": [rng.random() < 0.8 for _ in nbs],
                                  "reduce_ratios": [rng.choice((2, 4, 8)) for _ in nbs],
                                  "num_channels": [[rng.choice((8, 12, 16)) for _ in range(nb)] for nb in nbs]},
                  "with_head": rng.random() < 0.5}}, FIELD)


def _owners(parts, name: str) -> list[str]:
    return [p.key for p in parts if any(name == q or name.startswith(q + ".") for q in p.prefixes)]


# --- registry ---------------------------------------------------------------------------------------------------


def test_registered():
    spec = network_spec("litehrnet")
    assert spec is lite.SPEC and spec_for_mmpose_type("LiteHRNet") is spec
    assert spec.title == "Lite-HRNet" and spec.section_type is lite.LiteHRNetSection
    sec = lite.lite_hrnet_18()
    assert spec.out_channels(sec) == (40,) and spec.out_strides(sec) == (4,)
    dumped = spec.dump(sec)
    for knob in spec.knobs:  # every knob names an entry of the mmpose backbone dict
        node = dumped
        for part in knob.key.split("."):
            node = node[part]


# --- the shared fixture (mmpose's own code, random weights) -------------------------------------------------------


def test_fixture_float64_matches_mmpose():
    from safetensors.torch import load_file

    meta = _meta()
    section = lite.parse({k: v for k, v in meta["backbone"].items() if k != "type"}, FIELD)
    assert section == lite.lite_hrnet_18()
    model = lite.build(section)
    state = load_file(str(FIXTURE / "state_dict.safetensors"))
    model.load_state_dict(state, strict=True)
    keys = list(model.state_dict())
    # safetensors stores keys sorted; mmpose's order is in meta.json (and its module order below)
    assert len(keys) == meta["state_dict"]["key_count"] and set(keys) == set(state)
    assert keys[:5] == meta["state_dict"]["first_keys"] and keys[-3:] == meta["state_dict"]["last_keys"]
    tops = list(dict.fromkeys(k.split(".")[0] for k in keys))
    assert tops == ["stem", "transition0", "stage0", "transition1", "stage1", "transition2", "stage2", "head_layer"]
    assert sum(p.numel() for p in model.parameters()) == meta["params"]

    model.double().eval()
    x = torch.load(FIXTURE / "input.pt").double()
    expected = torch.load(FIXTURE / "outputs_float64.pt")
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, list) and len(out) == len(expected) == 1
    diffs = []
    for got, want in zip(out, expected):
        assert got.shape == want.shape == (1, 40, 32, 24)
        diffs.append((got - want.double()).abs().max().item())
    print(f"Lite-HRNet-18 vs mmpose float64: max abs diff {max(diffs):.3e}")
    assert max(diffs) < 1e-5


# --- counts ------------------------------------------------------------------------------------------------------


def test_exact_counts_at_256x192():
    meta = _meta()["complexity_256x192"]
    section = lite.lite_hrnet_18()
    c = lite.counts(section, (256, 192))
    assert [p.key for p in c] == [p.key for p in lite.parts(section)]
    params = sum(p.params for p in c)
    macs = sum(p.conv_linear_macs for p in c)
    assert (params, macs) == (1_130_072, 240_256_128) == (meta["params_backbone"], meta["conv_linear_macs_backbone"])
    assert sum(p.fvcore_flops for p in c) == meta["fvcore_total_backbone"] == 264_225_792
    head_params, head_macs = 40 * 17 + 17, 40 * 17 * 64 * 48  # mmpose HeatmapHead: one 1x1 conv 40 -> 17 on 64x48
    assert (params + head_params, macs + head_macs) == (1_130_769, 242_345_088)
    assert (params + head_params, macs + head_macs) == (meta["params_backbone_plus_head"],
                                                        meta["conv_linear_macs_backbone_plus_head"])
    assert params == sum(p.numel() for p in lite.build(section).parameters()) == lite.param_count(section)
    # mmpose calls fuse_layers[i][0] (i >= 1) twice: its MACs count twice, its parameters once
    twice = next(p for p in c if p.key == "stage0.module0.fuse.1<-0")
    assert twice.conv_linear_macs == 2 * (40 * 9 * 32 * 24 + 40 * 80 * 32 * 24)  # onto the 1/8 branch, 32x24
    assert all(p.attention_macs == 0 for p in c)


@pytest.fixture
def one_trace(monkeypatch):
    """fvcore traces the model once per analysis; FlopCountAnalysis and ActivationCountAnalysis of the same model
    and inputs share one trace here (the graph is only read)."""
    import fvcore.nn.jit_analysis as ja

    original = getattr(ja, "_get_scoped_trace_graph", None)
    if original is not None:
        cache: dict = {}

        def cached(module, inputs, aliases):
            key = (id(module), id(inputs))
            if key not in cache:
                cache[key] = original(module, inputs, aliases)
            return cache[key]

        monkeypatch.setattr(ja, "_get_scoped_trace_graph", cached)
    logging.getLogger("fvcore").setLevel(logging.ERROR)


CONFIGS = {
    "litehrnet18": lite.lite_hrnet_18,
    "naive18": _naive18,
    "litehrnet30": lite.lite_hrnet_30,
    "corner": _corner,
    "random0": lambda: _random(0),
    "random1": lambda: _random(1),
    "random2": lambda: _random(2),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_counts_match_fvcore_and_the_model(name, one_trace):
    from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis

    section = CONFIGS[name]()
    hw = (32, 32)  # the 1/4 map is 8x8: four branches 8, 4, 2, 1 fuse exactly
    model = lite.build(section).eval()
    inputs = (torch.randn(1, section.in_channels, *hw),)
    flops, acts = FlopCountAnalysis(model, inputs), ActivationCountAnalysis(model, inputs)
    for analysis in (flops, acts):
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
    plans, c = lite.parts(section), lite.counts(section, hw)
    assert [p.key for p in plans] == [p.key for p in c]
    assert sum(p.fvcore_flops for p in c) == flops.total()
    assert sum(p.activations for p in c) == acts.total()
    assert sum(p.params for p in c) == sum(p.numel() for p in model.parameters())
    by_flops, by_acts = flops.by_module(), acts.by_module()
    named = dict(model.named_parameters())
    for plan, count in zip(plans, c):
        assert count.fvcore_flops == sum(by_flops[q] for q in plan.prefixes), plan.key
        assert count.activations == sum(by_acts[q] for q in plan.prefixes), plan.key
        assert count.params == sum(v.numel() for n, v in named.items() if _owners([plan], n)), plan.key
    # conv MACs count every call, dead branches included: at least what fvcore's conv ops charge
    assert sum(p.conv_linear_macs for p in c) >= flops.by_operator()["conv"]
    if name == "litehrnet18":
        assert sum(p.conv_linear_macs for p in c) == flops.by_operator()["conv"]


# Lite-HRNet's published FLOPs (HRNet/Lite-HRNet README: torchstat "Flops", 2**20 units; COCO: 17 joints, MPII:
# 16), for (preset, input H x W, joints).
PUBLISHED_TORCHSTAT_M = {("litehrnet_18", (256, 192), 17): 205.2, ("litehrnet_18", (384, 288), 17): 461.6,
                         ("litehrnet_30", (256, 192), 17): 319.2, ("litehrnet_30", (384, 288), 17): 717.8,
                         ("litehrnet_18", (256, 256), 16): 273.4, ("litehrnet_30", (256, 256), 16): 425.3}


@pytest.mark.parametrize(("preset", "hw", "joints"), list(PUBLISHED_TORCHSTAT_M),
                         ids=[f"{p}_{h}x{w}_{k}" for p, (h, w), k in PUBLISHED_TORCHSTAT_M])
def test_torchstat_convention_gives_the_published_flops(preset, hw, joints):
    """The ``torchstat`` convention (backbone + heatmap head, batch 1) to the published one decimal of 2**20."""
    from dataclasses import replace

    from conftest import ROOT

    import hrnet_core as hc
    from analysis.complexity import OPTIONAL_CONVENTIONS, analyze

    cfg = hc.load_config(ROOT / "configs" / "networks" / f"{preset}_256x192.yaml").with_input(hw)
    report = analyze(replace(cfg, head=replace(cfg.head, outputs=joints)))
    assert round(report.torchstat_flops / 2**20, 1) == PUBLISHED_TORCHSTAT_M[(preset, hw, joints)]
    assert OPTIONAL_CONVENTIONS["torchstat"].value(report) == report.torchstat_flops / 2**30
    assert "torchstat" in {c["name"] for c in report.conventions()}


def test_torchstat_figure_at_256x192_exactly():
    section = lite.lite_hrnet_18()
    backbone = sum(p.torchstat_flops for p in lite.counts(section, (256, 192)))
    head = 40 * 17 * 64 * 48 + 17 * 64 * 48  # the 1x1 conv 40 -> 17 with its bias adds
    assert backbone + head == 215_202_112  # / 2**20 = 205.23 (the README's 205.2M); / 1e6 would be 215.2
    assert sum(p.torchstat_flops for p in lite.counts(lite.lite_hrnet_30(), (256, 192))) + head == 334_703_864


@pytest.mark.parametrize("name", list(CONFIGS))
def test_torchstat_closed_form_equals_its_rules_on_the_model(name):
    """Per part, the closed form = torchstat's rules applied by hooks on the built model (each leaf once, at its
    last call); a module's shared fusion ReLU (``stageS.M.relu``, in no part's prefixes) is charged to the part
    of its last fusion term."""
    from analysis.complexity.torchstat_count import torchstat_by_module

    section = CONFIGS[name]()
    hw = (32, 32)
    model = lite.build(section)
    measured = torchstat_by_module(model, torch.randn(1, section.in_channels, *hw))
    plans, c = lite.parts(section), lite.counts(section, hw)
    got = dict.fromkeys((p.key for p in plans), 0)
    for leaf, value in measured.items():
        owners = _owners(plans, leaf)
        if not owners:  # the shared ReLU of module stageS.M
            stage, m, _ = leaf.split(".")
            owners = [[p.key for p in plans if p.kind == "fusion" and p.stage == stage and p.module == int(m)][-1]]
        assert len(owners) == 1, leaf
        got[owners[0]] += value
    assert {p.key: p.torchstat_flops for p in c} == got


# --- parts -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["litehrnet18", "naive18", "corner", "random1"])
def test_every_tensor_in_exactly_one_part(name):
    section = CONFIGS[name]()
    plans = lite.parts(section)
    assert len({p.key for p in plans}) == len(plans)
    model = lite.build(section)
    modules = dict(model.named_modules())
    for plan in plans:
        assert plan.kind in ("stem", "transition", "branch", "fusion", "head")
        assert all(q in modules for q in plan.prefixes), plan.key
    for n, _ in [*model.named_parameters(), *model.named_buffers()]:
        assert len(_owners(plans, n)) == 1, (n, _owners(plans, n))
    if section.with_head:
        assert plans[-1].key == "head_layer" and plans[-1].kind == "head"
    fusion = [p for p in plans if p.kind == "fusion"]
    assert all(p.key == f"{p.stage}.module{p.module}.fuse.{p.branch}<-{p.source}" for p in fusion)


def test_parts_in_forward_order():
    section = _random(1)
    model = lite.build(section).eval()
    plans = lite.parts(section)
    modules = dict(model.named_modules())
    seen: list[int] = []
    handles = []
    for index, plan in enumerate(plans):
        for q in plan.prefixes:
            handles.append(modules[q].register_forward_pre_hook(
                lambda *_, i=index: seen.append(i) if i not in seen else None))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    for h in handles:
        h.remove()
    assert seen == list(range(len(plans)))


def test_input_size_that_cannot_fuse_is_refused():
    section = lite.lite_hrnet_18()
    with pytest.raises(ConfigError, match=r"^input_size: 64x48: .*multiples of 32"):
        lite.counts(section, (64, 48))  # 1/4 map 16x12: the 1/32 branch is 2x2 and upsamples to 16x16
    assert lite.check_input(section, (64, 64)) == (64, 64)
    with pytest.raises(ConfigError, match="input_size.H"):
        lite.counts(section, (0, 64))


# --- config ------------------------------------------------------------------------------------------------------


def test_parse_dump_round_trip():
    meta = _meta()["backbone"]
    s = lite.parse(meta, FIELD)
    d = lite.dump(s)
    assert d["type"] == "LiteHRNet" and d["extra"] == json.loads(json.dumps(meta["extra"]))
    assert lite.parse(d, FIELD) == s
    mm = copy.deepcopy(d)
    mm.update(norm_cfg={"type": "SyncBN", "requires_grad": False, "eps": 1e-3, "momentum": 0.05}, norm_eval=True,
              with_cp=True, frozen_stages=1, conv_cfg=None, init_cfg={"type": "Pretrained", "checkpoint": "x.pth"})
    mm["extra"]["stages_spec"]["module_type"] = ("lite", "Naive", "LITE")  # mmpose compares .upper()
    mm["extra"]["stages_spec"]["num_modules"] = (1, 2, 1)
    t = lite.parse(mm, FIELD)
    assert t.stages_spec.module_type == ("LITE", "NAIVE", "LITE") and t.stages_spec.num_modules == (1, 2, 1)
    assert (t.norm_cfg.type, t.norm_cfg.requires_grad, t.frozen_stages) == ("SyncBN", False, 1)
    assert lite.parse(lite.dump(t), FIELD) == t
    assert "frozen_stages" not in lite.dump(s) and lite.dump(t)["frozen_stages"] == 1
    for section in (_corner(), _random(0), lite.lite_hrnet_30()):
        assert lite.parse(lite.dump(section)) == section
    widened = lite.with_widths(s, (32, 64, 128, 256))
    assert widened.stages_spec.num_channels == ((32, 64), (32, 64, 128), (32, 64, 128, 256))


def _bad(path: str, value):
    d = lite.dump(lite.lite_hrnet_18())
    *parents, last = path.split(".")
    node = d
    for p in parents:
        node = node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return d


_DELETE = object()
SPEC_PATH = "extra.stages_spec"
BAD = [
    (f"{SPEC_PATH}.num_channels", [[40, 80], [40, 80], [40, 80, 160, 320]],
     f"{FIELD}.{SPEC_PATH}.num_channels[1]: has 2 entries, num_branches says 3"),
    (f"{SPEC_PATH}.num_modules", [2, 4], f"{FIELD}.{SPEC_PATH}.num_modules: has 2 entries, num_stages says 3"),
    (f"{SPEC_PATH}.with_fuse", [True] * 4, f"{FIELD}.{SPEC_PATH}.with_fuse: has 4 entries, num_stages says 3"),
    (f"{SPEC_PATH}.module_type", ["FANCY", "LITE", "LITE"], f"{FIELD}.{SPEC_PATH}.module_type[0]: unknown module_type"),
    (f"{SPEC_PATH}.module_type", [["LITE"], "LITE", "LITE"], f"{FIELD}.{SPEC_PATH}.module_type[0]: unknown"),
    (f"{SPEC_PATH}.foo", 1, f"{FIELD}.{SPEC_PATH}: unknown key 'foo'"),
    ("bogus", 1, f"{FIELD}: unknown key 'bogus'"),
    ("extra.stem.width", 1, f"{FIELD}.extra.stem: unknown key 'width'"),
    ("extra.with_head", _DELETE, f"{FIELD}.extra.with_head: missing"),
    ("extra.stem.expand_ratio", _DELETE, f"{FIELD}.extra.stem.expand_ratio: missing"),
    (f"{SPEC_PATH}.reduce_ratios", _DELETE, f"{FIELD}.{SPEC_PATH}.reduce_ratios: missing"),
    ("extra", [1, 2], f"{FIELD}.extra: must be a mapping"),
    (f"{SPEC_PATH}.num_channels", [40, [40, 80, 160], [40, 80, 160, 320]], f"{FIELD}.{SPEC_PATH}.num_channels[0]: must be a list"),
    (f"{SPEC_PATH}.num_modules", "242", f"{FIELD}.{SPEC_PATH}.num_modules: must be a list"),
    (f"{SPEC_PATH}.num_channels", [[40, 81], [40, 80, 160], [40, 80, 160, 320]],
     f"{FIELD}.{SPEC_PATH}.num_channels[0][1]: 81 must be even"),
    (f"{SPEC_PATH}.num_channels", [[6, 80], [40, 80, 160], [40, 80, 160, 320]],
     f"{FIELD}.{SPEC_PATH}.num_channels[0][0]: 6 is too narrow for a LITE stage"),
    (f"{SPEC_PATH}.num_channels", [[40, 0], [40, 80, 160], [40, 80, 160, 320]],
     f"{FIELD}.{SPEC_PATH}.num_channels[0][1]: must be a positive integer"),
    (f"{SPEC_PATH}.num_channels", [[40, 10**6], [40, 80, 160], [40, 80, 160, 320]],
     f"{FIELD}.{SPEC_PATH}.num_channels[0][1]: 1000000 exceeds the supported maximum"),
    (f"{SPEC_PATH}.reduce_ratios", [8, 1000, 8], f"{FIELD}.{SPEC_PATH}.reduce_ratios[1]: 1000 squeezes"),
    (f"{SPEC_PATH}.num_modules", [2, 10**6, 2], f"{FIELD}.{SPEC_PATH}.num_modules[1]: 1000000 exceeds"),
    (f"{SPEC_PATH}.num_blocks", [2, 0, 2], f"{FIELD}.{SPEC_PATH}.num_blocks[1]: must be a positive integer"),
    (f"{SPEC_PATH}.num_blocks", [2, 2.0, 2], f"{FIELD}.{SPEC_PATH}.num_blocks[1]: must be a positive integer"),
    (f"{SPEC_PATH}.num_branches", [2, 3, 40], f"{FIELD}.{SPEC_PATH}.num_branches[2]: 40 exceeds"),
    (f"{SPEC_PATH}.with_fuse", [True, 1, True], f"{FIELD}.{SPEC_PATH}.with_fuse[1]: must be true or false"),
    ("extra.num_stages", 0, f"{FIELD}.extra.num_stages: must be a positive integer"),
    ("extra.num_stages", "3", f"{FIELD}.extra.num_stages: must be a positive integer"),
    ("extra.with_head", "yes", f"{FIELD}.extra.with_head: must be true or false"),
    ("extra.stem.stem_channels", 31, f"{FIELD}.extra.stem.stem_channels: 31 must be even"),
    ("extra.stem.out_channels", 30, f"{FIELD}.extra.stem.out_channels: 30 must equal stem_channels"),
    ("extra.stem.out_channels", 35, f"{FIELD}.extra.stem.out_channels: 35 must be even"),
    ("extra.stem.expand_ratio", 0, f"{FIELD}.extra.stem.expand_ratio: must be a number"),
    ("extra.stem.expand_ratio", True, f"{FIELD}.extra.stem.expand_ratio: must be a number"),
    ("extra.stem.expand_ratio", 0.01, f"{FIELD}.extra.stem.expand_ratio: 0.01 gives"),
    ("in_channels", 0, f"{FIELD}.in_channels: must be a positive integer"),
    ("norm_cfg", {"type": "GN"}, f"{FIELD}.norm_cfg.type: unknown norm type 'GN'"),
    ("norm_cfg", {"type": "BN", "affine": False}, f"{FIELD}.norm_cfg: unknown key 'affine'"),
    ("norm_cfg", {"type": "BN", "eps": -1}, f"{FIELD}.norm_cfg.eps: must be a number"),
    ("conv_cfg", {"type": "DCNv2"}, f"{FIELD}.conv_cfg.type: only plain convolutions"),
    ("type", "HRNet", f"{FIELD}.type: must be 'LiteHRNet'"),
    ("frozen_stages", 7, f"{FIELD}.frozen_stages: must be an integer in -1..3"),
    ("norm_eval", "no", f"{FIELD}.norm_eval: must be true or false"),
]


@pytest.mark.parametrize("path,value,message", BAD, ids=[f"{i}-{b[0].split('.')[-1]}" for i, b in enumerate(BAD)])
def test_bad_section_refused(path, value, message):
    with pytest.raises(ConfigError) as err:
        lite.parse(_bad(path, value), FIELD)
    assert str(err.value).startswith(message), str(err.value)
    assert err.value.field.startswith(FIELD)


def test_one_branch_lite_stage_and_budget_refused():
    d = lite.dump(lite.lite_hrnet_18())
    d["extra"]["stages_spec"]["num_branches"][0] = 1
    d["extra"]["stages_spec"]["num_channels"][0] = [40]
    with pytest.raises(ConfigError, match=rf"^{FIELD}\.{SPEC_PATH}\.num_branches\[0\]: a LITE stage needs"):
        lite.parse(d, FIELD)
    d["extra"]["stages_spec"]["module_type"][0] = "NAIVE"  # a one-branch NAIVE stage runs in mmpose
    assert lite.parse(d, FIELD).stages_spec.num_branches[0] == 1
    big = lite.dump(lite.lite_hrnet_18())
    big["extra"]["stages_spec"].update(num_modules=[32, 32, 32], num_blocks=[64, 64, 64])
    with pytest.raises(ConfigError, match=rf"^{FIELD}: \d+ convolutions exceed the bound"):
        lite.parse(big, FIELD)
    wide = lite.dump(lite.lite_hrnet_18())
    wide["extra"]["stages_spec"]["num_channels"] = [[4096, 4096], [4096] * 3, [4096] * 4]
    with pytest.raises(ConfigError, match=rf"^{FIELD}: .*M parameters exceed the bound"):
        lite.parse(wide, FIELD)


# --- training behaviour ------------------------------------------------------------------------------------------


def _small(**top):
    d = {"extra": {"stem": {"stem_channels": 8, "out_channels": 8, "expand_ratio": 1}, "num_stages": 2,
                   "stages_spec": {"num_modules": [1, 1], "num_branches": [2, 3], "num_blocks": [2, 1],
                                   "module_type": ["LITE", "NAIVE"], "with_fuse": [True, True],
                                   "reduce_ratios": [4, 4], "num_channels": [[8, 16], [8, 16, 16]]},
                   "with_head": True}}
    d.update(top)
    return lite.parse(d, FIELD)


def test_with_cp_gives_the_same_gradients(monkeypatch):
    calls = []
    real = lite_modules.cp.checkpoint

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(lite_modules.cp, "checkpoint", counting)
    torch.manual_seed(0)
    plain, ckpt = lite.build(_small()), lite.build(_small(with_cp=True))
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 16, 16)  # branches 4x4, 2x2, 1x1
    grads = []
    for model in (plain, ckpt):
        model.train()
        inp = x.clone().requires_grad_(True)
        (out,) = model(inp)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append([inp.grad] + [p.grad for p in model.parameters()])
    assert calls, "with_cp never checkpointed"
    assert len(calls) == 2 + 3  # 2 weighting blocks (LITE stage), 3 shuffle units (NAIVE stage); not the stem
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    calls.clear()
    with torch.no_grad():
        ckpt(x)
    assert not calls  # nothing to recompute without autograd


def test_norm_eval_and_frozen_norms():
    model = lite.build(_small(norm_eval=True, norm_cfg={"type": "BN", "requires_grad": False}))
    model.train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns) and model.stem.training
    assert not any(p.requires_grad for m in bns for p in m.parameters())
    assert any(p.requires_grad for p in model.parameters())
    assert lite.build(_small()).train().stem.conv1.bn.training


def test_forward_shapes():
    section = _small()
    model = lite.build(section).eval()
    with torch.no_grad():
        (out,) = model(torch.randn(1, 3, 64, 32))
    assert out.shape == (1, 8, 16, 8)
    assert lite.out_channels(section) == (8,)
