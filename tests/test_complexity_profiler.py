"""analysis.complexity.profiler: the timed pieces are the real forward pass, and the frame has what the UI shows."""

from __future__ import annotations

import time

import pytest
import torch

import hrnet_core as hc
from analysis.complexity import AnalysisError, analyze
from analysis.complexity.profiler import PROFILE_COLUMNS, format_profile, model_parts, profile, run_parts

TINY = [
    {"family": "pose", "input_size": [64, 64], "width": 4, "modules": [1, 2, 1], "blocks": 1},
    {"family": "seg", "input_size": [65, 71], "width": 4, "modules": [1, 1, 2], "blocks": 1,
     "fusion": [[True], [False], [True, False]]},
    {"family": "det", "input_size": [64, 64], "width": 4, "modules": [1, 1, 1], "blocks": 1,
     "head": {"kind": "v2p", "channels": 8, "levels": 3}},
    {"family": "cls", "input_size": [64, 64], "width": 4, "modules": [1, 1, 1], "blocks": 1,
     "head": {"kind": "cls", "outputs": 5}},
    {"family": "seg", "input_size": [64, 64], "width": 4, "modules": [1, 1], "blocks": 1,
     "head": {"kind": "ocr", "channels": 8, "key_channels": 4, "outputs": 3}},
    {"family": "pose", "input_size": [64, 64], "width": 4, "modules": [1, 1, 1], "blocks": 1,
     "head": {"kind": "higher", "deconv_blocks": 1}},
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("data", TINY, ids=lambda d: d["family"] + "-" + d.get("head", {}).get("kind", "default"))
@pytest.mark.parametrize("mode", ["stage", "branch"])
def test_parts_reproduce_the_forward_pass(data, mode):
    cfg = hc.load_config(data)
    model = hc.build_model(cfg).eval()
    x = torch.randn(2, 3, *cfg.input_hw)
    with torch.no_grad():
        ref = model(x)
        out = run_parts(model_parts(model, mode), x)
    refs, outs = (ref, out) if isinstance(ref, list) else ([ref], [out])
    assert len(refs) == len(outs) and all(torch.equal(a, b) for a, b in zip(refs, outs))


def test_profile_frame_on_cpu():
    cfg = hc.load_config(TINY[0])
    df = profile(cfg, device="cpu", batch_sizes=(1, 2), mode="branch", warmup=0, iters=2)
    assert list(df.columns) == list(PROFILE_COLUMNS)
    parts = list(df[df["batch"] == 1]["part"])
    assert parts[:3] == ["stem", "layer1", "transition1"] and parts[-2:] == ["head", "total"]
    assert "stage3.1.branch2" in parts and "stage3.1.fusion" in parts and "stage4.0.fusion" in parts
    assert set(df["device"]) == {"cpu"} and set(df["dtype"]) == {"float32"}
    assert (df["median_ms"] > 0).all() and df["peak_mib"].isna().all()  # CPU: no allocator statistics
    body = df[(df["batch"] == 2) & (df["part"] != "total")]
    total = df[(df["batch"] == 2) & (df["part"] == "total")].iloc[0]
    assert body["share"].sum() == pytest.approx(1.0)
    rep = analyze(cfg, batch=2)
    assert total["gmacs"] * 1e9 == pytest.approx(rep.conv_linear_macs)
    assert total["activation_mib"] == pytest.approx(rep.activation_mib(dtype="float32"))
    assert "stage4.0.fusion" in format_profile(df)


def test_profile_reports_progress_outside_the_timed_parts():
    cfg = hc.load_config(TINY[0])
    seen: list[tuple[float, str]] = []

    def slow_report(fraction: float, what: str) -> None:
        seen.append((fraction, what))
        time.sleep(0.05)  # a bar's drawing: in no part's time

    df = profile(cfg, device="cpu", batch_sizes=(1, 2), mode="stage", warmup=0, iters=2, progress=slow_report)
    body = df[df["part"] != "total"]
    parts = len(body) // 2
    fractions = [f for f, _ in seen]
    assert len(seen) == 2 * 2 * parts and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert seen[0][1].startswith("batch 1 on cpu: 0 warm-up + 2 timed passes") and seen[-1][1].startswith("batch 2")
    # were the sleeps timed, every part's fastest pass would take >= 50 ms (this width-4 model's take ~1 ms)
    assert (body["min_ms"] < 50).all(), body[["part", "batch", "min_ms"]]


def test_an_exception_from_progress_stops_the_profile():
    class Cancelled(BaseException):
        """What Streamlit raises in a script asked to stop."""

    calls = []

    def report(fraction: float, what: str) -> None:
        calls.append(fraction)
        if len(calls) == 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        profile(hc.load_config(TINY[0]), device="cpu", batch_sizes=(1,), warmup=0, iters=50, progress=report)
    assert len(calls) == 3


def test_profile_higherhrnet_head():
    """HigherHRNet's head (its transposed conv included, charged as the paper convention does) is one part."""
    cfg = hc.load_config(TINY[-1])
    df = profile(cfg, device="cpu", mode="branch", warmup=0, iters=1)
    assert list(df["part"])[-2:] == ["head", "total"] and "stage4.0.fusion" in set(df["part"])
    rep = analyze(cfg)
    head = rep.breakdown[rep.breakdown["stage"] == "head"]
    assert df[df["part"] == "head"].iloc[0]["gmacs"] * 1e9 == pytest.approx(int(head["macs"].sum()))
    assert df[df["part"] == "total"].iloc[0]["gmacs"] * 1e9 == pytest.approx(rep.conv_linear_macs)


def test_profile_stage_mode_and_errors():
    cfg = hc.load_config(TINY[3])
    df = profile(cfg, device="cpu", mode="stage", warmup=0, iters=1)
    assert list(df["part"]) == ["stem", "layer1", "transition1", "stage2", "transition2", "stage3", "transition3",
                                "stage4", "head", "total"]
    with pytest.raises(AnalysisError):
        profile(cfg, device="cpu", mode="module", iters=1)
    with pytest.raises(AnalysisError):
        profile(cfg, device="cpu", batch_sizes=(0,), iters=1)
    with pytest.raises(AnalysisError):
        profile(cfg, device="tpu", iters=1)
    if not torch.cuda.is_available():
        with pytest.raises(AnalysisError, match="CUDA"):
            profile(cfg, device="cuda", iters=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_profile_on_cuda():
    cfg = hc.load_config(TINY[0])
    df = profile(cfg, device="cuda", batch_sizes=(1, 4), mode="branch", warmup=2, iters=3)
    assert df["device"].str.startswith("cuda").all() and (df["peak_mib"] > 0).all()
