"""The training engine: learning rate schedules, precision choice, fusion effects, the run lock,
parallel job processes, generation workers that end with their parent, and torchrun (gloo) shards."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT
from scipy import stats

from analysis.ablation.effects import fusion_effects, t_interval, verdict
from analysis.ablation.precision import Precision, choose_precision, cpu_bf16_flags
from analysis.ablation.recipes import RecipeError, load_recipe, parse_recipe
from analysis.ablation.runner import RunLockedError, run_lock


def _env(tmp: Path) -> dict:
    return dict(os.environ, HRNET_EXPLORER_CACHE=str(tmp / "cache"), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")


# ---- recipes -------------------------------------------------------------------------------
def test_cosine_schedule_warms_up_then_decays_to_zero():
    r = parse_recipe({"name": "t", "epochs": 10, "lr": 0.01, "lr_schedule": "cosine", "warmup_epochs": 1})
    assert r.lr_at(1, 0.0) < 1e-4  # warm-up starts near zero
    assert r.lr_at(1, 0.5) == pytest.approx(0.005, rel=0.01)
    assert r.lr_at(2, 0.0) == pytest.approx(0.01, rel=1e-3)  # the peak right after the warm-up
    mid = 1 + (10 - 1) / 2  # halfway through the cosine
    assert r.lr_at(int(mid) + 1, mid - int(mid)) == pytest.approx(0.005, rel=1e-3)
    assert r.lr_at(10, 0.999) < 1e-5
    lrs = [r.lr_at(e, f) for e in range(2, 11) for f in (0.0, 0.5)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


@pytest.mark.parametrize("key, value", [("lr_schedule", "linear"), ("cpu_precision", "fp16"), ("init", "xavier"),
                                        ("parallel_jobs", 0), ("warmup_epochs", 99)])
def test_bad_recipe_fields_are_named(key, value):
    with pytest.raises(RecipeError, match=key):
        parse_recipe({"name": "t", "epochs": 5, key: value})


def test_cpu_recipe_is_builtin_and_sized_for_two_cores():
    r = load_recipe("cpu")
    assert r.data == "builtin" and r.parallel_jobs >= 2 and r.cpu_threads is None  # shared out
    assert r.model, "the cpu recipe shrinks the model"


# ---- precision -----------------------------------------------------------------------------
def test_precision_follows_the_recipe_and_is_measured_only_where_bf16_exists():
    cpu = torch.device("cpu")
    base = load_recipe("smoke")
    assert choose_precision(cpu, replace(base, cpu_precision="fp32")).amp is False
    p = choose_precision(cpu, replace(base, cpu_precision="bf16"))
    assert p.amp and p.channels_last and p.label == "bf16 autocast + channels_last on cpu"
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 17, 3, stride=4, padding=1))
    batch = (torch.randn(2, 3, 32, 32), torch.rand(2, 17, 8, 8), torch.ones(2, 17, 1))
    auto = choose_precision(cpu, replace(base, cpu_precision="auto"), model, batch)
    if cpu_bf16_flags():
        m = auto.measured
        assert m and m["batch"] == 2 and m["fp32_images_per_s"] > 0 and m["bf16_channels_last_images_per_s"] > 0
        faster_bf16 = m["bf16_channels_last_images_per_s"] > m["fp32_images_per_s"]
        assert auto.amp is faster_bf16
    else:
        assert auto.amp is False and "no bf16" in auto.reason
    assert Precision.from_dict(auto.to_dict()) == auto


# ---- effects -------------------------------------------------------------------------------
def test_t_interval_matches_scipy_and_needs_two_values():
    x = np.array([0.012, 0.020, 0.031])
    low, high = t_interval(x)
    ref = stats.t.interval(0.95, 2, loc=x.mean(), scale=x.std(ddof=1) / math.sqrt(3))
    assert (low, high) == pytest.approx(ref)
    assert t_interval(np.array([0.5])) == (None, None)


def test_paired_effects_and_verdicts():
    # Seed effects are large (0.1 apart), the fusion effect small but consistent: pairing finds it.
    rows = []
    for s, luck in enumerate((0.0, 0.1, 0.2)):
        for v, gain in (("final_only", 0.0), ("across_stage", 0.01), ("all", 0.03)):
            rows.append({"variant": v, "seed": s, "AP": 0.4 + luck + gain + 0.001 * s,
                         "PCK@0.1": 0.7 + luck, "LR-swap": 0.2 - gain})
    finals = pd.DataFrame(rows)
    effects = fusion_effects(finals, {"final_only": 1, "across_stage": 3, "all": 8})
    assert [(e.label, e.metric) for e in effects][:3] == [("8 vs 1", "AP"), ("8 vs 1", "PCK@0.1"), ("8 vs 1", "LR-swap")]
    assert [e.label for e in effects[::3]] == ["8 vs 1", "3 vs 1", "8 vs 3"]
    ap81 = effects[0]
    assert ap81.differences == pytest.approx((0.03, 0.03, 0.03))
    assert ap81.verdict.startswith("8 fusions beat 1 by 3.0 AP, 95 % CI [")
    pck = effects[1]
    assert pck.mean == pytest.approx(0.0) and "no difference detectable" in pck.verdict
    swap = effects[2]
    assert "fewer left/right swaps" in swap.verdict
    assert "confidence interval needs 2" in verdict("AP", 8, 1, 0.02, None, None, 1)


# ---- run lock ------------------------------------------------------------------------------
def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from analysis.ablation.runner import run_lock\n"
        "with run_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)"), str(tmp_path)],
        cwd=ROOT, env=_env(tmp_path), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"in use by another ablation \\(pid {holder.pid}"):
            with run_lock(tmp_path):
                pass
        # Through the CLI: one line, exit 2, nothing written into the folder.
        proc = subprocess.run([sys.executable, "-m", "analysis.cli", "ablate", "--smoke", "--out", str(tmp_path)],
                              cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1 and "in use by another ablation" in proc.stderr
        assert not (tmp_path / "ablation.json").exists()
    finally:
        holder.kill()
        holder.wait()
    with run_lock(tmp_path):  # released with its process
        pass


# ---- processes that end with their parent -----------------------------------------------------
def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(x) for x in out.split()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_generation_workers_end_with_their_parent(tmp_path, sig):
    # A dataset large enough to be generated by a pool of workers for several seconds.
    script = ("import sys; from analysis.ablation.synth import builtin_dataset\n"
              "builtin_dataset(seed=5, train=3000, val=10, image_hw=(128, 128), root=sys.argv[1], workers=2)")
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "data")], cwd=ROOT, env=_env(tmp_path))
    try:
        deadline = time.monotonic() + 60
        kids: set[int] = set()
        while time.monotonic() < deadline and len(kids) < 2:
            time.sleep(0.2)
            kids = _children(parent.pid)
        assert len(kids) >= 2, "the generator started no worker pool"
        parent.send_signal(sig)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(k) for k in kids):
            time.sleep(0.2)
        assert not [k for k in kids if _alive(k)], "generation workers outlived their parent"
    finally:
        if parent.poll() is None:
            parent.kill()
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").glob("v*-seed5-*/DONE"))


# ---- parallel job processes and torchrun --------------------------------------------------------
def _smoke_recipe(tmp: Path, **extra) -> Path:
    doc = {"name": "engine-test", "data": "builtin", "builtin": {"seed": 0, "train": 47, "val": 8,
                                                                 "image_size": [96, 96]},
           "input_size": [64, 64], "sigma": 1, "epochs": 2, "batch_size": 8, "lr": 0.001, "eval_every": 2,
           "eval_batch_size": 16, "workers": 0, "cpu_threads": 1, "cpu_precision": "fp32",
           "model": {"width": 8, "blocks": 1, "stem": 16, "stage1_blocks": 1, "stage1_planes": 8}, **extra}
    path = tmp / "recipe.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


def test_parallel_jobs_train_every_variant_in_their_own_processes(tmp_path):
    recipe = _smoke_recipe(tmp_path, parallel_jobs=2)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "analysis.cli", "ablate", "--recipe", str(recipe), "--variants", "1,8",
                           "--seeds", "1", "--device", "cpu", "--out", str(out)],
                          cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 job(s) at a time" in proc.stdout
    pids = set()
    for v in ("final_only", "all"):
        for s in (0,):
            st = json.loads((out / v / f"seed{s}" / "status.json").read_text())
            assert st["state"] == "done"
            pids.add(st["pid"])
            assert (out / v / f"seed{s}" / "best.pth").is_file() and (out / v / f"seed{s}" / "last.pth").is_file()
    assert len(pids) == 2, "each job trains in a process of its own"
    summary = json.loads((out / "summary.json").read_text())
    assert {e["label"] for e in summary["effects"]} == {"8 vs 1"}
    assert summary["precision"] == "float32 on cpu"
    assert "## Effect of fusion" in (out / "report.md").read_text()


def test_torchrun_gloo_shards_are_disjoint_and_cover_the_epoch(tmp_path):
    recipe = _smoke_recipe(tmp_path)
    out = tmp_path / "ddp"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "analysis.cli", "ablate", "--recipe", str(recipe), "--variants", "1,8",
                           "--device", "cpu", "--out", str(out)],
                          cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert sorted(p.name for p in out.glob("report*")) == ["report.html", "report.md"]
    assert json.loads((out / "ablation.json").read_text())["world_size"] == 2
    for v in ("final_only", "all"):
        d = json.loads((out / v / "seed0" / "shards.json").read_text())
        r0, r1 = d["ranks"]
        assert d["epoch"] == 2
        assert not set(r0) & set(r1), "the ranks' shards overlap"
        assert sorted(r0 + r1) == list(range(d["n"])), "the shards do not cover the training set exactly once"
        rows = [json.loads(x) for x in (out / v / "seed0" / "metrics.jsonl").read_text().splitlines()]
        assert [r["images"] for r in rows] == [d["n"], d["n"]]


def test_a_gpu_recipe_on_a_cpu_gets_an_estimate_and_the_cpu_recipe_hint(tmp_path):
    # The mechanism of `--recipe quick` on a CPU, on a model small enough for a test: the recipe's name
    # is what marks it as sized for a GPU.
    recipe = _smoke_recipe(tmp_path, name="quick", epochs=1, eval_every=1)
    proc = subprocess.run([sys.executable, "-m", "analysis.cli", "ablate", "--recipe", str(recipe), "--variants", "8",
                           "--device", "cpu", "--out", str(tmp_path / "run")],
                          cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    progress = [ln for ln in lines if " step " in ln and "img/s, ETA " in ln]
    assert progress, proc.stdout[-2000:]
    hint = [ln for ln in lines if "note: recipe quick is sized for a GPU" in ln]
    assert len(hint) == 1 and "--recipe cpu" in hint[0] and "the run (1 job)" in hint[0]
    assert lines.index(hint[0]) == lines.index(progress[0]) + 1  # from the first measured steps
    status = json.loads((tmp_path / "run" / "all" / "seed0" / "status.json").read_text())
    assert status["state"] == "done" and status["images_per_s"] > 0 and status["precision"] == "float32 on cpu"
