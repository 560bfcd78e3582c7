"""Reports ready for a paper's appendix (app round 3, point 8): every app figure as SVG / PDF (Kaleido in the
system's chromium), and two ablation runs' curves on one figure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest
from streamlit.testing.v1 import AppTest

from analysis import settings
from analysis.ablation import report as rp
from analysis.ablation.compare_runs import CURVES, overlay_figure, run_curves
from analysis.ablation.report import load_metrics
from analysis.figure_files import FigureExportError, export_unavailable, figure_bytes

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")


def test_a_figure_becomes_svg_and_pdf():
    assert export_unavailable() is None, export_unavailable()
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[4.5, 1.25, 3.0], name="fusion all"))
    fig.update_layout(title="Validation AP per epoch", height=300)
    svg = figure_bytes(fig, "svg").decode("utf-8")
    assert svg.lstrip().startswith("<svg") and "Validation AP per epoch" in svg and 'height="300"' in svg
    assert figure_bytes(fig, "pdf").startswith(b"%PDF-")
    with pytest.raises(FigureExportError, match="figure format 'eps': expected one of svg, pdf, png"):
        figure_bytes(fig, "eps")


@pytest.fixture()
def two_runs(trained_runs, tmp_path, monkeypatch):
    """The smoke run and a copy of it whose AP is 10 points lower at every epoch, in a runs folder of their own."""
    root = tmp_path / "runs"
    a = root / "smoke"
    shutil.copytree(trained_runs / "smoke", a, ignore=shutil.ignore_patterns("*.pth"))
    b = root / "smoke_lower"
    shutil.copytree(a, b)
    for path in b.glob("*/seed*/metrics.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for r in rows:
            if r.get("AP") is not None:
                r["AP"] = r["AP"] - 0.1
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv(settings.RUNS_ENV, str(root))
    monkeypatch.setenv("HRNET_EXPLORER_USER_CONFIGS", str(tmp_path / "configs"))
    return a, b


def test_run_curves_are_the_seeds_mean_per_variant_and_epoch(two_runs):
    a, b = two_runs
    metrics = load_metrics(a)
    curves = run_curves(a, "AP")
    expected = 100 * metrics[metrics["AP"].notna()].groupby(["variant", "epoch"])["AP"].mean()
    got = curves.set_index(["variant", "epoch"])["mean"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)
    lower = run_curves(b, "AP").set_index(["variant", "epoch"])["mean"]
    assert (got - lower).round(9).eq(10.0).all()
    with pytest.raises(KeyError):
        run_curves(a, "no such metric")


def test_the_overlay_draws_both_runs_per_variant_solid_and_dashed(two_runs):
    a, b = two_runs
    fig = overlay_figure(a, b, "AP")
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    variants = list(dict.fromkeys(run_curves(a)["variant"]))
    assert [t.name for t in lines] == [f"smoke: {v}" for v in variants] + [f"smoke_lower: {v}" for v in variants]
    assert {t.line.dash for t in lines[:len(variants)]} == {"solid"} and {t.line.dash for t in lines[len(variants):]} == {"dash"}
    assert all(x.line.color == y.line.color for x, y in zip(lines[:len(variants)], lines[len(variants):]))  # same variant, same colour
    assert "smoke (solid) vs smoke_lower (dashed)" in fig.layout.title.text
    assert set(CURVES) >= {"AP", "PCK@0.1", "train_loss"}


def test_the_ablation_report_compares_two_runs_and_offers_every_figure_as_svg_and_pdf(two_runs):
    a, b = two_runs
    at = AppTest.from_file(APP, default_timeout=300).run()
    at.switch_page("app/ablation.py").run()
    at.selectbox(key="abl_pick").set_value(a.name).run()
    assert not at.exception and not at.error
    keys = {b.key for b in at.get("download_button")}
    figures = [c for c in at.get("plotly_chart") if c.proto.id]  # the report's figures
    stems = ("train_loss", "val_ap", "ap_vs_gflops", "final_metrics", "per_joint_ap")
    assert figures and {f"abl_fig_{s}_dl_{f}" for s in stems for f in ("svg", "pdf")} <= keys
    # the per-joint table: the seventeen COCO joints, the fewest-fusion variant first, the difference last
    joints = next(df.value for df in at.dataframe if "joint" in df.value.columns)
    assert len(joints) == 17 and joints["joint"].iloc[9] == "left_wrist"
    assert list(joints.columns) == ["joint", "final_only", "across_stage", "all", "all - final_only"]
    at.button_group(key="abl_joint_metric").set_value("PCK@0.1").run()
    pck = next(df.value for df in at.dataframe if "joint" in df.value.columns)
    expected = rp.run_joint_table(a, metric="PCK@0.1")["all"].map(lambda v: f"{v:.1f}")
    assert pck["all"].tolist() == expected.tolist()
    at.selectbox(key="abl_compare").set_value(b.name).run()
    assert not at.exception and not at.error
    keys = {b.key for b in at.get("download_button")}
    assert {"abl_overlay_dl_svg", "abl_overlay_dl_pdf"} <= keys
    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "smoke_lower" in c.proto.spec)
    assert [d["name"] for d in spec["data"] if d.get("mode") == "lines+markers"][-1].startswith("smoke_lower: ")


def test_ap_against_gflops_leaves_room_for_the_end_points_labels(two_runs):
    """Each variant's label sits over its point; plotly's own range put the end points on the plot's edges, so
    their labels were cut: the x range reaches past the cheapest and the dearest variant."""
    a, _ = two_runs
    metrics = load_metrics(a)
    summary = rp.load_summary(a, metrics)
    fig = rp.figures(metrics, summary)["ap_vs_gflops"]
    xs = [t.x[0] for t in fig.data]
    lo, hi = fig.layout.xaxis.range
    span = max(xs) - min(xs)
    assert len(xs) == 3 and lo < min(xs) - 0.1 * span and hi > max(xs) + 0.1 * span
