"""Ablation runs started from the app: a detached worker, progress read from the run folder, failures
with their reason, stop and resume — through the launcher and through the Ablation page (AppTest)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from analysis import ablation_launch as al
from analysis.ablation.progress import (
    RUN_CONFIG_NAME,
    checkpoint_config,
    list_checkpoints,
    list_runs,
    progress_table,
    read_progress,
)
from analysis.config_edit import list_presets
from hrnet_core import dump_config, load_config

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")
BASE = str(list_presets()["pose_hrnet_w32_256x192"])


@pytest.fixture()
def runs(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setenv(al.RUNS_ENV, str(root))
    monkeypatch.setenv("HRNET_EXPLORER_USER_CONFIGS", str(tmp_path / "configs"))
    yield root
    for launch in root.glob(f"*/{al.LAUNCH_NAME}"):  # never leave a worker behind
        if al.stop(launch.parent):
            _wait(lambda d=launch.parent: al.worker_status(d)["state"] != "running", 30)


def _wait(cond, timeout: float, step: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.mark.parametrize(("change", "field"), [
    ({"name": "../escape"}, "run name"),
    ({"variants": "1;3"}, "variants"),
    ({"data": "/nonexistent/coco"}, "data"),
    ({"recipe": "fast"}, "recipe"),
    ({"seeds": 0}, "seeds"),
    ({"device": "tpu"}, "device"),
    ({"base": "/nonexistent.yaml"}, "nonexistent.yaml"),
])
def test_bad_requests_are_refused_before_anything_starts(runs, change, field):
    request = al.AblationRequest(**({"name": "r", "base": BASE} | change))
    with pytest.raises(al.UserInputError, match=field):
        al.launch(request)
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_without_gpu_is_refused(runs):
    with pytest.raises(al.LaunchError, match="device: cuda"):
        al.launch(al.AblationRequest(name="r", base=BASE, device="cuda"))


def test_existing_run_is_never_reused(runs):
    (runs / "taken").mkdir(parents=True)
    (runs / "taken" / "keep.txt").write_text("earlier results")
    with pytest.raises(al.LaunchError, match="already exists"):
        al.launch(al.AblationRequest(name="taken", base=BASE))
    assert (runs / "taken" / "keep.txt").read_text() == "earlier results"
    with pytest.raises(al.LaunchError, match="nothing to resume"):
        al.resume(runs / "missing")
    with pytest.raises(al.LaunchError, match="no ablation"):
        al.resume(runs / "taken")
    assert sorted(p.name for p in (runs / "taken").iterdir()) == ["keep.txt"]


def test_failed_run_records_its_reason(runs):
    info = al.launch(al.AblationRequest(name="bad", base=BASE, variants="banana", smoke=True, recipe="smoke"))
    status = _wait(lambda: (s := al.worker_status(info.run_dir))["state"] != "running" and s, 60)
    assert status["state"] == "failed" and status["returncode"] == 2
    assert "banana" in status["reason"] and status["reason"].startswith("hrnet-explorer ablate: error:")
    runs_table = list_runs(runs)
    assert runs_table.loc[runs_table["name"] == "bad", "state"].tolist() == ["failed"]  # not "queued"

    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("app/ablation.py").run()  # the page lists it (it never wrote ablation.json) and says why
    assert not at.exception
    assert at.selectbox(key="abl_pick").value == "bad"
    assert [e.value for e in at.error] == [f"The run failed: {status['reason']}"]


def test_stop_then_resume_finishes_the_run(runs):
    info = al.launch(al.AblationRequest(name="sr", base=BASE, smoke=True, recipe="smoke", device="cpu"))
    run_dir = Path(info.run_dir)
    _wait(lambda: (p := read_progress(run_dir)).shape[0] and (p["state"] == "running").any(), 90, 0.2)
    assert al.stop(run_dir)
    status = _wait(lambda: (s := al.worker_status(run_dir))["state"] != "running" and s, 30)
    assert status["state"] == "stopped"
    progress = read_progress(run_dir)
    assert not (progress["state"] == "done").all()

    al.resume(run_dir)
    status = _wait(lambda: (s := al.worker_status(run_dir))["state"] != "running" and s, 120)
    assert status["state"] == "finished", (status, al.log_tail(run_dir))
    progress = read_progress(run_dir)
    assert list(progress["state"]) == ["done"] * 3
    assert "resuming" in al.log_tail(run_dir, 200)


def test_ablation_page_starts_a_smoke_run_and_follows_it(runs):
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("app/ablation.py").run()
    assert not at.exception and not at.error
    at.text_input(key="abl_name").input("smoke-ui")
    at.selectbox(key="abl_device").set_value("cpu")
    at.checkbox(key="abl_smoke").check()
    at.button(key="abl_start_button").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Started smoke-ui" in s.value for s in at.success)
    assert at.selectbox(key="abl_pick").value == "smoke-ui"
    run_dir = runs / "smoke-ui"
    assert (run_dir / al.LOG_NAME).is_file() and (run_dir / al.BASE_NAME).is_file()

    def progress_shown():
        at.run()
        tables = [df.value for df in at.dataframe if "epoch" in df.value.columns and "variant" in df.value.columns]
        return (tables[0],) if tables and tables[0]["epoch"].max() >= 1 else None

    (table,) = _wait(progress_shown, 90, 0.5)  # live progress, read from the run folder
    assert set(table["variant"]) == {"final_only", "across_stage", "all"}
    assert {"state", "epochs", "loss", "ETA", "progress"} <= set(table.columns)

    # A new session (a reload, another tab) finds the run where it is and, once done, its report.
    _wait(lambda: al.worker_status(run_dir)["state"] != "running", 120)
    again = AppTest.from_file(APP, default_timeout=120).run()
    again.switch_page("app/ablation.py").run()
    assert not again.exception and not again.error, [e.value for e in again.error]
    assert any("finished" in m.value for m in again.markdown)
    report = next(df.value for df in again.dataframe if "paper AP (%)" in df.value.columns)
    assert list(report["fusions"]) == [1, 3, 8]
    assert len(again.get("plotly_chart")) >= 3
    assert {b.label for b in again.get("download_button")} >= {"Download report.html", "Download summary.csv"}

    # Its checkpoints open on the Feature maps page, with the run's own config.
    again.switch_page("app/feature_maps.py").run()
    again.selectbox(key="f_ck").set_value("a run's checkpoint (run / variant / seed)…").run()
    again.selectbox(key="f_run").set_value("smoke-ui").run()
    again.selectbox(key="f_variant").set_value("all").run()
    assert "last" in again.selectbox(key="f_which").options
    again.selectbox(key="f_which").set_value("last").run()
    assert not again.exception and not again.error, [e.value for e in again.error]
    captions = [c.value for c in again.caption]
    assert any("Using the run's own config" in c for c in captions)
    assert any("(strict)" in c and "last.pth" in c for c in captions)


def test_progress_table_derives_eta_and_progress():
    rows = [{"variant": "all", "seed": 0, "fusions": 8, "state": "running", "epoch": 1, "epochs": 4, "loss": 0.1,
             "AP": None, "eta_s": 3 * 3600 + 2 * 60 + 1.0},
            {"variant": "none", "seed": 0, "fusions": 0, "state": "queued", "epoch": 0, "epochs": None, "loss": None,
             "AP": None, "eta_s": None}]
    df = progress_table(pd.DataFrame(rows))
    assert list(df["ETA"]) == ["03:02:01", ""]
    assert list(df["progress"]) == [rows[0]["epoch"] / rows[0]["epochs"], 0.0]


def test_run_checkpoints_come_with_the_run_config(runs):
    job = runs / "r1" / "all" / "seed0"
    job.mkdir(parents=True)
    cfg = load_config(BASE).with_fusion("final_only")
    (job / RUN_CONFIG_NAME).write_text(dump_config(cfg))
    (job / "last.pth").write_bytes(b"")
    (job / "notes.txt").write_text("not a checkpoint")
    found = list_checkpoints(runs)
    assert found == {"run: r1/all/seed0/last.pth": str(job / "last.pth")}
    run_cfg, where = checkpoint_config(found["run: r1/all/seed0/last.pth"])
    assert run_cfg == cfg and where == job / RUN_CONFIG_NAME
    assert checkpoint_config(runs / "elsewhere.pth") == (None, None)
