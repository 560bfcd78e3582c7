"""Every registered network's presets (``configs/networks/``: Lite-HRNet-18 / 30, naive Lite-HRNet-18, HRFormer-S / B)
through the same core as HRNet, as timm's tests run over ``list_models()``: load and round-trip, the closed-form
counts against fvcore, ``architecture()``, the inference fast path, checkpoints in mmpose's layouts, the CLI; and
the three shared mmpose configs' published params / MACs (``../shared/README.md``) through ``analyze``."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from conftest import NETWORK_PRESETS, SHARED
from safetensors.torch import save_file

import hrnet_core as hc
from analysis.cli import main
from analysis.complexity import analyze
from hrnet_core.fast_path import fast_inputs, fast_model, max_abs_diff
from hrnet_core.graph import architecture
from hrnet_core.networks import network_names
from hrnet_core.networks.model_config import NetworkConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SMALL = (64, 64)  # 1/32 maps of 2x2: every branch fuses, fvcore stays fast
MMPOSE = SHARED / "official" / "mmpose"
# shared/README.md: the published configs' params and Conv2d + Linear MACs at 256x192 (backbone + 1x1 head)
PUBLISHED = {"td-hm_litehrnet-18_8xb64-210e_coco-256x192.py": (1_130_769, 242_345_088),
             "td-hm_hrformer-small_8xb32-210e_coco-256x192.py": (7_746_779, 2_954_226_176),
             "td-hm_hrnet-w32_8xb64-210e_coco-256x192.py": (28_536_113, 7_645_003_776)}


def test_every_registered_network_has_presets():
    archs = {hc.load_config(p).arch for p in NETWORK_PRESETS}
    assert archs == set(network_names()) - {"hrnet"} and len(NETWORK_PRESETS) >= 5


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_mmpose_configs_params_and_macs_exact(name):
    report = analyze(hc.load_config(MMPOSE / name))
    assert (report.params, report.conv_linear_macs) == PUBLISHED[name]


@pytest.fixture(params=NETWORK_PRESETS, ids=lambda p: p.stem)
def preset(request) -> NetworkConfig:
    return hc.load_config(request.param)


# One preset per network and block kind for the slow checks (fvcore, export); the wider and deeper presets run
# the same code, and their counts are checked against fvcore in test_network_litehrnet / test_network_hrformer.
REPRESENTATIVE = [p for p in NETWORK_PRESETS if p.stem in
                  ("litehrnet_18_256x192", "naive_litehrnet_18_256x192", "hrformer_small_256x192")]


@pytest.fixture(params=REPRESENTATIVE, ids=lambda p: p.stem)
def representative(request) -> NetworkConfig:
    return hc.load_config(request.param)


def test_representatives_cover_every_network():
    assert {hc.load_config(p).arch for p in REPRESENTATIVE} == set(network_names()) - {"hrnet"}


def test_loads_and_round_trips(preset):
    assert isinstance(preset, NetworkConfig)
    assert hc.load_config_text(hc.dump_config(preset)) == preset
    model = hc.build_model(preset)
    assert hc.count_params(preset) == sum(p.numel() for p in model.parameters())


def test_closed_form_equals_fvcore(representative):
    preset = representative
    cfg = preset.with_input(SMALL)
    a, f = analyze(cfg), analyze(cfg, backend="fvcore")
    for field in ("params", "conv_linear_macs", "attention_macs", "fvcore_flops", "activations"):
        assert getattr(a, field) == getattr(f, field), field
    cols = ["params", "flops", "macs", "activations"]
    assert a.breakdown[cols].to_dict("records") == f.breakdown[cols].to_dict("records")  # part by part
    assert (a.attention_macs > 0) == (preset.arch == "hrformer")


def test_architecture_parts_own_every_parameter_once(preset):
    cfg = preset.with_input(SMALL)
    graph = architecture(cfg)
    model = hc.build_on_meta(cfg)
    for name, _ in model.named_parameters():
        assert sum(p.owns(name) for p in graph.parts) == 1, name
    assert sum(p.params for p in graph.parts) == hc.count_params(cfg)
    assert graph.maps and {m.resolution for m in graph.maps} == {4, 8, 16, 32}
    assert all(a in {p.key for p in graph.parts} and b in {p.key for p in graph.parts} for a, b in graph.edges)


def test_fast_path_matches_the_reference(preset):
    torch.manual_seed(0)
    model = hc.build_model(preset.with_input(SMALL)).eval()
    fast = fast_model(model, input_hw=SMALL)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())  # every BatchNorm folded
    x = torch.randn(1, 3, *SMALL)
    with torch.no_grad():
        ref, out = model(x), fast(fast_inputs(x))
    assert max_abs_diff(ref, out) <= 1e-4 * max(1.0, float(ref.abs().max()))


def test_mmpose_checkpoint_layouts_load_strictly(preset, tmp_path):
    model = hc.build_model(preset).eval()
    state = model.state_dict()
    released = {("head." if k.startswith("final_layer.") else "backbone.") + k: v for k, v in state.items()}
    save_file({k: v.contiguous() for k, v in released.items()}, str(tmp_path / "topdown.safetensors"))
    other = hc.build_model(preset).eval()
    report = hc.load_checkpoint(other, tmp_path / "topdown.safetensors")
    assert not report.missing and not report.unexpected
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), other(x))
    # a bare backbone state_dict (no prefix) into the headless model
    headless = replace(preset, head=None)
    bare = hc.build_model(headless).eval()
    save_file({k: v.contiguous() for k, v in bare.state_dict().items()}, str(tmp_path / "backbone.safetensors"))
    assert not hc.load_checkpoint(hc.build_model(headless), tmp_path / "backbone.safetensors").missing
    with torch.no_grad():
        assert isinstance(bare(x), list)
    # the config of both files from their weights alone: the same tensors, the same counts
    for path, head in (("topdown.safetensors", preset.head), ("backbone.safetensors", None)):
        cfg, _ = hc.config_from_checkpoint(tmp_path / path)
        assert (cfg.arch, cfg.head) == (preset.arch, head)
        assert hc.count_params(cfg) == hc.count_params(replace(preset, head=head))
        if preset.arch == "litehrnet":  # every Lite-HRNet field is in its weights
            assert cfg.backbone == preset.backbone


@pytest.mark.parametrize("name", ["litehrnet_18", "hrformer_small"])
def test_infer_config_of_the_shared_mmpose_backbones(name, capsys):
    """The shared fixtures' mmpose-named backbone weights give back the recorded backbone's structure."""
    folder = SHARED / "fixtures" / "family" / name
    cfg, _ = hc.config_from_checkpoint(folder / "state_dict.safetensors")
    recorded = hc.config_from_mmpose(json.loads((folder / "meta.json").read_text())["backbone"])
    assert cfg.head is None and cfg.arch == recorded.arch
    assert {k: tuple(v.shape) for k, v in hc.build_on_meta(cfg).state_dict().items()} == \
        {k: tuple(v.shape) for k, v in hc.build_on_meta(recorded).state_dict().items()}
    assert main(["inspect", "--checkpoint", str(folder / "state_dict.safetensors")]) == 0
    out = capsys.readouterr().out
    assert f"network: {cfg.arch}" in out and "backbone.norm_cfg.type" in out  # what the weights could not tell


def test_infer_config_refuses_a_broken_network_checkpoint():
    state = hc.build_on_meta(hc.load_config(REPRESENTATIVE[0])).state_dict()
    state.pop(next(k for k in state if k.endswith(".0.fuse_layers.0.1.0.weight")))  # recognized, one tensor short
    with pytest.raises(hc.NotAnHRNetError, match="1 missing"):
        hc.infer_config(state)


def test_cli_inspect_and_analyze(preset, capsys):
    path = str(next(p for p in NETWORK_PRESETS if p.stem == preset.name))
    assert main(["inspect", path, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == hc.count_params(preset) and out["arch"] == preset.arch
    assert main(["analyze", path, "--json", "--input-size", "64", "64"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["arch"] == preset.arch and rep["conv_linear_macs"] == analyze(preset.with_input(SMALL)).conv_linear_macs


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_export_with_parity(representative, fmt, tmp_path):
    preset = representative
    from analysis.export.formats import export, make_input, onnxruntime_session, output_names, run_onnxruntime

    cfg = preset.with_input(SMALL)
    model = hc.build_model(cfg).eval()
    report = export(cfg, fmt, tmp_path / f"m.{fmt}", model=model)  # the file is verified by reloading it
    assert report.max_abs_diff <= report.tolerance and report.outputs == output_names(cfg) == ("heatmaps",)
    if fmt == "onnx":  # and once more here, in onnxruntime, on another input
        x = make_input(cfg, 1, seed=3)
        with torch.no_grad():
            ref = model(x)
        got = run_onnxruntime(onnxruntime_session(report.path), x)[0]
        assert float((got - ref).abs().max()) <= 1e-4 * max(1.0, float(ref.abs().max()))


def test_feature_maps_per_branch_and_module(representative):
    """``architecture()``'s maps are what one forward records (every exchange module's outputs after its fusion),
    and the capture reduces each of them next to the head's heatmaps."""
    from analysis.features import capture

    cfg = representative.with_input(SMALL)
    model = hc.build_model(cfg, init="default").eval()
    graph = architecture(cfg)
    x = torch.randn(1, 3, *SMALL)
    with torch.no_grad():
        record, out = model.forward_intermediates(x)
        ref = model(x)
    maps = {m.key: m.shape for m in graph.maps}
    assert {k: tuple(v.shape) for k, v in record.items() if k in maps} == maps
    assert {(m.stage, m.module) for m in graph.maps} == {(p.stage, p.module) for p in graph.parts
                                                         if p.kind == "branch"}  # every module, no branch-less key
    assert torch.equal(out, ref)  # the recording forward is the model's forward
    cap = capture(model, cfg, "astronaut")
    assert set(maps) | {"stem"} <= set(cap.branches)
    assert cap.head.kind == "heatmaps" and cap.head.maps.shape[0] == cfg.head.outputs


def test_cli_features(tmp_path, capsys):
    path = REPRESENTATIVE[0]
    cfg = hc.load_config(path)
    assert main(["features", str(path), "-o", str(tmp_path / "f"), "--topk", "2"]) == 0
    written = {p.stem for p in (tmp_path / "f" / "maps").glob("*.png")}
    assert {m.key for m in architecture(cfg).maps} | {"stem"} <= written  # every module's maps and the stem
    assert cfg.spec.title in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["branch", "stage"])
def test_profile_by_part(representative, mode):
    """Every part of the parts plan is timed (hooks on its modules), in forward order; the closed-form MACs of
    the rows add up to the model's; the roofline's traffic counter charges one row per profile row."""
    from analysis.complexity.network_profile import BETWEEN
    from analysis.complexity.profiler import profile
    from analysis.complexity.roofline import count_traffic

    cfg = representative.with_input(SMALL)
    prof = profile(cfg, device="cpu", mode=mode, warmup=0, iters=1)
    plans = [p.key for p in architecture(cfg).parts]
    body = prof[~prof["part"].isin(["total", BETWEEN])]
    if mode == "branch":
        assert list(body["part"]) == plans
    else:
        assert set(body["stage"]) == {p.stage for p in architecture(cfg).parts}
    weighted = {p.key if mode == "branch" else p.stage for p in architecture(cfg).parts if p.params}
    # every row whose modules hold weights ran under the hooks (HRFormer skips its identity transitions)
    assert (body[body["part"].isin(weighted) | body["stage"].isin(weighted)]["median_ms"] > 0).all()
    report = analyze(cfg)
    assert round(prof[prof["part"] == "total"]["gmacs"].iloc[0] * 1e9) == report.conv_linear_macs + report.attention_macs
    traffic = count_traffic(cfg, hc.build_model(cfg).eval(), "cpu", mode)
    assert len(traffic) == len(prof) - 1
    calls = dict(zip(prof["part"], (t.op_calls for t in traffic)))
    assert all(calls[k] > 0 for k in body["part"] if k in weighted)


def test_cli_profile_and_roofline(capsys):
    path = next(p for p in REPRESENTATIVE if hc.load_config(p).arch == "litehrnet")
    assert main(["analyze", str(path), "--input-size", "64", "64", "--profile", "--device", "cpu", "--warmup", "0",
                 "--iters", "1"]) == 0
    out = capsys.readouterr().out
    assert "% peak" in out and BETWEEN_ROW in out
    assert main(["analyze", str(path), "--profile", "--engine", "onnxruntime", "--iters", "1"]) == 2
    assert "onnxruntime" in capsys.readouterr().err


BETWEEN_ROW = "between parts"


FUSION_PRESETS_OF = [p for p in REPRESENTATIVE if hc.load_config(p).spec.with_fusion is not None]


@pytest.mark.parametrize("path", FUSION_PRESETS_OF, ids=lambda p: p.stem)
def test_one_epoch_smoke_ablation_with_a_fusion_schedule(path, tmp_path, capsys):
    """The fusion ablation on another network: the per-module schedule is what each job trained (its
    model.yaml), counted by analyze, and no HRNet paper figure is set beside it."""
    out = tmp_path / "run"
    base = hc.load_config(path)
    flags = [i % 2 for i in range(sum(len(row) for row in base.spec.fusion_schedule(base.backbone)))]
    assert main(["ablate", "--smoke", "--epochs", "1", "--base", str(path), "--variants", "none",
                 "--schedule", "mixed=" + ",".join(map(str, flags)), "--out", str(out)]) == 0
    doc = json.loads((out / "summary.json").read_text())
    rows = {r["variant"]: r for r in doc["variants"]}
    assert set(rows) == {"none", "mixed"} and all(r["state"] == "done" for r in rows.values())
    for name, fusions in (("none", 0), ("mixed", sum(flags))):
        cfg = hc.load_config(out / name / "seed0" / "model.yaml")
        assert cfg.arch == hc.load_config(path).arch and cfg.num_fusions == fusions == rows[name]["fusions"]
        assert rows[name]["params"] == analyze(cfg).params
    assert doc["paper"] is None or not doc["paper"]  # the HRNet paper's ablation belongs to HRNet runs
    assert rows["none"]["params"] < rows["mixed"]["params"]


def test_ablation_refuses_a_network_without_fusion_switch(tmp_path, capsys):
    # Every registered network has a fusion switch now: one registered here without it (the spec's own hooks off).
    from dataclasses import replace

    from hrnet_core.networks.registry import register

    path = REPRESENTATIVE[-1]
    spec = hc.load_config(path).spec
    register(replace(spec, with_fusion=None, fusion_schedule=None))
    try:
        assert main(["ablate", "--smoke", "--base", str(path), "--out", str(tmp_path / "run")]) == 2
    finally:
        register(spec)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fusion" in err[0] and not (tmp_path / "run").exists()


def test_cli_diagram(representative, tmp_path, capsys):
    path = next(p for p in REPRESENTATIVE if hc.load_config(p).name == representative.name)
    assert main(["diagram", str(path), "-o", str(tmp_path / "d.dot"), "--input-size", "128", "96"]) == 0
    graph = architecture(representative.with_input((128, 96)))
    fused = {(p.stage, p.module) for p in graph.parts if p.kind == "fusion"}
    assert f"fusion in {len(fused)} of {len(graph.exchange_modules)} modules" in capsys.readouterr().out
    assert "digraph" in (tmp_path / "d.dot").read_text()


def test_equal_configs_spelled_differently_keep_their_own_text():
    """``dump_config`` remembers texts, yet a knob given as ``0`` and as ``0.0`` (equal configs) dumps as typed,
    whichever was dumped first."""
    text = next(p for p in NETWORK_PRESETS if p.stem == "hrformer_small_256x192").read_text()
    assert "drop_path_rate: 0.1" in text
    as_float = hc.load_config_text(text.replace("drop_path_rate: 0.1", "drop_path_rate: 0.0"), name="spelled")
    as_int = hc.load_config_text(text.replace("drop_path_rate: 0.1", "drop_path_rate: 0"), name="spelled")
    assert as_float == as_int
    for _ in range(2):  # the second round is answered from the remembered texts
        assert "drop_path_rate: 0.0\n" in hc.dump_config(as_float)
        assert "drop_path_rate: 0\n" in hc.dump_config(as_int)
