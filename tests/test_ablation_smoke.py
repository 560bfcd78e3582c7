"""`hrnet-explorer ablate --smoke` end to end through the CLI, and what it leaves behind."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT

import hrnet_core as hc
from analysis.ablation.joints import JOINT_FIELDS
from analysis.ablation.progress import list_runs, read_progress
from analysis.ablation.report import load_summary, paper_table
from analysis.complexity import analyze

METRIC_FIELDS = ("AP", "AR", "PCK@0.05", "PCK@0.1", "LR-swap")
ROW_FIELDS = ("epoch", "train_loss", "lr", "images_per_s", "peak_mem_mib", "wall_s", *METRIC_FIELDS)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smoke")
    out = tmp / "runs" / "smoke"
    env = dict(os.environ, HRNET_EXPLORER_CACHE=str(tmp / "cache"), PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "analysis.cli", "ablate", "--smoke", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout, wall


def test_smoke_runs_three_variants_quickly(smoke_run):
    out, stdout, wall = smoke_run
    m = re.search(r"smoke ablation: 3 variants x 1 seed\(s\), 3 done, 0 failed, in ([\d.]+) s", stdout)
    assert m, stdout[-2000:]
    # Between two jobs the whole run's progress, its ETA from the job that just ended.
    assert re.search(r"^run smoke: jobs 3: 1 done, 1 running, 1 queued; run ETA about \d+ s$", stdout, re.M), stdout


def test_summary_json_and_csv(smoke_run):
    out, _, _ = smoke_run
    doc = json.loads((out / "summary.json").read_text())
    rows = doc["variants"]
    assert [(r["variant"], r["fusions"]) for r in rows] == [("final_only", 1), ("across_stage", 3), ("all", 8)]
    for r in rows:
        assert r["state"] == "done" and r["seeds_done"] == 1
        for key in ("params", "gflops", "images_per_s", "wall_s"):
            assert isinstance(r[key], (int, float)) and r[key] > 0, key
        assert "peak_mem_mib" in r  # null on CPU
        for key in METRIC_FIELDS + ("train_loss",):
            assert isinstance(r[f"{key}_mean"], float) and r[f"{key}_std"] == 0.0, key
        # params and GFLOPs are analysis.complexity's figures for the variant that was trained.
        cfg = hc.load_config(out / r["variant"] / "seed0" / "model.yaml")
        rep = analyze(cfg)
        assert r["params"] == rep.params and r["gflops"] == pytest.approx(rep.gflops_paper)
    assert rows[0]["gflops"] < rows[1]["gflops"] < rows[2]["gflops"]
    assert doc["differences"] and any(d.startswith("Data: the built-in") for d in doc["differences"])
    with open(out / "summary.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [t["variant"] for t in table] == ["final_only", "across_stage", "all"]
    assert {"fusions", "params", "gflops", "images_per_s", "peak_mem_mib", "wall_s", "AP_mean", "AP_std",
            "AR_mean", "PCK@0.05_mean", "PCK@0.1_mean"} <= set(table[0])
    assert load_summary(out)["variant"].tolist() == ["final_only", "across_stage", "all"]


def test_report_md_and_html(smoke_run):
    out, stdout, _ = smoke_run
    md = (out / "report.md").read_text()
    for name, n in (("final_only", 1), ("across_stage", 3), ("all", 8)):
        assert re.search(rf"^\| {name} \| {n} \| ", md, re.M), name
    assert "## How this run differs from the paper" in md
    paper, note = paper_table()
    if paper is not None:  # ../shared present: the paper's figures are shown beside ours
        for ap in paper["AP"]:
            assert f"{ap:.1f}" in md
    else:
        assert "not found" in note and note in md
    page = (out / "report.html").read_text()
    assert page.count("Plotly.newPlot") == 6  # loss, AP, AP vs GFLOPs, bars, per-joint AP, effect of fusion
    # per joint: both tables, a row per COCO joint, a column per variant (fewest fusions first), the difference
    section = md.split("## Per joint", 1)[1].split("## The paper", 1)[0]
    assert section.count("| left_wrist |") == 2 and "| joint | final_only | across_stage | all | all - final_only |" in section
    doc = json.loads((out / "summary.json").read_text())
    assert [r["joint"] for r in doc["per_joint"]["AP"]][:3] == ["nose", "left_eye", "right_eye"]
    assert "Effect of fusion" in page and "Effect of fusion" in md
    assert len(page) > 1_000_000 and page.count("plotly.js v") == 1  # the library inline, once
    assert "final_only (1 fusion)" in page and "all (8 fusions)" in page
    assert "| final_only | 1 |" in stdout  # the CLI prints the table


def test_run_folder_contract(smoke_run):
    out, _, _ = smoke_run
    req = json.loads((out / "ablation.json").read_text())
    assert [v["name"] for v in req["variants"]] == ["final_only", "across_stage", "all"]
    assert req["recipe"]["name"] == "smoke" and req["seeds"] == [0] and req["data"]["kind"] == "builtin"
    for v in req["variants"]:
        folder = out / v["name"] / "seed0"
        rows = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == [1, 2]
        for r in rows:
            assert set(ROW_FIELDS) <= set(r)
        # per-joint AP and PCK: the last epoch's row only (17 COCOevals more)
        assert all(0.0 <= rows[-1][f] <= 1.0 for f in JOINT_FIELDS if rows[-1][f] is not None)
        assert sum(rows[-1][f] is not None for f in JOINT_FIELDS) > 20 and not set(JOINT_FIELDS) & set(rows[0])
        env = json.loads((folder / "env.json").read_text())
        assert {"torch", "cuda", "gpu", "device", "git"} <= set(env) and env["device"] == "cpu"
        status = json.loads((folder / "status.json").read_text())
        assert (status["state"], status["epoch"], status["epochs"], status["seed"]) == ("done", 2, 2, 0)
        cfg_doc = (folder / "config.yaml").read_text()
        assert "recipe:" in cfg_doc and "model:" in cfg_doc
        ckpt = torch.load(folder / "last.pth", map_location="cpu", weights_only=True)
        assert ckpt["epoch"] == 2 and "optimizer" in ckpt
        model = hc.build_model(hc.load_config(folder / "model.yaml"))
        assert model.stage3[0].fuse == (v["name"] == "all")
        assert "strict" in hc.load_checkpoint(model, folder / "last.pth").status
    prog = read_progress(out)
    assert prog["state"].tolist() == ["done"] * 3 and prog["epoch"].tolist() == [2, 2, 2]
    runs = list_runs(out.parent)
    assert runs.loc[0, "name"] == "smoke" and runs.loc[0, "state"] == "done" and bool(runs.loc[0, "report"])


def test_report_command_rewrites(smoke_run, capsys):
    from analysis.cli import main

    out, _, _ = smoke_run
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").is_file()
    assert "| all | 8 |" in capsys.readouterr().out
