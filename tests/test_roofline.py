"""analysis.complexity.roofline: peak, operator calls and traffic of the profiler's own parts, per-part and per-branch
rates against the peak, the reading, and ``analyze --profile --by branch``."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from torch import nn

import hrnet_core as hc
from analysis import cli
from analysis.complexity import AnalysisError, analyze
from analysis.complexity.profiler import model_parts, profile
from analysis.complexity.roofline import (
    ROOFLINE_COLUMNS,
    Peak,
    count_traffic,
    group_parts,
    measure_peak,
    measured,
    part_traffic,
    reading,
    roof,
    roofline_frame,
)

TINY = {"family": "pose", "input_size": [64, 64], "width": 4, "modules": [1, 1, 1], "blocks": 1}
FAKE_PEAK = Peak(100.0, "float32", "cpu", 1, 64, 1, 10.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_measure_peak_is_a_rate_and_says_how():
    p = measure_peak("cpu", size=128, repeats=2)
    assert p.gflop_per_s > 0 and p.gb_per_s > 0 and p.size == 128 and p.dtype == "float32"
    assert "best of 2 float32 128x128 matmuls on cpu" in p.describe()
    with pytest.raises(AnalysisError):
        measure_peak("cpu", size=4)


def test_traffic_counts_every_operator_and_the_weights():
    cfg = hc.load_config(TINY)
    model = hc.build_model(cfg).eval()
    parts = model_parts(model, "stage")
    traffic = part_traffic(parts, torch.randn(1, 3, 64, 64), model)
    assert len(traffic) == len(parts)
    stem = traffic[0]
    assert stem.op_calls == 6  # conv, bn, relu twice
    conv_bytes = sum(m.weight.numel() * 4 for m in model.modules() if isinstance(m, nn.Conv2d))
    all_bytes = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
    weights = sum(t.weight_bytes for t in traffic)
    assert conv_bytes <= weights <= all_bytes
    # every tensor the analysis counts as written is written (in-place writes are counted here as well)
    assert sum(t.written_bytes for t in traffic) >= analyze(cfg).activations * 4
    assert all(t.read_bytes > t.weight_bytes for t in traffic if t.op_calls)


def test_fast_path_traffic_drops_the_batchnorms():
    cfg = hc.load_config(TINY)
    model = hc.build_model(cfg).eval()
    plain, fast = count_traffic(cfg, model, "cpu", "stage"), count_traffic(cfg, model, "cpu", "stage", fast=True)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(t.op_calls for t in plain) - sum(t.op_calls for t in fast) == n_bn
    assert sum(t.written_bytes for t in fast) < sum(t.written_bytes for t in plain)


def test_frame_rates_and_groups():
    cfg = hc.load_config(TINY)
    model = hc.build_model(cfg).eval()
    prof = profile(cfg, device="cpu", mode="branch", warmup=0, iters=1, model=model)
    traffic = count_traffic(cfg, model, "cpu", "branch")
    frame = roofline_frame(prof, traffic, FAKE_PEAK)
    body = prof[prof["part"] != "total"]
    assert list(frame.columns) == list(ROOFLINE_COLUMNS) and list(frame["part"]) == list(body["part"])
    assert frame["gflop"].tolist() == pytest.approx((2 * body["gmacs"]).tolist())
    assert frame["pct_of_peak"].tolist() == pytest.approx((frame["gflop_per_s"]).tolist())  # peak 100 GFLOP/s
    assert frame["share"].sum() == pytest.approx(1.0) and frame["flop_share"].sum() == pytest.approx(1.0)
    g = group_parts(frame, FAKE_PEAK)
    assert list(g["part"]) == ["stem", "layer1", "transitions", "branch 0 (1/4)", "branch 1 (1/8)", "fusions",
                               "branch 2 (1/16)", "branch 3 (1/32)", "head"]
    assert g["op_calls"].sum() == frame["op_calls"].sum() and g["median_ms"].sum() == pytest.approx(frame["median_ms"].sum())
    b3 = g.set_index("part").loc["branch 3 (1/32)"]
    rows = frame[frame["part"].str.endswith(".branch3")]
    assert b3["gflop_per_s"] == pytest.approx(rows["gflop"].sum() / (rows["median_ms"].sum() / 1e3))
    with pytest.raises(AnalysisError):
        roofline_frame(prof, traffic[:-1], FAKE_PEAK)
    two = profile(cfg, device="cpu", batch_sizes=(1, 2), mode="stage", warmup=0, iters=1, model=model)
    with pytest.raises(AnalysisError, match="one batch"):
        roofline_frame(two, traffic, FAKE_PEAK)


def _grouped(**over) -> pd.DataFrame:
    base = {"part": ["stem", "branch 0 (1/4)", "fusions", "branch 3 (1/32)"], "group": None, "batch": 1,
            "median_ms": [10.0, 40.0, 30.0, 20.0], "share": [0.1, 0.4, 0.3, 0.2], "gflop": [1.0, 6.0, 1.0, 2.0],
            "flop_share": [0.1, 0.6, 0.1, 0.2], "op_calls": [6, 200, 250, 80], "read_mib": 1.0, "weight_mib": 0.1,
            "written_mib": 1.0}
    base.update(over)
    df = pd.DataFrame(base)
    df["group"] = df["part"]
    df["gflop_per_s"] = df["gflop"] / (df["median_ms"] / 1e3)
    df["pct_of_peak"] = 100 * df["gflop_per_s"] / FAKE_PEAK.gflop_per_s
    df["intensity"] = 1e9 * df["gflop"] / (2 * 2**20)
    return df


def test_reading_names_the_numbers():
    text = reading(_grouped(), FAKE_PEAK)
    assert "does 10.0 GFLOP in 100.0 ms: 100 GFLOP/s, 100 % of the measured peak" in text
    assert "Most efficient, branch 0 (1/4): 60 % of the FLOPs in 40 % of the time at 150 % of peak" in text
    assert "least efficient, fusions: 10 % of the FLOPs in 30 % of the time at 33 % of peak" in text
    assert "Slower than their FLOPs: fusions (30 % of the time, 10 % of the FLOPs)" in text


def test_roof_is_bandwidth_then_peak():
    r = roof(FAKE_PEAK, [0.1, 50.0])
    assert r["intensity"].min() <= 0.05 and r["intensity"].max() >= 100
    assert (r["gflop_per_s"].diff().dropna() >= 0).all() and r["gflop_per_s"].max() == FAKE_PEAK.gflop_per_s
    low = r.iloc[0]
    assert low["gflop_per_s"] == pytest.approx(FAKE_PEAK.gb_per_s * low["intensity"])


def test_measured_end_to_end():
    prof, rf = measured(TINY, device="cpu", mode="branch", warmup=0, iters=1, peak=FAKE_PEAK, fast=True)
    assert prof["dtype"].str.contains("fast path").all() and rf.peak is FAKE_PEAK
    assert "branch 3 (1/32)" in set(rf.grouped["part"]) and rf.text.startswith("At batch 1 on cpu")


def test_cli_profile_by_branch_shows_rates_and_peak(capsys, tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("family: pose\ninput_size: [64, 64]\nwidth: 4\nmodules: [1, 1, 1]\nblocks: 1\n")
    code = cli.main(["analyze", str(cfg), "--profile", "--by", "branch", "--device", "cpu", "--warmup", "0", "--iters", "1"])
    out = capsys.readouterr().out
    assert code == 0 and "stage4.0.fusion" in out  # --by branch profiles per branch
    table = out[out.index("achieved GFLOP/s"):]
    header = next(ln for ln in table.splitlines() if ln.strip().startswith("part"))
    assert "GFLOP/s" in header and "% peak" in header and "op calls" in header and "FLOP/byte" in header
    for group in ("branch 0 (1/4)", "branch 3 (1/32)", "fusions", "transitions"):
        assert any(ln.strip().startswith(group) for ln in table.splitlines())
    assert "matmuls on cpu" in table and "% of the measured peak" in table
    code = cli.main(["analyze", str(cfg), "--json", "--profile", "--by", "branch", "--device", "cpu", "--warmup", "0",
                     "--iters", "1", "--fast"])
    d = json.loads(capsys.readouterr().out)
    groups = d["roofline"]["groups"]
    assert code == 0 and {g["part"] for g in groups} >= {"fusions", "branch 2 (1/16)"}
    assert all(g["pct_of_peak"] > 0 for g in groups) and d["roofline"]["peak"]["gflop_per_s"] > 0
    assert "fast path" in d["profile"][0]["dtype"]
