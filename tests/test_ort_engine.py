"""onnxruntime as a CPU inference path: the feature-map forward and the part-by-part latency profile give
the same tensors as PyTorch."""

from __future__ import annotations

import pytest
import torch

import hrnet_core as hc
from analysis.cli import main
from analysis.complexity.profiler import model_parts, onnxruntime_parts, profile, run_parts
from analysis.export.ort_engine import EngineError, check_engine
from analysis.features.capture import capture

TINY = {"family": "pose", "input_size": [64, 64], "width": 4, "modules": [1, 1, 1], "blocks": 1,
        "stage1": {"blocks": 1, "planes": 8}, "head": {"kind": "v1", "outputs": 3}}


def _model(spec=TINY):
    torch.manual_seed(0)
    cfg = hc.load_config(spec)
    return cfg, hc.build_model(cfg, init="default").eval()


def _bound(y: torch.Tensor) -> float:
    return 1e-4 * max(1.0, float(y.abs().max()))


@pytest.mark.parametrize("family, head", [("pose", {"kind": "v1", "outputs": 3}), ("seg", {"kind": "ocr", "outputs": 4,
                                                                                        "channels": 8, "key_channels": 4})])
def test_feature_capture_in_onnxruntime_equals_torch(family, head):
    cfg, model = _model({**TINY, "family": family, "head": head})
    a = capture(model, cfg, "astronaut", device="cpu", keep_raw=True)
    b = capture(model, cfg, "astronaut", device="cpu", keep_raw=True, engine="onnxruntime")
    assert "onnxruntime" in b.device and b.timings["export_s"] > 0
    assert list(a.branches) == list(b.branches)
    for key, x in a.branches.items():
        y = b.branches[key]
        assert x.shape == y.shape and abs(x.raw - y.raw).max() <= _bound(torch.from_numpy(x.raw)), key
    assert a.head.shapes == b.head.shapes
    if a.head.maps is not None:
        assert abs(a.head.maps - b.head.maps).max() <= _bound(torch.from_numpy(a.head.maps))


def test_onnxruntime_parts_reproduce_the_model():
    mode = "stage"  # "branch" runs the same code path with 4x the exports
    cfg, model = _model()
    x = torch.randn(2, 3, 64, 64)
    parts = onnxruntime_parts(model_parts(model, mode), x, model)
    assert [p.name for p in parts] == [p.name for p in model_parts(model, mode)]
    with torch.inference_mode():
        ref = model(x)
        got = run_parts(parts, x)
    assert got.shape == ref.shape and float((got - ref).abs().max()) <= _bound(ref)
    df = profile(cfg, device="cpu", mode=mode, warmup=0, iters=1, engine="onnxruntime", model=model)
    assert df["dtype"].iloc[0].startswith("float32, onnxruntime") and (df["median_ms"] > 0).all()
    assert list(df["part"]) == [p.name for p in parts] + ["total"]


def test_analyze_profile_engine_flag(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(hc.dump_config(hc.load_config(TINY)))
    assert main(["analyze", str(path), "--profile", "--device", "cpu", "--engine", "onnxruntime",
                 "--warmup", "0", "--iters", "1"]) == 0
    assert "onnxruntime" in capsys.readouterr().out


def test_onnxruntime_off_the_cpu_is_refused():
    with pytest.raises(EngineError, match="--engine onnxruntime: runs on the CPU"):
        check_engine("onnxruntime", "cuda")
