"""Ablation runs started from the app: a detached worker, progress read from the run folder, failures
with their reason, stop and resume — through the launcher and through the Ablation page (AppTest)."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from analysis import settings
from analysis.ablation import launch as al
from analysis.ablation import report as rp
from analysis.ablation.files import WORKER_NAME
from analysis.ablation.progress import (
    RUN_CONFIG_NAME,
    checkpoint_config,
    list_checkpoints,
    list_runs,
    read_progress,
    run_status,
)
from analysis.ablation.recipes import default_recipe, load_recipe
from app.logic.config_edit import list_presets
from app.logic.run_tables import progress_table
from hrnet_core import dump_config, load_config
from hrnet_core.concise_yaml import to_concise_dict

APP = str(ROOT / "streamlit_app.py")
BASE = str(list_presets()["pose_hrnet_w32_256x192"])


@pytest.fixture()
def runs(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setenv(settings.RUNS_ENV, str(root))
    monkeypatch.setenv("HRNET_EXPLORER_USER_CONFIGS", str(tmp_path / "configs"))
    yield root
    for launch in root.glob(f"*/{al.LAUNCH_NAME}"):  # never leave a worker behind
        if al.stop(launch.parent):
            _wait(lambda d=launch.parent: al.worker_status(d)["state"] != "running", 30)


def _processes_naming(path: Path) -> list[int]:
    """Live processes whose command line names ``path`` (a worker started for a run under it)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(path) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def _bad_coco(tmp_path: Path) -> Path:
    """A COCO folder with every file in place (it passes the form's checks) whose annotations are not JSON."""
    root = tmp_path / "coco"
    for split in ("train2017", "val2017"):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"person_keypoints_{split}.json").write_text("not json")
    return root


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
    ({"variants": "5"}, "variants: 5: no preset gives 5 fusions for modules"),
    ({"variants": "1/01/001"}, "variants: 1/01/001: schedule"),
    ({"variants": "3,across_stage"}, "variant 'across_stage' is given twice"),
    ({"data": "/nonexistent/coco"}, "data"),
    ({"data": str(ROOT / "configs")}, "data: .*person_keypoints_train2017.json: missing"),
    ({"recipe": "fast"}, "recipe: fast: no such recipe"),
    ({"recipe": str(ROOT / "README.md")}, "recipe: "),
    ({"recipe": "quick", "smoke": True}, "recipe: a smoke run uses the smoke recipe"),
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
    # Said before the request is checked (a bad base would be named otherwise): the name is the first word.
    with pytest.raises(al.LaunchError, match="run name: .* already exists"):
        al.launch(al.AblationRequest(name="taken", base=str(runs / "no-such-base.yaml")))
    assert (runs / "taken" / "keep.txt").read_text() == "earlier results"
    with pytest.raises(al.LaunchError, match="nothing to resume"):
        al.resume(runs / "missing")
    with pytest.raises(al.LaunchError, match="no ablation"):
        al.resume(runs / "taken")
    assert sorted(p.name for p in (runs / "taken").iterdir()) == ["keep.txt"]


def test_failed_run_records_its_reason(runs, tmp_path):
    coco = _bad_coco(tmp_path)  # passes the form's checks, fails when the worker reads it
    info = al.launch(al.AblationRequest(name="bad", base=BASE, data=str(coco), smoke=True, recipe="smoke"))
    status = _wait(lambda: (s := al.worker_status(info.run_dir))["state"] != "running" and s, 120)
    assert status["state"] == "failed" and status["returncode"] == 2
    assert "not valid JSON" in status["reason"] and status["reason"].startswith("hrnet-explorer ablate: error:")
    runs_table = list_runs(runs)
    assert runs_table.loc[runs_table["name"] == "bad", ["state", "reason"]].values.tolist() == [
        ["failed", status["reason"]]]  # not "queued", not "preparing"

    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("app/ablation.py").run()  # the page lists it (it never wrote ablation.json) and says why
    assert not at.exception
    assert at.selectbox(key="abl_pick").value == "bad"
    assert [e.value for e in at.error] == [f"The run failed: {status['reason']}"]
    assert not any("preparing" in m.value for m in [*at.markdown, *at.caption])


def test_stop_then_resume_finishes_the_run(runs):
    # The smoke recipe with 10 epochs a job: a run long enough that the stop lands while it trains, even when a
    # loaded machine notices the running job late (the 2-epoch run trains in 8 s: in CI it finished first).
    recipe = runs.parent / "smoke10.yaml"
    recipe.write_text(json.dumps({**load_recipe("smoke").to_dict(), "name": "smoke10", "epochs": 10}))
    info = al.launch(al.AblationRequest(name="sr", base=BASE, recipe=str(recipe), device="cpu"))
    run_dir = Path(info.run_dir)
    # Wait for the trainer's own "running" record: a job the runner is still setting up shows as running in
    # phase "starting" while its status.json says queued, and a stop then leaves every job queued (CI, 2d2d182).
    _wait(lambda: (p := read_progress(run_dir)).shape[0]
          and ((p["state"] == "running") & (p["phase"] != "starting")).any(), 90, 0.2)
    assert al.stop(run_dir)
    status = _wait(lambda: (s := al.worker_status(run_dir))["state"] != "running" and s, 30)
    assert status["state"] == "stopped"
    progress = read_progress(run_dir)
    assert not (progress["state"] == "done").all()
    assert "failed" not in set(progress["state"]) and "stopped" in set(progress["state"])  # a stop is no failure
    assert run_status(run_dir).state == "stopped"

    al.resume(run_dir)
    status = _wait(lambda: (s := al.worker_status(run_dir))["state"] != "running" and s, 120)
    assert status["state"] == "finished", (status, al.log_tail(run_dir))
    progress = read_progress(run_dir)
    assert list(progress["state"]) == ["done"] * 3
    assert "resuming" in al.log_tail(run_dir, 200)


@pytest.mark.parametrize("delay", [0.0, 0.3, 1.0])
def test_a_stop_while_the_worker_starts_is_a_stop(runs, delay):
    """Stop pressed in the first second after Start: the worker may not hold its signal handler yet, so the stop
    waits in ``stop.request``; either way the run ends stopped (never failed, no trainer left behind) and
    resumes."""
    info = al.launch(al.AblationRequest(name=f"early{int(delay * 10)}", base=BASE, smoke=True, recipe="smoke",
                                        device="cpu"))
    run_dir = Path(info.run_dir)
    time.sleep(delay)  # not a wait for something: how soon after Start the user presses Stop
    assert al.stop(run_dir)
    status = _wait(lambda: (s := al.worker_status(run_dir))["state"] != "running" and s, 60, 0.1)
    assert status["state"] == "stopped", (status, al.log_tail(run_dir))
    assert run_status(run_dir).state == "stopped"
    _wait(lambda: not _processes_naming(run_dir), 30, 0.1)  # the worker and its trainer are gone
    assert not (run_dir / al.STOP_REQUEST_NAME).exists()
    al.resume(run_dir)
    status = _wait(lambda: (s := al.worker_status(run_dir))["state"] != "running" and s, 180)
    assert status["state"] == "finished", (status, al.log_tail(run_dir))


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
    report = next(t.value for t in again.table if "paper AP (%)" in t.value.columns)  # whole: a static table
    assert list(report["fusions"]) == [1, 3, 8]
    # the effect table and its verdicts on the page, not only inside report.md
    effects = next(df.value for df in again.dataframe if "comparison" in df.value.columns)
    assert "all - final_only (8 vs 1)" in set(effects["comparison"]) and {"AP", "PCK@0.1"} <= set(effects["metric"])
    verdicts = [e.verdict for e in rp.run_effects(run_dir)]
    assert verdicts and any(all(v in m.value for v in verdicts) for m in again.markdown)
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
    rows = [{"variant": "all", "seed": 0, "fusions": 8, "state": "running", "phase": "training", "epoch": 1,
             "epochs": 4, "step": 10, "steps": 40, "loss": 0.1, "images_per_s": 3.91, "AP": None,
             "eta_s": 3 * 3600 + 2 * 60 + 1.0},
            {"variant": "none", "seed": 0, "fusions": 0, "state": "queued", "phase": "", "epoch": 0, "epochs": None,
             "step": None, "steps": None, "loss": None, "images_per_s": None, "AP": None, "eta_s": None}]
    df = progress_table(pd.DataFrame(rows))
    assert list(df["ETA"]) == ["3 h 02 min", ""]
    assert list(df["step"]) == ["10/40", ""] and list(df["img/s"]) == ["3.9", ""]
    assert list(df["loss"]) == ["0.1", ""] and list(df["AP (%)"]) == ["", ""] and list(df["epochs"]) == ["4", ""]
    assert not any(str(v) in ("None", "nan") for v in df.drop(columns="progress").to_numpy().ravel())
    assert list(df["progress"]) == [(1 + 10 / 40) / 4, 0.0]


# ---- the form refuses bad input; live states; deleting a run ----------------------------------
@pytest.mark.parametrize(("field", "value", "message"), [
    ("abl_variants", "5", "Not started: variants: 5: no preset gives 5 fusions for modules [1, 4, 3]"),
    ("abl_data", "/nonexistent/coco", "Not started: data: /nonexistent/coco: no such dataset folder"),
    # Outside the folders the app may read: the same words whether the folder exists (/etc) or not.
    ("abl_data", "/etc", "Not started: '/etc': no such data folder in the folders the app may read"),
    ("abl_data", "/tmp/no-such-coco", "Not started: '/tmp/no-such-coco': no such data folder in the folders"),
    ("abl_data", "/nonexistent/../etc", "Not started: '/nonexistent/../etc': '..' is not allowed in a data folder"),
])
def test_bad_ablation_input_shows_inline_error_and_starts_no_worker(runs, field, value, message, monkeypatch):
    monkeypatch.setenv("HRNET_EXPLORER_DATA_DIRS", "/nonexistent")  # a configured data folder
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("app/ablation.py").run()
    at.text_input(key="abl_name").input("must-not-start")
    at.text_input(key=field).input(value)
    at.button(key="abl_start_button").click().run()
    assert not at.exception
    shown = [e.value for e in at.error]
    assert len(shown) == 1 and shown[0].startswith(message), shown
    assert not at.success  # no "Started …"
    assert not runs.exists() or not any(runs.iterdir())  # no run folder, so no worker.log, no launch.json
    assert _processes_naming(runs / "must-not-start") == []
    assert at.text_input(key=field).value == value  # the form keeps what was typed, to fix it


@pytest.mark.skipif(torch.cuda.is_available(), reason="the default without a GPU")
def test_default_recipe_is_cpu_without_a_gpu(runs):
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("app/ablation.py").run()
    assert at.selectbox(key="abl_recipe").value == "cpu" == default_recipe()
    assert at.number_input(key="abl_seeds").value == load_recipe("cpu").seeds == 3  # as `ablate --recipe cpu`
    assert "cpu" in at.selectbox(key="abl_recipe").options


def _live_run(root: Path, name: str, job: dict | None) -> Path:
    """A run whose runner is this (live) process, with the files as the runner and trainer write them."""
    run_dir = root / name
    variants = [{"name": "final_only", "fusions": 1, "schedule": "1/0001/001"},
                {"name": "all", "fusions": 8, "schedule": "1/1111/111"}]
    base = to_concise_dict(load_config(BASE))
    files = {"ablation.json": {"name": name, "created": "2026-01-01T00:00:00", "base": base, "variants": variants,
                               "seeds": [0], "recipe": {"name": "cpu", "epochs": 5}, "data": {"kind": "builtin"}},
             "status.json": {"state": "running", "pid": os.getpid(), "host": socket.gethostname(),
                             "started_at": time.time(), "jobs": 2, "done": 0, "failed": 0}}
    for v in variants:
        files[f"{v['name']}/seed0/status.json"] = {"state": "queued", "variant": v["name"], "seed": 0,
                                                   "fusions": v["fusions"], "epochs": 5, "epoch": 0, "error": None}
    if job:
        files["final_only/seed0/status.json"] |= {"pid": os.getpid(), "host": socket.gethostname(), **job}
    for rel, obj in files.items():
        (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / rel).write_text(json.dumps(obj))
    return run_dir


def _table(at: AppTest, column: str) -> pd.DataFrame:
    return next(df.value for df in at.dataframe if column in df.value.columns)


@pytest.mark.parametrize("job", [None, {"state": "running", "epoch": 1, "step": 12, "steps": 40, "loss": 0.0021,
                                        "eta_s": 725.0, "images_per_s": 31.4, "phase": "training"}])
def test_a_running_run_shows_running_everywhere(runs, job):
    _live_run(runs, "live", job)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("app/ablation.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert list(_table(at, "recipe")["state"]) == ["running"]  # the Runs table
    header = next(m.value for m in at.markdown if m.value.startswith("**live**"))
    assert "running" in header and "queued" not in header
    progress = _table(at, "ETA")
    assert progress.loc[0, "state"] == "running" and progress.loc[1, "state"] == "queued"
    if job:
        assert (progress.loc[0, "phase"], progress.loc[0, "step"], progress.loc[0, "ETA"]) == (
            "training", "12/40", "12 min")
        assert progress.loc[0, "img/s"] == "31.4"
    else:  # the runner is setting the first job up: its status.json still says queued
        assert progress.loc[0, "phase"] == "starting"
    keys = [b.key for b in at.button]
    assert "abl_stop" in keys and "abl_delete" not in keys  # a live run can be stopped, not deleted


def test_delete_a_run_from_the_page_with_confirmation(runs):
    run_dir = runs / "old"
    run_dir.mkdir(parents=True)
    (run_dir / al.LAUNCH_NAME).write_text(json.dumps({"pid": 1, "started": time.time() - 3600}))
    (run_dir / WORKER_NAME).write_text(json.dumps({"state": "failed", "pid": 1, "returncode": 2,
                                                   "reason": "hrnet-explorer ablate: error: data: bad"}))
    (run_dir / al.LOG_NAME).write_text("hrnet-explorer ablate: error: data: bad\n")
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("app/ablation.py").run()
    assert at.selectbox(key="abl_pick").value == "old"
    at.button(key="abl_delete").click().run()
    assert any("cannot be undone" in w.value for w in at.warning) and run_dir.is_dir()  # only asked
    at.button(key="abl_delete_no").click().run()
    assert not any("cannot be undone" in w.value for w in at.warning) and run_dir.is_dir()
    at.button(key="abl_delete").click().run()
    at.button(key="abl_delete_yes").click().run()
    assert not at.exception
    assert not run_dir.exists()
    assert [s.value for s in at.success] == ["Deleted old."]
    assert any(f"No runs in {runs}" in c.value for c in at.caption)


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


def test_the_run_lock_refuses_a_second_writer_from_the_page(runs, tmp_path):
    """A run folder another `ablate` holds (here: this test, through the runner's own lock) cannot be
    resumed from the page: an inline error names the holder and no worker starts."""
    import subprocess
    import sys

    from analysis.ablation.runner import run_lock

    run_dir = runs / "busy"
    env = dict(os.environ, HRNET_EXPLORER_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "analysis.cli", "ablate", "--smoke", "--variants", "8",
                           "--out", str(run_dir)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    status = json.loads((run_dir / "status.json").read_text())
    (run_dir / "status.json").write_text(json.dumps({**status, "state": "failed", "error": "interrupted"}))
    with run_lock(run_dir):
        at = AppTest.from_file(APP, default_timeout=120).run()
        at.switch_page("app/ablation.py").run()
        assert at.selectbox(key="abl_pick").value == "busy"
        at.button(key="abl_resume").click().run()
        assert not at.exception
        errors = [e.value for e in at.error]
        assert any("in use by another ablation" in e and f"pid {os.getpid()}" in e for e in errors), errors
        assert not (run_dir / al.LAUNCH_NAME).exists() and not (run_dir / WORKER_NAME).exists()
        assert not _processes_naming(run_dir)


def test_run_names_say_what_ran():
    from analysis.ablation.runner import resolve_base

    base = load_config(BASE)
    sized = resolve_base(base, load_recipe("cpu"))
    assert sized.name == "pose_hrnet_w16_128x96"  # not pose_hrnet_w32_256x192_resized
    assert resolve_base(base, load_recipe("quick")).name == base.name  # nothing resized: the name stays
    name = al.run_name(sized.name, "cpu", when=0)
    assert name.startswith("fusion-pose_hrnet_w16_128x96-cpu-19700101-") and len(name) <= 80
    assert al.run_name("x" * 200, "/tmp/my recipe.yaml", when=0).startswith("fusion-xxx")
    assert len(al.run_name("x" * 200, "cpu", when=0)) <= 80
    assert al.run_name("a", "cpu", smoke=True, when=0).startswith("fusion-a-smoke-")


def test_runs_table_shows_no_none_and_the_log_line_while_preparing():
    from app.logic.run_tables import latest_log_line, runs_table

    runs = pd.DataFrame([{"name": "r", "path": "/x/r", "state": "preparing", "recipe": None, "data": None,
                          "device": None, "jobs": 0}])
    table = runs_table(runs)
    assert "path" not in table and table.loc[0, "recipe"] == "" and table.loc[0, "device"] == ""
    assert latest_log_line("a\n  generating built-in images 400/2000  \n\n") == "generating built-in images 400/2000"
    assert latest_log_line("") == ""
