"""The analytic backend equals the tools: fvcore per module and operator, FlopCounterMode, the official
get_model_summary hooks and the tensors the forward pass writes — for every preset and for random configs."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from conftest import PRESETS as CONFIGS
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hrnet_core as hc
from analysis.complexity import COUNT_COLUMNS, analyze
from analysis.complexity.fvcore_count import eager_counts, fvcore_trace, measurable_model, quiet
from hrnet_core.config import HeadConfig, HRNetConfig, Stage1Config, StageConfig, StemConfig, UpsampleConfig

LAYOUT = ["name", "operator", "stage", "module", "branch", "component", "resolution"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def own_counts(by_module_and_operator: dict) -> Counter:
    """fvcore charges an operator to its module and every ancestor; keep what each module runs itself."""
    own = {name: Counter(c) for name, c in by_module_and_operator.items()}
    for name, counter in by_module_and_operator.items():
        if name:
            parent = name.rsplit(".", 1)[0] if "." in name else ""
            own[parent].subtract(counter)
    return Counter({(n, op): v for n, c in own.items() for op, v in c.items() if v})


def check_against_tools(cfg: HRNetConfig, batch: int = 1) -> None:
    rep = analyze(cfg, batch=batch)
    model = measurable_model(cfg)
    x = torch.zeros(batch, 3, *cfg.input_hw)
    trace = fvcore_trace(model, x)
    eager = eager_counts(model, x)
    df = rep.breakdown

    # fvcore, per module and operator, from fvcore's own aggregation (fvcore names a transposed conv "conv")
    analytic = Counter()
    for (name, op), v in df.groupby(["name", "operator"])["flops"].sum().items():
        if v:
            analytic[(name, "conv" if op == "conv_transpose" else op)] += int(v)
    assert analytic == own_counts(trace.by_module_and_operator)
    assert rep.fvcore_flops == trace.total
    assert rep.unsupported_ops == trace.unsupported_ops

    # every call fvcore saw: module, operator, output shape and written elements; TorchScript drops what never
    # reaches the output (the ``live`` column), PyTorch runs everything
    live = df[df["live"]]
    traced = Counter((c.name, c.operator, c.output_shape) for c in trace.calls)
    assert traced == Counter(zip(live["name"], live["operator"], live["output_shape"]))
    written = sum(int(torch.Size(c.output_shape).numel()) for c in trace.calls if c.writes)
    assert written == int(live["activations"].sum())
    assert rep.activations == eager.written_elements
    assert (df.loc[~df["live"], "flops"] == 0).all()

    # torch convention and the official conv/linear hooks
    assert rep.torch_flops == eager.torch_flops
    macs = df[df["macs"] > 0].groupby("name")["macs"].sum()
    assert {k: int(v) for k, v in macs.items()} == eager.official_macs
    assert rep.params == sum(p.numel() for p in model.parameters())


def test_recording_handles_leave_fvcore_unchanged():
    """The recording wrappers return fvcore's own counts: same per-module figures, total and unsupported
    operators as a plain FlopCountAnalysis, for every head kind."""
    from fvcore.nn import FlopCountAnalysis

    for d in (
        {"family": "pose", "width": 4, "modules": [1, 1, 1], "blocks": 1, "input_size": [64, 64]},
        {"family": "cls", "width": 4, "modules": [1, 1, 1], "blocks": 1, "input_size": [64, 64], "head": {"kind": "cls", "outputs": 7}},
        {"family": "seg", "width": 4, "modules": [1, 2], "blocks": 1, "input_size": [65, 70]},
        {"family": "det", "width": 4, "modules": [1, 1, 1], "blocks": 1, "input_size": [64, 64],
         "head": {"kind": "v2p", "channels": 8, "levels": 3}},
    ):
        cfg = hc.load_config(d)
        model = measurable_model(cfg)
        x = torch.zeros(1, 3, *cfg.input_hw)
        plain = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        with quiet():
            total, bmo, unsupported = plain.total(), plain.by_module_and_operator(), dict(plain.unsupported_ops())
        trace = fvcore_trace(model, x)
        assert trace.total == total
        assert own_counts(trace.by_module_and_operator) == own_counts(bmo)
        assert trace.unsupported_ops == unsupported and "aten::add" in unsupported
        assert analyze(cfg).unsupported_ops == unsupported


def _reduced(cfg: HRNetConfig) -> HRNetConfig:
    """The smallest input the model takes (same layers, tiny maps): the lowest branch at 1x1, or the V2p
    pyramid's last level at 1x1."""
    side = cfg.min_input_multiple
    if cfg.head.kind == "v2p":
        side = max(side, 4 * 2 ** (cfg.head.levels - 1))
    return cfg.with_input((side, side))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_presets_match_tools(path):
    """Every preset at its smallest input (the full size runs in test_pose_w32_full_size_and_fvcore_backend)."""
    check_against_tools(_reduced(hc.load_config(path)))


def test_pose_w32_full_size_and_fvcore_backend():
    cfg = hc.load_config(ROOT / "configs" / "pose_hrnet_w32_256x192.yaml")
    check_against_tools(cfg)
    a, f = analyze(cfg), analyze(cfg, backend="fvcore")
    assert f.backend == "fvcore"
    for k in ("params", "conv_linear_macs", "gflops_paper", "fvcore_flops", "torch_flops", "activations",
              "unsupported_ops", "uncounted_elements"):
        assert getattr(a, k) == getattr(f, k), k
    cols = list(COUNT_COLUMNS)
    assert a.breakdown.groupby(["name", "operator"])[cols].sum().equals(f.breakdown.groupby(["name", "operator"])[cols].sum())
    assert Counter(map(tuple, a.breakdown[LAYOUT].astype(str).values)) == Counter(map(tuple, f.breakdown[LAYOUT].astype(str).values))
    for key in ("stage", "branch", "component", "module"):
        assert a.by(key)[["params", "flops", "macs"]].equals(f.by(key)[["params", "flops", "macs"]])


def test_fvcore_backend_every_head_kind():
    for d in (
        {"family": "seg", "width": 4, "modules": [1, 1], "blocks": 1, "input_size": [63, 81]},
        {"family": "face", "width": 4, "modules": [2], "blocks": 2, "input_size": [64, 48], "fusion": "none"},
        {"family": "det", "width": 4, "modules": [1, 1, 1], "blocks": 1, "input_size": [96, 64],
         "head": {"kind": "v2p", "channels": 6, "levels": 4}},
        {"family": "cls", "width": 4, "modules": [1, 1, 1], "blocks": 1, "input_size": [64, 96], "head": {"kind": "cls", "outputs": 5}},
        {"family": "pose", "width": 4, "modules": [1, 1, 1], "blocks": 1, "input_size": [64, 96],
         "head": {"kind": "higher", "outputs": 5, "deconv_channels": [6, 4], "deconv_kernels": [3, 2],
                  "cat_output": [True, True], "with_ae": [True, False, True], "deconv_blocks": 1}},
    ):
        cfg = hc.load_config(d)
        a, f = analyze(cfg, batch=2), analyze(cfg, backend="fvcore", batch=2)
        assert (a.fvcore_flops, a.conv_linear_macs, a.torch_flops, a.activations, a.params) == (
            f.fvcore_flops, f.conv_linear_macs, f.torch_flops, f.activations, f.params)
        assert Counter(map(tuple, a.breakdown[LAYOUT].astype(str).values)) == Counter(map(tuple, f.breakdown[LAYOUT].astype(str).values))


# ---- property test: >= 200 random valid small configs -----------------------------------------------

BLOCK = st.sampled_from(["BASIC", "BOTTLENECK"])


@st.composite
def small_configs(draw, families):
    family = draw(st.sampled_from(families))
    kind = "cls" if family == "cls" else draw(st.sampled_from(["v1", "v2", "v2p", "ocr", "higher"]))
    mode = draw(st.sampled_from(["nearest", "bilinear"]))
    align = draw(st.booleans()) if mode == "bilinear" else False
    n_stages = draw(st.integers(1, 3))
    stages = []
    for s in range(n_stages):
        nb = s + 2
        modules = draw(st.integers(1, 2))
        stages.append(StageConfig(
            modules=modules,
            block=draw(BLOCK),
            blocks=tuple(draw(st.integers(1, 2)) for _ in range(nb)),
            channels=tuple(draw(st.integers(1, 12)) for _ in range(nb)),
            fuse=tuple(draw(st.booleans()) for _ in range(modules)),  # all, none and custom schedules
            name=f"stage{s + 2}",
        ))
    stride = 2 ** (n_stages + 2)
    if mode == "nearest":
        side = st.integers(max(1, 64 // stride), 128 // stride).map(lambda k: k * stride)
    else:
        side = st.integers(40, 128)  # odd sizes too: the strided convs round up
    h, w = draw(side), draw(side)
    levels = 1
    if kind == "v2p":
        smallest = min(-(-h // 4), -(-w // 4))
        levels = draw(st.integers(1, min(4, smallest.bit_length())))
    higher = {}
    if kind == "higher":
        n = draw(st.integers(0, 2))
        higher = dict(tag_per_joint=draw(st.booleans()), with_ae=tuple(draw(st.booleans()) for _ in range(n + 1)),
                      deconv_channels=tuple(draw(st.integers(1, 8)) for _ in range(n)),
                      deconv_kernels=tuple(draw(st.sampled_from([2, 3, 4])) for _ in range(n)),
                      deconv_blocks=draw(st.integers(0, 2)), cat_output=tuple(draw(st.booleans()) for _ in range(n)))
    head = HeadConfig(kind=kind, outputs=draw(st.integers(1, 20)), final_conv_kernel=draw(st.sampled_from([1, 3])),
                      channels=draw(st.integers(2, 12)), levels=levels, key_channels=draw(st.integers(1, 8)), **higher)
    return HRNetConfig(
        family=family, stages=tuple(stages), head=head, input_hw=(h, w),
        stem=StemConfig(draw(st.integers(2, 16))),
        stage1=Stage1Config(block=draw(BLOCK), blocks=draw(st.integers(1, 2)), planes=draw(st.integers(2, 12))),
        upsample=UpsampleConfig(mode, align), name="random",
    )


# 50 derandomized examples per family group (with every preset above): the suite stays within its 15 minutes
PROPERTY = settings(max_examples=50, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROPERTY
@given(small_configs(("pose", "cls", "det")))
def test_random_configs_match_tools_pose_cls_det(cfg):
    check_against_tools(cfg)


@PROPERTY
@given(small_configs(("seg", "face")), st.integers(1, 2))
def test_random_configs_match_tools_seg_face(cfg, batch):
    check_against_tools(cfg, batch)


def test_fvcore_defaults_spelled_with_public_handles_match_the_installed_fvcore():
    """The counter reaches fvcore only through public names; this guard alone reads fvcore's private tables, so
    an fvcore upgrade that changes them fails here, not silently in the counts."""
    from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS
    from fvcore.nn.jit_analysis import _IGNORED_OPS

    from analysis.complexity import fvcore_count as fc

    ours = fc.fvcore_default_handles()
    assert tuple(_DEFAULT_SUPPORTED_OPS) == fc.FVCORE_COUNTED_KINDS == tuple(ours)
    for kind, handle in _DEFAULT_SUPPORTED_OPS.items():
        assert ours[kind].__qualname__ == handle.__qualname__, kind
    assert set(fc.FVCORE_IGNORED_KINDS) == set(_IGNORED_OPS) & set(fc.RECORDED_KINDS)
