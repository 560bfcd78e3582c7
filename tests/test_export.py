"""Models out: ONNX (onnx.checker + onnxruntime parity for a preset of every family), TorchScript and
safetensors round-trips, official module names in the graph, and one-line errors for unsupported options."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import ROOT
from safetensors import safe_open
from torch import nn

import hrnet_core as hc
from analysis.cli import main
from analysis.export.formats import (
    CONFIG_METADATA_KEY,
    export,
    make_input,
    onnx_module_names,
    onnxruntime_session,
    output_names,
    run_onnxruntime,
)

SMALL = (64, 64)
# One preset per family (pose, cls, seg, face, det V2p, seg OCR), exported at 64x64. The full presets are
# used (W48 OCR included); cls takes the smallest cls preset.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
FAMILY_PRESETS = ("pose_hrnet_w32_256x192", "cls_hrnet_w18_small_v1", "seg_hrnetv2_w18_small_v1",
                  "face_hrnetv2_w18_wflw", "det_hrnetv2p_w32", "seg_hrnetv2_w48_ocr")


def tiny(family: str, **head) -> dict:
    return {"family": family, "input_size": [64, 64], "width": 4, "modules": [1, 1, 1], "blocks": 1,
            "stage1": {"blocks": 1, "planes": 8}, **({"head": head} if head else {})}


def _model(cfg: hc.HRNetConfig) -> nn.Module:
    torch.manual_seed(0)
    # PyTorch's default init: outputs of order 1, so the parity bound is not met by near-zero outputs.
    return hc.build_model(cfg, init="default").eval()


def _eager(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.inference_mode():
        out = model(x)
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _bound(ys: list[torch.Tensor]) -> float:
    return 1e-4 * max(1.0, max(float(y.abs().max()) for y in ys))


@pytest.mark.parametrize("preset", FAMILY_PRESETS)
def test_onnx_export_matches_pytorch_in_onnxruntime(tmp_path, preset):
    cfg = hc.load_config(ROOT / "configs" / f"{preset}.yaml").with_input(SMALL)
    model = _model(cfg)
    report = export(cfg, "onnx", tmp_path / f"{preset}.onnx", model=model)
    x = make_input(cfg, 1, seed=3)
    ref = _eager(model, x)
    got = run_onnxruntime(onnxruntime_session(report.path), x)
    assert [tuple(g.shape) for g in got] == [tuple(r.shape) for r in ref]
    assert max(float((g - r).abs().max()) for g, r in zip(got, ref)) <= _bound(ref)
    assert report.max_abs_diff <= report.tolerance and report.outputs == output_names(cfg)
    # Node names keep the official module paths: every conv whose result reaches an output is in the graph.
    names = onnx_module_names(report.path)
    convs = {n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    live = convs if cfg.head.kind != "v1" else {n for n in convs if not n.startswith("stage4.2.branches.")
                                                or n.startswith("stage4.2.branches.0.")}
    assert live <= names, sorted(live - names)[:5]
    assert {"conv1", "layer1.0.conv1", "transition1.1.0.0", "stage2.0.fuse_layers.0.1.0"} <= names


def test_cli_onnx_dynamic_batch_from_a_checkpoint(tmp_path, capsys):
    cfg_path = tmp_path / "pose.yaml"
    cfg = hc.load_config(tiny("pose", kind="v1", outputs=3))
    cfg_path.write_text(hc.dump_config(cfg))
    model = _model(cfg)
    ck = tmp_path / "w.pth"
    torch.save(model.state_dict(), ck)
    out = tmp_path / "pose.onnx"
    assert main(["export", str(cfg_path), "--checkpoint", str(ck), "--format", "onnx", "-o", str(out),
                 "--dynamic-batch", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dynamic_batch"] and report["batch"] == 2 and report["max_abs_diff"] <= report["tolerance"]
    x = torch.randn(3, 3, 64, 64)
    ref = _eager(model, x)
    got = run_onnxruntime(onnxruntime_session(out), x)
    assert got[0].shape == ref[0].shape and float((got[0] - ref[0]).abs().max()) <= _bound(ref)


def test_onnx_dynamic_size_with_bilinear_upsampling(tmp_path):
    cfg = hc.load_config(tiny("face", kind="v2", outputs=5))
    model = _model(cfg)
    report = export(cfg, "onnx", tmp_path / "face.onnx", dynamic_size=True, model=model)
    session = onnxruntime_session(report.path)
    for hw in ((64, 64), (96, 160)):
        x = torch.randn(1, 3, *hw)
        ref = _eager(model, x)
        got = run_onnxruntime(session, x)
        assert got[0].shape == ref[0].shape and float((got[0] - ref[0]).abs().max()) <= _bound(ref)


@pytest.mark.parametrize("family, head", [("pose", {"kind": "v1", "outputs": 3}), ("det", {"kind": "v2p", "levels": 4})])
def test_cli_torchscript_round_trip(tmp_path, capsys, family, head):
    cfg = hc.load_config(tiny(family, **head))
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(hc.dump_config(cfg))
    model = _model(cfg)
    ck = tmp_path / "w.pth"
    torch.save(model.state_dict(), ck)
    out = tmp_path / "m.pt"
    assert main(["export", str(cfg_path), "--checkpoint", str(ck), "--format", "torchscript", "-o", str(out)]) == 0
    assert "verified by torch.jit.load" in capsys.readouterr().out
    x = torch.randn(1, 3, 64, 64)
    loaded = torch.jit.load(str(out))
    ref, got = _eager(model, x), _eager(loaded, x)
    assert len(got) == len(ref) and all(torch.equal(g, r) for g, r in zip(got, ref))


def test_cli_safetensors_round_trip_carries_the_config(tmp_path, capsys):
    cfg = hc.load_config(tiny("seg", kind="v2", outputs=4))
    cfg_path = tmp_path / "seg.yaml"
    cfg_path.write_text(hc.dump_config(cfg))
    model = _model(cfg)
    ck = tmp_path / "w.pth"
    torch.save(model.state_dict(), ck)
    out = tmp_path / "seg.safetensors"
    assert main(["export", str(cfg_path), "--checkpoint", str(ck), "--format", "safetensors", "-o", str(out)]) == 0
    capsys.readouterr()
    with safe_open(str(out), framework="pt") as f:
        assert hc.load_config_text(f.metadata()[CONFIG_METADATA_KEY]) == cfg
    fresh = hc.build_model(cfg).eval()
    assert not hc.load_checkpoint(fresh, out).missing
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(_eager(fresh, x)[0], _eager(model, x)[0])


@pytest.mark.parametrize("args, needle", [
    (["--format", "onnx", "--dynamic-size"], "--dynamic-size: not with nearest upsampling"),
    (["--format", "safetensors", "--input-size", "64", "64"], "--input-size: safetensors holds weights only"),
    (["--format", "torchscript", "--dynamic-batch"], "--dynamic-batch: only with --format onnx"),
    (["--format", "onnx", "--input-size", "70", "64"], "input_size"),
])
def test_unsupported_options_are_one_line(tmp_path, capsys, args, needle):
    cfg_path = tmp_path / "pose.yaml"
    cfg_path.write_text(hc.dump_config(hc.load_config(tiny("pose", kind="v1", outputs=3))))
    assert main(["export", str(cfg_path), "-o", str(tmp_path / "out.bin"), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out.bin").exists()
