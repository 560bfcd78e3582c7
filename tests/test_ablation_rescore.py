"""`hrnet-explorer report RUN --per-joint`: per-joint figures for jobs trained before they were recorded."""

from __future__ import annotations

import json
import shutil

from conftest import TRAINED_RUN

from analysis.ablation.joints import JOINT_FIELDS
from analysis.ablation.rescore import jobs_without_joints
from analysis.cli import main


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_per_joint_figures_are_added_to_an_older_run_and_nothing_else_changes(trained_runs, tmp_path, capsys):
    run = tmp_path / TRAINED_RUN
    shutil.copytree(trained_runs / TRAINED_RUN, run)
    files = sorted(run.glob("*/seed*/metrics.jsonl"))
    recorded = {}
    for path in files:  # as a job trained before per-joint figures were recorded left it
        rows = _rows(path)
        recorded[path] = rows[-1]
        rows[-1] = {k: v for k, v in rows[-1].items() if k not in JOINT_FIELDS}
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = {p: _rows(p) for p in files}
    assert len(jobs_without_joints(run)) == len(files) == 3

    assert main(["report", str(run), "--per-joint"]) == 0
    out = capsys.readouterr().out
    assert "per-joint figures added to 3 job(s)" in out and "final_only seed0: per-joint figures added" in out
    for path in files:
        rows = _rows(path)
        assert rows[:-1] == before[path][:-1]  # earlier epochs untouched
        last = rows[-1]
        assert {k: v for k, v in last.items() if k not in JOINT_FIELDS} == before[path][-1]  # only added
        for f in JOINT_FIELDS:  # the same joints scored as when the job recorded them itself
            assert (last[f] is None) == (recorded[path][f] is None), f
    assert jobs_without_joints(run) == []
    section = (run / "report.md").read_text().split("## Per joint", 1)[1]
    assert "| left_knee |" in section

    assert main(["report", str(run), "--per-joint"]) == 0  # nothing left to add: nothing evaluated again
    assert "every finished job has per-joint figures" in capsys.readouterr().out


def test_per_joint_on_a_folder_that_is_no_run_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--per-joint"]) == 2
    err = capsys.readouterr().err
    assert "not an ablation run folder" in err and "Traceback" not in err


def test_the_ablation_page_adds_them_for_an_older_run(trained_runs, tmp_path, monkeypatch):
    from conftest import ROOT
    from streamlit.testing.v1 import AppTest

    from analysis import settings

    run = tmp_path / "runs" / TRAINED_RUN
    shutil.copytree(trained_runs / TRAINED_RUN, run, ignore=shutil.ignore_patterns("best.pth", "prev.pth"))
    for path in run.glob("*/seed*/metrics.jsonl"):
        rows = _rows(path)
        rows[-1] = {k: v for k, v in rows[-1].items() if k not in JOINT_FIELDS}
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv(settings.RUNS_ENV, str(run.parent))
    monkeypatch.setenv(settings.USER_CONFIGS_ENV, str(tmp_path / "configs"))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300).run()
    at.switch_page("app/ablation.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert not [df for df in at.dataframe if "joint" in df.value.columns]
    at.button(key="abl_add_joints").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (joints,) = [df.value for df in at.dataframe if "joint" in df.value.columns]
    assert len(joints) == 17 and "all - final_only" in joints.columns
    assert not [b for b in at.button if b.key == "abl_add_joints"]
    assert "## Per joint" in (run / "report.md").read_text() and "| left_knee |" in (run / "report.md").read_text()
