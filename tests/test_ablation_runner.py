"""The ablation runner: variants, recipes, resume after a kill, failure isolation, CLI errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import ROOT

import hrnet_core as hc
from analysis.ablation.files import read_jsonl
from analysis.ablation.progress import list_runs, read_progress
from analysis.ablation.recipes import RecipeError, load_recipe, parse_recipe
from analysis.ablation.runner import (
    AblationRequest,
    VariantError,
    error_line,
    load_request,
    parse_variants,
    resolve_base,
    run_ablation,
)
from analysis.cli import main

W32 = ROOT / "configs" / "pose_hrnet_w32_256x192.yaml"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HRNET_EXPLORER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _request(out: Path, variants="1,3", epochs=2) -> AblationRequest:
    recipe = replace(load_recipe("smoke"), epochs=epochs, lr_steps=(epochs,), eval_every=1)
    base = resolve_base(hc.load_config(W32), recipe)
    return AblationRequest(out, base, parse_variants(variants, base), recipe, "builtin", [0], "cpu", str(W32))


# ---- variants and recipes ------------------------------------------------------------------
def test_variants_from_counts_presets_and_schedules(tmp_path):
    base = hc.load_config(W32)
    vs = parse_variants("1,3,8", base)
    assert [(v.name, v.fusions) for v in vs] == [("final_only", 1), ("across_stage", 3), ("all", 8)]
    assert [base.with_fusion(v.schedule).num_fusions for v in vs] == [1, 3, 8]
    assert parse_variants("1/0001/001", base)[0].schedule == base.with_fusion("across_stage").fusion_schedule
    mine = parse_variants("all", base, ["mine=1,1,0,0,1,0,0,1"])[1]
    assert mine.name == "mine" and mine.schedule == ((True,), (True, False, False, True), (False, False, True))
    f = tmp_path / "v.yaml"
    f.write_text("a: 1\nb: final_only\nc: [[1], [0, 0, 0, 1], [0, 1, 1]]\nd: '1/1111/000'\n")
    assert [v.fusions for v in parse_variants(str(f), base)] == [1, 1, 4, 5]


@pytest.mark.parametrize("spec, schedules, match", [
    ("5", (), "no preset gives 5 fusions"),
    ("1,1", (), "given twice"),
    ("1/01/001", (), "must give x/xxxx/xxx"),
    ("", ("x=1,1,0",), "has 3 flags; the base has 8 modules"),
    ("banana", (), "must be 0/1 flags"),
])
def test_bad_variants_are_named(spec, schedules, match):
    with pytest.raises(VariantError, match=match):
        parse_variants(spec, hc.load_config(W32), schedules)


def test_recipes_and_the_official_learning_rate_steps(tmp_path):
    paper = load_recipe("paper")
    assert (paper.epochs, paper.lr_steps, paper.batch_size, paper.input_size) == (210, (170, 200), 32, (256, 192))
    assert [paper.lr_at(e) for e in (1, 170, 171, 200, 201, 210)] == pytest.approx(
        [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5])
    quick = load_recipe("quick")
    assert quick.data == "builtin" and quick.input_size == (256, 192)
    with pytest.raises(RecipeError, match="r.yaml: lr_stepz: unknown key"):
        parse_recipe({"lr_stepz": [1]}, "r.yaml")
    with pytest.raises(RecipeError, match="epochs: must be a positive integer"):
        parse_recipe({"epochs": 0}, "r.yaml")
    with pytest.raises(RecipeError, match="lr_steps: must lie within the 5 epochs"):
        parse_recipe({"epochs": 5, "lr_steps": [7]}, "r.yaml")
    with pytest.raises(RecipeError, match="no such recipe"):
        load_recipe(tmp_path / "missing.yaml")


# ---- resume and failures -------------------------------------------------------------------
class SimulatedKill(BaseException):
    """Stands for SIGKILL: not an ``Exception``, so the runner does not record it as a failed job."""


def test_killed_run_resumes_at_the_next_epoch_with_metrics_kept(tmp_path):
    out = tmp_path / "run"

    def kill_after_first(job, epoch):
        if job.variant == "across_stage" and epoch == 1:
            raise SimulatedKill

    with pytest.raises(SimulatedKill):
        run_ablation(_request(out), on_epoch_end=kill_after_first, log=lambda s: None)
    folder = out / "across_stage" / "seed0"
    before = (folder / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in before] == [1]
    assert json.loads((folder / "status.json").read_text())["state"] == "failed"
    assert torch.load(folder / "last.pth", weights_only=True)["epoch"] == 1
    # A torn line from the kill is ignored on resume.
    with open(folder / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 2, "train_lo')

    seen = []
    req = load_request(out)
    result = run_ablation(req, resume=True, on_epoch_end=lambda job, e: seen.append((job.variant, e)),
                          log=lambda s: None)
    assert result["state"] == "done" and result["done"] == 2
    assert seen == [("across_stage", 2)]  # final_only was done: not retrained
    after = (folder / "metrics.jsonl").read_text().splitlines()
    assert after[0] == before[0] and [json.loads(x)["epoch"] for x in after] == [1, 2]
    assert json.loads((folder / "status.json").read_text())["state"] == "done"

    # The resumed job ends where an uninterrupted one does (same data order, augmentation and weights).
    # Both at the precision the first start measured (``auto`` times fp32 against bf16, which can
    # go either way under load), so that only the kill and the resume tell them apart.
    ref = tmp_path / "ref"
    amp = json.loads((out / "ablation.json").read_text())["precision"]["amp"]
    straight_req = _request(ref, variants="3")
    straight_req = replace(straight_req, recipe=replace(straight_req.recipe, cpu_precision="bf16" if amp else "fp32"))
    run_ablation(straight_req, log=lambda s: None)
    resumed = read_jsonl(folder / "metrics.jsonl")
    straight = read_jsonl(ref / "across_stage" / "seed0" / "metrics.jsonl")
    assert len(resumed) == len(straight) == 2
    for a, b in zip(resumed, straight):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["PCK@0.1"] == pytest.approx(b["PCK@0.1"])


def test_a_failing_variant_is_recorded_and_the_others_go_on(tmp_path):
    out = tmp_path / "run"

    def fail(job, epoch):
        if job.variant == "final_only":
            raise RuntimeError("injected failure\nsecond line")

    result = run_ablation(_request(out, variants="1,3,8", epochs=1), on_epoch_end=fail, log=lambda s: None)
    assert (result["done"], result["failed"], result["state"]) == (2, 1, "failed")
    status = json.loads((out / "final_only" / "seed0" / "status.json").read_text())
    assert status["state"] == "failed" and status["error"] == "RuntimeError: injected failure"
    assert "Traceback" in (out / "final_only" / "seed0" / "error.txt").read_text()
    prog = read_progress(out).set_index("variant")
    assert prog.loc["final_only", "state"] == "failed" and prog.loc["all", "state"] == "done"
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["variant"]: r for r in summary["variants"]}
    assert rows["final_only"]["state"] == "failed" and "injected failure" in rows["final_only"]["error"]
    assert rows["all"]["AP_mean"] is not None
    assert "final_only: seed 0: RuntimeError: injected failure" in (out / "report.md").read_text()
    runs = list_runs(tmp_path)
    assert runs.loc[0, "state"] == "failed" and runs.loc[0, "failed"] == 1


def test_out_of_memory_reason_is_one_line():
    err = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.\nGPU 0 has ...")
    assert error_line(err) == "CUDA out of memory. Tried to allocate 2.00 GiB."
    assert error_line(ValueError("bad\nworse")) == "ValueError: bad"


def test_dead_worker_shows_as_failed(tmp_path):
    import socket
    import subprocess
    import sys

    out = tmp_path / "run"
    (out / "all" / "seed0").mkdir(parents=True)
    (out / "ablation.json").write_text(json.dumps({
        "name": "run", "variants": [{"name": "all", "fusions": 8, "schedule": "1/1111/111"}], "seeds": [0],
        "recipe": {"name": "quick", "epochs": 30}, "data": {"kind": "builtin"}}))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / "all" / "seed0" / "status.json").write_text(json.dumps({
        "state": "running", "pid": int(gone.stdout), "host": socket.gethostname(), "epoch": 4, "epochs": 30}))
    row = read_progress(out).iloc[0]
    assert row["state"] == "failed" and "is gone" in row["error"] and row["epoch"] == 4


# ---- CLI errors ----------------------------------------------------------------------------
def _cli(argv, capsys):
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_bad_dataset_path_exits_2_with_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    rc, _, err = _cli(["ablate", "--smoke", "--data", str(tmp_path / "no_coco"), "--out", str(out)], capsys)
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("hrnet-explorer ablate: error: ") and "no_coco: no such dataset folder" in err
    assert not out.exists()  # nothing written for a request that cannot run
    (tmp_path / "coco" / "annotations").mkdir(parents=True)
    rc, _, err = _cli(["ablate", "--smoke", "--data", str(tmp_path / "coco"), "--out", str(out)], capsys)
    assert rc == 2 and "person_keypoints_train2017.json: missing" in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, match", [
    (["--variants", "5"], "no preset gives 5 fusions"),
    (["--recipe", "nope"], "nope: no such recipe"),
    (["--recipe", "paper"], "recipe paper trains on COCO: give --data PATH"),
    (["--base", "missing.yaml"], "missing.yaml: no such config file"),
    (["--seeds", "0"], "--seeds: must be a positive integer"),
])
def test_bad_requests_exit_2(tmp_path, capsys, argv, match):
    rc, _, err = _cli(["ablate", *argv, "--out", str(tmp_path / "r"), "--device", "cpu"], capsys)
    assert rc == 2 and match in err and err.count("\n") == 1


def test_existing_run_needs_resume_and_resume_needs_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "ablation.json").write_text("{}")
    rc, _, err = _cli(["ablate", "--smoke", "--out", str(out)], capsys)
    assert rc == 2 and "already holds an ablation; continue it with --resume" in err
    rc, _, err = _cli(["report", str(tmp_path / "nothing")], capsys)
    assert rc == 2 and "not an ablation run folder" in err
    (out / "ablation.json").write_text('{"name": "run", "variants": [')  # torn by a kill
    rc, _, err = _cli(["report", str(out)], capsys)
    assert rc == 2 and "ablation.json: not a readable ablation request" in err and err.count("\n") == 1


def test_smoke_on_a_coco_folder(tmp_path, capsys):
    from ablation_helpers import hand_made_coco

    root = hand_made_coco(tmp_path / "coco")
    out = tmp_path / "run"
    rc, stdout, err = _cli(["ablate", "--smoke", "--recipe", "quick", "--data", str(root), "--variants", "8",
                            "--out", str(out)], capsys)
    assert rc == 0, err
    assert "the smoke recipe is used instead of quick" in stdout
    doc = json.loads((out / "summary.json").read_text())
    assert doc["data"]["kind"] == "coco" and doc["data"]["val_persons"] == 2  # crowd and empty ones skipped
    assert doc["variants"][0]["AP_mean"] is not None
    assert f"the COCO-format folder {root}" in (out / "report.md").read_text()


def test_paper_table_is_read_from_the_shared_file(tmp_path, monkeypatch):
    from analysis.ablation.report import paper_table

    md = tmp_path / "model_zoo.md"
    md.write_text("# zoo\n\n## Paper ablations (test)\nRepeated fusion:\n| variant | definition | AP |\n|---|---|---|\n"
                  "| (a) 1 fusion | last only | 61.5 |\n| (c) 8 fusions | every module | 66.25 |\n\nmore text\n"
                  "| (x) 3 fusions | outside the table | 1.0 |\n")
    df, note = paper_table(md)
    assert df[["fusions", "AP"]].values.tolist() == [[1, 61.5], [8, 66.25]] and "Paper ablations (test)" in note
    df, note = paper_table(tmp_path / "missing.md")
    assert df is None and "not found" in note
    monkeypatch.setenv("HRNET_EXPLORER_SHARED", str(tmp_path))
    assert paper_table()[0]["AP"].tolist() == [61.5, 66.25]
