"""HRFormer (``hrnet_core.networks.hrformer``) against mmpose: the shared fixture's numerics, state_dict names and
order, the published params / MACs, fvcore's counts per part, the parts plan, config errors and drop-path."""

from __future__ import annotations

import copy
import json
import warnings
from collections import Counter

import pytest
import torch
from conftest import SHARED
from torch import nn

import hrnet_core.networks.hrformer as hrformer
from hrnet_core.config import ConfigError
from hrnet_core.networks.hrformer.config import dump, parse
from hrnet_core.networks.hrformer.counts import counts, parts, total
from hrnet_core.networks.hrformer.modules import DropPath, WindowMSA, build, relative_position_index
from hrnet_core.networks.registry import network_spec, spec_for_mmpose_type

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")]

FIXTURE = SHARED / "fixtures" / "family" / "hrformer_small"
META = json.loads((FIXTURE / "meta.json").read_text())
HEAD_PARAMS = 32 * 17 + 17  # mmpose HeatmapHead without deconvs: one 1x1 conv 32 -> 17 with bias
HEAD_MACS = 32 * 17 * 64 * 48


def _stage(modules, blocks, channels, heads, windows, mlp=None, **kw):
    n = len(channels)
    return dict(num_modules=modules, num_branches=n, block="HRFORMERBLOCK", num_blocks=tuple(blocks),
                num_channels=tuple(channels), num_heads=list(heads), mlp_ratios=list(mlp or [4] * n),
                window_sizes=list(windows), **kw)


# mmpose configs/body_2d_keypoint/topdown_heatmap/coco/td-hm_hrformer-base_8xb32-210e_coco-256x192.py
HRFORMER_B = dict(
    type="HRFormer", in_channels=3, norm_cfg=dict(type="SyncBN", requires_grad=True),
    extra=dict(drop_path_rate=0.2, with_rpe=True,
               stage1=dict(num_modules=1, num_branches=1, block="BOTTLENECK", num_blocks=(2,), num_channels=(64,),
                           num_heads=[2], mlp_ratios=[4]),
               stage2=_stage(1, (2, 2), (78, 156), (2, 4), (7, 7)),
               stage3=_stage(4, (2, 2, 2), (78, 156, 312), (2, 4, 8), (7, 7, 7)),
               stage4=_stage(2, (2, 2, 2, 2), (78, 156, 312, 624), (2, 4, 8, 16), (7, 7, 7, 7))),
    init_cfg=dict(type="Pretrained", checkpoint="https://download.openmmlab.com/mmpose/pretrain_models/"
                  "hrformer_base-32815020_20220226.pth"))

# Small configs whose maps are not multiples of the windows (the padding path), with uneven branch depths, a
# float MLP ratio, a transition that widens the last branch, a one-branch stage, multiscale output, no relative
# position bias, the pad mask and nearest fusion.
SMALL_PAD = dict(
    type="HRFormer", in_channels=3, norm_cfg=dict(type="BN"),
    extra=dict(drop_path_rate=0.2,
               stage1=dict(num_modules=1, num_branches=1, block="BOTTLENECK", num_blocks=[1], num_channels=[8]),
               stage2=_stage(1, (2, 1), (16, 32), (2, 4), (5, 3), mlp=(2.5, 2)),
               stage3=_stage(2, (1, 1, 1), (16, 24, 48), (1, 3, 4), (4, 3, 2), mlp=(1, 2, 2)),
               stage4=_stage(1, (1, 1, 1), (16, 24, 48), (2, 2, 2), (3, 3, 3), mlp=(2, 2, 2),
                             multiscale_output=True)))
SMALL_MASK = dict(
    type="HRFormer", in_channels=1, norm_cfg=dict(type="BN", requires_grad=False),
    transformer_norm_cfg=dict(type="LN", eps=1e-5),
    extra=dict(drop_path_rate=0.0, with_rpe=False, with_pad_mask=True,
               upsample=dict(mode="nearest", align_corners=None),
               stage1=dict(num_modules=1, num_branches=1, block="BOTTLENECK", num_blocks=[1], num_channels=[4]),
               stage2=_stage(1, (1,), (8,), (2,), (3,)),
               stage3=_stage(1, (1, 1), (8, 16), (1, 2), (3, 5)),
               stage4=_stage(2, (2, 1, 1, 1), (8, 16, 24, 32), (2, 2, 3, 4), (3, 3, 3, 3))))

COUNTED = [("hrformer_s", META["backbone"], (64, 32)), ("hrformer_b", HRFORMER_B, (32, 64)),
           ("small_pad", SMALL_PAD, (64, 48)), ("small_mask", SMALL_MASK, (64, 64))]


def _fvcore(model: nn.Module, x: torch.Tensor) -> dict[str, Counter]:
    """One trace with fvcore's own default flop and activation handles side by side: ``{module: Counter(flops,
    acts, matmul, conv_linear)}`` (what ``FlopCountAnalysis`` / ``ActivationCountAnalysis`` ``.by_module()`` give, and
    ``by_operator()['matmul']``; ``test_fvcore_classes`` checks the equivalence on a small config)."""
    from fvcore.nn.activation_count import _DEFAULT_SUPPORTED_OPS as ACTS
    from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS as FLOPS
    from fvcore.nn.jit_analysis import JitModelAnalysis

    def number(v):
        return sum(v.values()) if isinstance(v, Counter) else v

    def handle(op):
        def count(inputs, outputs):
            c = Counter()
            if op in FLOPS:
                c["flops"] = number(FLOPS[op](inputs, outputs))
                if op == "aten::matmul":
                    c["matmul"] = c["flops"]
                if op in ("aten::_convolution", "aten::linear", "aten::addmm"):
                    c["conv_linear"] = c["flops"]
            if op in ACTS:
                c["acts"] = number(ACTS[op](inputs, outputs))
            return c
        return count

    analysis = JitModelAnalysis(model, (x,)).set_op_handle(**{op: handle(op) for op in set(FLOPS) | set(ACTS)})
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings (list output, python ints)
        return analysis.by_module_and_operator()


def _owner_params(model: nn.Module, plan) -> dict[str, str]:
    """Every parameter name -> the one part key whose prefix holds it (asserting exactly one)."""
    owner = {}
    for name, _ in model.named_parameters():
        keys = [p.key for p in plan for pre in p.prefixes if name.startswith(pre + ".")]
        assert len(keys) == 1, (name, keys)
        owner[name] = keys[0]
    return owner


# ------------------------------------------------------------------------------------------------ the fixture

def test_fixture_float64_and_state_dict():
    from safetensors.torch import load_file

    sd = load_file(str(FIXTURE / "state_dict.safetensors"))
    model = build(parse(META["backbone"], "backbone"))
    ours = model.state_dict()
    keys = list(ours)
    assert set(keys) == set(sd) and len(keys) == META["state_dict"]["key_count"]
    assert keys[:5] == META["state_dict"]["first_keys"] and keys[-3:] == META["state_dict"]["last_keys"]
    assert len(list(model.parameters())) == META["state_dict"]["parameter_tensors"]
    assert len(list(model.buffers())) == META["state_dict"]["buffer_tensors"]
    for k, v in ours.items():  # shapes, dtypes, and the int64 index buffers computed as mmpose does
        assert v.shape == sd[k].shape and v.dtype == sd[k].dtype, k
        if k.endswith("relative_position_index"):
            assert torch.equal(v, sd[k]), k
    model.load_state_dict(sd, strict=True)
    assert sum(p.numel() for p in model.parameters()) == META["params"]

    x = torch.load(FIXTURE / "input.pt")
    ref64 = torch.load(FIXTURE / "outputs_float64.pt")
    ref32 = torch.load(FIXTURE / "outputs.pt")
    with torch.no_grad():
        y32 = model.eval()(x)
        model.double()
        y64 = model(x.double())
        fast = model.set_fast_attention(True)(x.double())
    assert len(y64) == len(ref64) == 1 and [t.shape for t in y64] == [t.shape for t in ref64]
    for a, b, c, f, r in zip(y64, ref64, y32, fast, ref32):
        assert (a - b).abs().max().item() < 1e-5  # measured 3.9e-13
        assert (f - b).abs().max().item() < 1e-5  # the scaled_dot_product_attention path
        assert (c - r).abs().max().item() < 1e-3  # float32 smoke check (rounding alone is ~2e-4)


def test_key_order_of_a_block_and_the_tree():
    model = build(parse(META["backbone"]))
    keys = list(model.state_dict())
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    block = ["norm1.weight", "norm1.bias", "attn.attn.relative_position_bias_table",
             "attn.attn.relative_position_index", "attn.attn.qkv.weight", "attn.attn.qkv.bias",
             "attn.attn.proj.weight", "attn.attn.proj.bias", "norm2.weight", "norm2.bias",
             "ffn.fc1.weight", "ffn.fc1.bias", *(f"ffn.norm1.{b}" for b in bn), "ffn.dw3x3.weight", "ffn.dw3x3.bias",
             *(f"ffn.norm2.{b}" for b in bn), "ffn.fc2.weight", "ffn.fc2.bias", *(f"ffn.norm3.{b}" for b in bn)]
    prefix = "stage3.1.branches.2.1."
    assert [k[len(prefix):] for k in keys if k.startswith(prefix)] == block
    down = [k for k in keys if k.startswith("stage3.0.fuse_layers.2.0.")]
    assert [k.split(".", 5)[5] for k in down][:7] == ["0.0.weight", *(f"0.1.{b}" for b in bn), "0.2.weight"]
    tops = list(dict.fromkeys(k.split(".")[0] for k in keys))
    assert tops == ["conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2", "transition2", "stage3",
                    "transition3", "stage4"]
    assert keys.index("stage2.0.fuse_layers.0.1.0.weight") > keys.index("stage2.0.branches.1.1.ffn.norm3.bias")


def test_relative_position_index_is_the_swin_layout():
    idx = relative_position_index(2, 3)
    assert idx.shape == (6, 6) and idx.dtype == torch.int64
    assert idx[0, 0] == (2 - 1) * 5 + 2 and idx[0, 5] == 0 and idx[5, 0] == 3 * 5 - 1
    assert torch.equal(idx.diagonal(), torch.full((6,), idx[0, 0].item()))


# ---------------------------------------------------------------------------------------------------- counts

def test_published_counts_256x192():
    cx = META["complexity_256x192"]
    sec = parse(META["backbone"])
    t = total(sec, (256, 192))
    assert t.params == cx["params_backbone"] == 7_746_218
    assert t.conv_linear_macs == cx["conv_linear_macs_backbone"] == 2_952_555_008
    assert t.params + HEAD_PARAMS == cx["params_backbone_plus_head"] == 7_746_779
    assert t.conv_linear_macs + HEAD_MACS == cx["conv_linear_macs_backbone_plus_head"] == 2_954_226_176
    ops = cx["fvcore_by_operator_backbone"]
    assert t.fvcore_flops == cx["fvcore_total_backbone"] == 3_329_410_816
    assert t.attention_macs == ops["matmul"]
    assert t.conv_linear_macs == ops["conv"] + ops["linear"]
    assert sum(p.numel() for p in build(sec).parameters()) == t.params
    b = parse(HRFORMER_B)
    tb = total(b, (256, 192))
    assert tb.params == sum(p.numel() for p in build(b).parameters()) == 43_210_434  # paper: 43.2M with the head
    assert tb.params + 78 * 17 + 17 == 43_211_777


@pytest.mark.parametrize(("name", "backbone", "hw"), COUNTED, ids=[c[0] for c in COUNTED])
def test_counts_match_fvcore_per_part(name, backbone, hw):
    sec = parse(backbone)
    torch.manual_seed(0)
    model = build(sec).eval()
    plan, cs = parts(sec), counts(sec, hw)
    assert [p.key for p in plan] == [c.key for c in cs]
    by_module = _fvcore(model, torch.randn(1, sec.in_channels, *hw))
    whole = by_module[""]
    t = total(sec, hw)
    assert t.fvcore_flops == whole["flops"]
    assert t.attention_macs == whole["matmul"]
    assert t.activations == whole["acts"]
    assert t.params == sum(p.numel() for p in model.parameters())
    assert t.conv_linear_macs == whole["conv_linear"]  # fvcore's conv + linear: MACs, bias excluded
    modules = dict(model.named_modules())
    numel = {n: p.numel() for n, p in model.named_parameters()}
    owner = _owner_params(model, plan)
    for p, c in zip(plan, cs):
        assert all(pre in modules for pre in p.prefixes), p.key
        got = sum((by_module.get(pre, Counter()) for pre in p.prefixes), Counter())
        assert (c.fvcore_flops, c.conv_linear_macs, c.attention_macs, c.activations) == \
            (got["flops"], got["conv_linear"], got["matmul"], got["acts"]), p.key
        assert c.params == sum(numel[n] for n, k in owner.items() if k == p.key), p.key


def test_fvcore_classes():
    """The one-trace counter above = ``FlopCountAnalysis`` / ``ActivationCountAnalysis`` themselves."""
    from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis

    sec = parse(SMALL_PAD)
    model = build(sec).eval()
    x = torch.randn(1, 3, 64, 48)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flops = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        acts = ActivationCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        t = total(sec, (64, 48))
        assert t.fvcore_flops == flops.total() and t.activations == acts.total()
        assert t.attention_macs == flops.by_operator()["matmul"]
        assert set(flops.by_operator()) == {"conv", "batch_norm", "layer_norm", "linear", "matmul",
                                            "upsample_bilinear2d"}


def test_conv_linear_macs_by_hooks():
    """``conv_linear_macs`` = Conv2d + Linear multiply-accumulates over every call, by forward hooks."""
    sec = parse(SMALL_PAD)
    model = build(sec).eval()
    macs = Counter()

    def hook(mod, inputs, out):
        if isinstance(mod, nn.Conv2d):
            macs["conv"] += out.numel() * mod.weight[0].numel()
        else:
            macs["linear"] += out.numel() * mod.in_features

    for mod in model.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            mod.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 48))
    assert total(sec, (64, 48)).conv_linear_macs == macs["conv"] + macs["linear"]


def test_every_parameter_in_one_part():
    for backbone in (META["backbone"], SMALL_PAD, SMALL_MASK):
        sec = parse(backbone)
        model = build(sec)
        plan = parts(sec)
        assert len({p.key for p in plan}) == len(plan)
        owner = _owner_params(model, plan)
        assert set(owner) == {n for n, _ in model.named_parameters()}
    plan = parts(parse(META["backbone"]))
    assert plan[0].key == "stem" and plan[1].key == "layer1" and plan[2].key == "transition1.branch0"
    fus = [p for p in plan if p.key.startswith("stage4.module1.fuse")]
    assert [p.key for p in fus] == [f"stage4.module1.fuse.0<-{j}" for j in range(4)]  # no multiscale output
    assert {p.block for p in plan if p.kind == "branch"} == {"HRFORMER"}
    mask = parts(parse(SMALL_MASK))
    assert not [p for p in mask if p.key.startswith("stage2.module0.fuse")]  # one branch: no fusion


def test_input_sizes_that_cannot_fuse_are_refused():
    sec = parse(META["backbone"])
    with pytest.raises(ConfigError) as err:
        counts(sec, (100, 96))
    assert err.value.field == "input_size"
    with pytest.raises(RuntimeError):  # mmpose fails the same way: the upsampled map does not match
        build(sec).eval()(torch.randn(1, 3, 100, 96))


# ---------------------------------------------------------------------------------------------- the registry

def test_registered_spec():
    spec = network_spec("hrformer")
    assert spec is hrformer.SPEC and spec_for_mmpose_type("HRFormer") is spec
    s = parse(META["backbone"])
    assert spec.out_channels(s) == (32,) and spec.out_strides(s) == (4,)
    p = parse(SMALL_PAD)
    assert spec.out_channels(p) == (16, 24, 48) and spec.out_strides(p) == (4, 8, 16)
    with torch.no_grad():
        ys = spec.build(p).eval()(torch.randn(2, 3, 64, 48))
    assert [tuple(y.shape) for y in ys] == [(2, 16, 16, 12), (2, 24, 8, 6), (2, 48, 4, 3)]
    dumped = dump(s)
    for knob in spec.knobs:
        node = dumped
        for k in knob.key.split("."):
            node = node[k]


# ------------------------------------------------------------------------------------------------- configs

def _plain(d):
    if isinstance(d, dict):
        return {k: _plain(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_plain(v) for v in d]
    return d


@pytest.mark.parametrize("backbone", [META["backbone"], HRFORMER_B, SMALL_PAD, SMALL_MASK])
def test_parse_dump_round_trip(backbone):
    sec = parse(backbone)
    assert parse(dump(sec)) == sec
    assert hash(sec) == hash(parse(dump(sec)))


def test_dump_gives_the_official_dict_back():
    for official in (META["backbone"], HRFORMER_B):
        want = _plain({k: v for k, v in official.items() if k != "init_cfg"})
        want["extra"]["stage4"].setdefault("multiscale_output", False)
        assert dump(parse(official)) == want


def _bad(path: str, value, *, delete: bool = False):
    d = copy.deepcopy(META["backbone"])
    keys = path.split(".")
    node = d
    for k in keys[:-1]:
        node = node[k]
    if delete:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return d


BAD = [
    (_bad("extra.stage3.num_heads", [1, 3, 4]), "backbone.extra.stage3.num_heads[1]"),  # 64 % 3
    (_bad("extra.stage2.window_sizes", [7, 0]), "backbone.extra.stage2.window_sizes[1]"),
    (_bad("extra.stage2.window_sizes", [7, 7.0]), "backbone.extra.stage2.window_sizes[1]"),
    (_bad("extra.stage4.mlp_ratios", [4, 4, 4]), "backbone.extra.stage4.mlp_ratios"),
    (_bad("extra.stage4.num_channels", [32, 64, 128]), "backbone.extra.stage4.num_channels"),
    (_bad("extra.stage3.block", "HRFORMER"), "backbone.extra.stage3.block"),
    (_bad("extra.stage3.block", "BOTTLENECK"), "backbone.extra.stage3.block"),
    (_bad("extra.stage1.block", "HRFORMERBLOCK"), "backbone.extra.stage1.block"),
    (_bad("extra.stage2.num_windows", [7, 7]), "backbone.extra.stage2.num_windows"),
    (_bad("extra.dropout", 0.1), "backbone.extra.dropout"),
    (_bad("pretrained", "x.pth"), "backbone.pretrained"),
    (_bad("extra.drop_path_rate", None, delete=True), "backbone.extra.drop_path_rate"),
    (_bad("extra.drop_path_rate", 1.5), "backbone.extra.drop_path_rate"),
    (_bad("extra.stage3.num_heads", None, delete=True), "backbone.extra.stage3.num_heads"),
    (_bad("extra.stage3.num_modules", 0), "backbone.extra.stage3.num_modules"),
    (_bad("extra.stage3.num_modules", 400), "backbone.extra.stage3.num_modules"),
    (_bad("extra.stage4.num_channels", [32, 64, 128, 5000]), "backbone.extra.stage4.num_channels[3]"),
    (_bad("extra.stage3.num_blocks", [2, 3, 2]), "backbone.extra.stage3.num_blocks[1]"),  # > branch 0's
    (_bad("extra.stage3.num_channels", [40, 64, 128]), "backbone.extra.stage3.num_channels[0]"),  # y_list[-1]
    (_bad("extra.stage3.multiscale_output", False), "backbone.extra.stage3.multiscale_output"),
    (_bad("extra.stage2.num_heads", "1,2"), "backbone.extra.stage2.num_heads"),
    (_bad("extra.stage2.mlp_ratios", [4, True]), "backbone.extra.stage2.mlp_ratios[1]"),
    (_bad("extra.stage2.mlp_ratios", [0.01, 4]), "backbone.extra.stage2.mlp_ratios[0]"),
    (_bad("extra.stage1.num_blocks", [2, 2]), "backbone.extra.stage1.num_blocks"),
    (_bad("extra.stage1.num_modules", 2), "backbone.extra.stage1.num_modules"),
    (_bad("extra.upsample", {"mode": "bicubic", "align_corners": False}), "backbone.extra.upsample.mode"),
    (_bad("extra.upsample", {"mode": "nearest", "align_corners": False}), "backbone.extra.upsample.align_corners"),
    (_bad("extra.upsample", {"mode": "bilinear"}), "backbone.extra.upsample.align_corners"),
    (_bad("norm_cfg", {"type": "GN"}), "backbone.norm_cfg.type"),
    (_bad("norm_cfg", {"type": "BN", "momentum": 0.01}), "backbone.norm_cfg.momentum"),
    (_bad("transformer_norm_cfg", {"type": "BN"}), "backbone.transformer_norm_cfg.type"),
    (_bad("with_cp", True), "backbone.with_cp"),
    (_bad("in_channels", 0), "backbone.in_channels"),
    (_bad("extra.with_rpe", 1), "backbone.extra.with_rpe"),
    (_bad("extra.stage2", [1, 2]), "backbone.extra.stage2"),
    (_bad("type", "HRNet"), "backbone.type"),
    (_bad("extra.stage3.with_fuse", [True, False]), "backbone.extra.stage3.with_fuse"),  # 4 modules
    (_bad("extra.stage3.with_fuse", [True, 1, True, True]), "backbone.extra.stage3.with_fuse[1]"),
    (_bad("extra.stage4.with_fuse", "yes"), "backbone.extra.stage4.with_fuse"),
    (_bad("extra.stage1.with_fuse", False), "backbone.extra.stage1.with_fuse"),  # layer1 has no fusion
]


@pytest.mark.parametrize(("backbone", "field"), BAD, ids=[b[1] for b in BAD])
def test_bad_sections_name_the_field(backbone, field):
    with pytest.raises(ConfigError) as err:
        parse(backbone, "backbone")
    assert err.value.field == field, str(err.value)
    assert str(err.value).startswith(field + ": ")


def test_defaults_and_quirks_of_parse():
    b = parse(META["backbone"])
    assert b.upsample.mode == "bilinear" and b.upsample.align_corners is False  # HRFormer's, not HRNet's nearest
    assert parse(_bad("transformer_norm_cfg", {"type": "LN"})).transformer_norm_eps == 1e-5  # PyTorch's default
    assert parse(META["backbone"]).transformer_norm_eps == 1e-6
    assert parse(META["backbone"]).stage4.multiscale_output is False  # mmpose's stage-4 default
    assert parse(_bad("extra.stage2.drop_path_rates", [9.0])) == parse(META["backbone"])  # overwritten by mmpose
    assert parse(_bad("frozen_stages", -1)) == parse(META["backbone"])
    with pytest.raises(ConfigError):
        parse([1, 2], "backbone")


# ----------------------------------------------------------------------------------------------- fusion switch

# Per-module fusion schedules (stages 2..4) on the small configs: fusion off in a whole stage, mixed, and the
# last module of stage 4 unfused without multiscale output (branches 1..3 then reach no output: dead for fvcore).
SCHEDULES = [("small_pad_mixed", SMALL_PAD, (64, 48), ((False,), (True, False), (False,))),
             ("small_mask_last_off", SMALL_MASK, (64, 64), ((False,), (False,), (True, False))),
             ("small_mask_none", SMALL_MASK, (64, 64), ((False,), (False,), (False, False)))]


@pytest.mark.parametrize(("name", "backbone", "hw", "schedule"), SCHEDULES, ids=[c[0] for c in SCHEDULES])
def test_counts_follow_the_fusion_flag(name, backbone, hw, schedule):
    """Per part: params (built modules), fvcore flops / activations (its trace drops what reaches no output) and,
    over the model, Conv2d + Linear + attention MACs of the eager forward (``FlopCounterMode``: 2 per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    sec = hrformer.with_schedule(parse(backbone), schedule)
    assert hrformer.fusion_schedule(sec) == schedule and parse(dump(sec)) == sec
    torch.manual_seed(0)
    model = build(sec).eval()
    plan, cs = parts(sec), counts(sec, hw)
    assert [p.key for p in plan] == [c.key for c in cs]
    for si, row in enumerate(schedule):
        for m, fused in enumerate(row):
            has = any(k.startswith(f"stage{si + 2}.{m}.fuse_layers.") for k in model.state_dict())
            assert has == (fused and sec.stages[si].num_branches > 1)
            assert any(p.key.startswith(f"stage{si + 2}.module{m}.fuse") for p in plan) == has
    x = torch.randn(1, sec.in_channels, *hw)
    by_module = _fvcore(model, x)
    t = total(sec, hw)
    assert (t.fvcore_flops, t.activations) == (by_module[""]["flops"], by_module[""]["acts"])
    owner = _owner_params(model, plan)
    numel = {n: p.numel() for n, p in model.named_parameters()}
    for p, c in zip(plan, cs):
        got = sum((by_module.get(pre, Counter()) for pre in p.prefixes), Counter())
        assert (c.fvcore_flops, c.activations) == (got["flops"], got["acts"]), p.key
        assert c.params == sum(numel[n] for n, k in owner.items() if k == p.key), p.key
    with FlopCounterMode(display=False) as eager, torch.no_grad():
        model(x)
    assert 2 * (t.conv_linear_macs + t.attention_macs) == eager.get_total_flops()


def test_an_unfused_module_passes_its_branches_through():
    sec = hrformer.with_schedule(parse(SMALL_PAD), ((True,), (True, False), (True,)))
    model = build(sec).eval()
    module = model.stage3[1]
    assert len(module.fuse_layers) == 0
    xs = [torch.randn(1, c, 16 // 2**b, 12 // 2**b) for b, c in enumerate(sec.stage3.num_channels)]
    with torch.no_grad():
        assert all(torch.equal(y, branch(x)) for y, branch, x in zip(module(xs), module.branches, xs))
    off = hrformer.with_schedule(parse(META["backbone"]), ((True,), (True,) * 4, (True, False)))
    with torch.no_grad():  # stage 4's last module without multiscale output: branch 0's map alone, unfused
        ys = build(off).eval()(torch.randn(1, 3, 64, 32))
    assert [tuple(y.shape) for y in ys] == [(1, 32, 16, 8)]


def test_fusion_schedule_spec_infer_and_resize():
    spec = network_spec("hrformer")
    s = parse(META["backbone"])
    assert spec.fusion_schedule(s) == ((True,), (True,) * 4, (True,) * 2)
    assert spec.with_fusion(s, spec.fusion_schedule(s)) == s and "with_fuse" not in dump(s)["extra"]["stage3"]
    mixed = spec.with_fusion(s, ((False,), (True, False, False, True), (False, True)))
    assert dump(mixed)["extra"]["stage2"]["with_fuse"] is False
    assert dump(mixed)["extra"]["stage3"]["with_fuse"] == [True, False, False, True]
    shapes = {k: tuple(v.shape) for k, v in build(mixed).state_dict().items()}
    assert parse(hrformer.infer(shapes)).stages[1:] == mixed.stages[1:]  # stage 2 has one module, flag read too
    with pytest.raises(ConfigError) as err:
        spec.with_fusion(s, ((True,), (True,) * 3, (True,) * 2))
    assert err.value.field == "fusion" and "\n" not in str(err.value)
    small = spec.resize(mixed, {"width": 8, "blocks": 1, "stem": 16, "stage1_blocks": 1, "stage1_planes": 8})
    assert small.stage4.num_channels == (8, 16, 32, 64) and small.stage4.num_heads == (1, 2, 4, 8)
    assert small.stage3.num_blocks == (1, 1, 1) and small.stage1.num_blocks == (1,)
    assert small.stage1.num_channels == (8,) and spec.fusion_schedule(small) == spec.fusion_schedule(mixed)
    assert spec.resize(s, {"width": 6}).stage4.num_heads == (1, 2, 4, 8)  # 6, 12, 24, 48 divide
    assert spec.resize(s, {"width": 3}).stage4.num_heads == (1, 2, 4, 8)
    assert spec.resize(s, {"width": 5}).stage3.num_heads == (1, 2, 4)
    assert spec.resize(s, {"width": 9}).stage2.num_heads == (1, 2)


# ----------------------------------------------------------------------------------------------- drop-path

def test_drop_path_rates_follow_mmpose():
    model = build(parse(META["backbone"]))
    probs = [blk.drop_path.drop_prob if isinstance(blk.drop_path, DropPath) else 0.0
             for s in (2, 3, 4) for mod in getattr(model, f"stage{s}") for blk in mod.branches[0]]
    dpr = [x.item() for x in torch.linspace(0, 0.1, 2 * 1 + 2 * 4 + 2 * 2)]
    assert probs == dpr
    assert isinstance(model.stage2[0].branches[0][0].drop_path, nn.Identity)  # rate 0: no module
    assert model.stage4[1].branches[3][1].drop_path.drop_prob == pytest.approx(0.1)


def test_drop_path_identity_in_eval_active_in_train():
    sec = parse(SMALL_PAD)
    torch.manual_seed(0)
    model = build(sec)
    plain = build(parse(_bad_small("extra.drop_path_rate", 0.0)))
    plain.load_state_dict(model.state_dict())
    x = torch.randn(4, 3, 64, 48)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model.eval()(x), plain.eval()(x)))
        model.train()
        plain.train()
        torch.manual_seed(1)
        a = model(x)
        torch.manual_seed(1)
        b = model(x)
        torch.manual_seed(1)
        c = plain(x)
    assert all(torch.equal(u, v) for u, v in zip(a, b))  # deterministic under a seed
    assert any((u - w).abs().max() > 1e-3 for u, w in zip(a, c))  # and active
    torch.manual_seed(0)
    out = DropPath(0.5).train()(torch.ones(64, 3, 2))
    kept = out[:, 0, 0]
    assert set(kept.tolist()) == {0.0, 2.0} and torch.equal(out, kept[:, None, None].expand(64, 3, 2))


def _bad_small(path, value):
    d = copy.deepcopy(SMALL_PAD)
    node = d
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return d


# --------------------------------------------------------------------------------------- attention paths

def test_pad_mask_and_sdpa_path():
    sec = parse(SMALL_MASK)
    torch.manual_seed(0)
    model = build(sec).double().eval()
    assert not any(p.requires_grad for m in model.modules() if isinstance(m, nn.BatchNorm2d)
                   for p in m.parameters())
    assert all(m.eps == 1e-5 for m in model.modules() if isinstance(m, nn.LayerNorm))
    assert not any(m.with_rpe for m in model.modules() if isinstance(m, WindowMSA))
    x = torch.randn(2, 1, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
        fast = model.set_fast_attention(True)(x)
        model.set_fast_attention(False)
        for m in model.modules():
            if hasattr(m, "with_pad_mask"):
                m.with_pad_mask = False
        unmasked = model(x)
    assert [tuple(t.shape) for t in ref] == [(2, 8, 16, 16)]
    assert all((a - b).abs().max() < 1e-10 for a, b in zip(ref, fast))
    assert any((a - b).abs().max() > 1e-6 for a, b in zip(ref, unmasked))  # the mask does something
