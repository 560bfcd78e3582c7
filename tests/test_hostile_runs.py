"""Hostile run folders (issue 19): every file read back from a run folder is validated like user input.

Three classes, each through the CLI (exit 2, one line on stderr, no traceback) or the library (one-line
``UserInputError``), with the tmp tree hashed before and after (nothing written outside the run folder,
no input changed):

1. ``ablate --resume`` trusts nothing of ``ablation.json``: variant names (they become folders),
   schedules, seeds, recipe, base config, precision, device; nor a link in the run folder.
2. ``ablate --out`` uses only a new or empty folder, one holding the tool's marker, or a run made before
   the marker; a refused command leaves no folder or file of its own behind.
3. One bounded, validated reader (``analysis.ablation.run_folder``) for report, resume, progress, the
   app's run tables and the feature maps' dataset: damaged metrics lines, requests, records and outputs.

The run folders are copies (without checkpoints) of the session's one smoke run (``trained_runs``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
from pathlib import Path

import pytest
from conftest import ROOT, TRAINED_RUN

from analysis.ablation.files import LOCK_NAME, MARKER_NAME, RunFolderError
from analysis.ablation.progress import list_runs, read_progress, run_status, worker_record
from analysis.ablation.run_folder import (
    check_run_folder_use,
    read_metrics,
    read_request,
    read_text_file,
)
from analysis.cli import main
from hrnet_core import UserInputError

VARIANTS = ("final_only", "across_stage", "all")


@pytest.fixture(autouse=True)
def _cache(trained_runs, monkeypatch):
    """The smoke run's own dataset cache: a resume that gets as far as its data finds it there."""
    monkeypatch.setenv("HRNET_EXPLORER_CACHE", str(trained_runs.parent / "cache"))


@pytest.fixture
def run(trained_runs, tmp_path) -> Path:
    """A copy of the smoke run, two folders down in ``tmp_path`` (so ``../../x`` is still inside it)."""
    dst = tmp_path / "a" / "b" / "run"
    shutil.copytree(trained_runs / TRAINED_RUN, dst, symlinks=True,
                    ignore=shutil.ignore_patterns("*.pth", "report.html"))
    return dst


# ---- helpers -----------------------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, object]:
    """Every entry under ``root``: a file's sha256, a link's target, ``"dir"`` for a folder."""
    out: dict[str, object] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _cli(argv, capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def refused(argv, capsys, tree: Path, *words: str) -> str:
    """Run the CLI: exit 2, one line on stderr holding ``words``, no traceback, nothing under ``tree``
    created, changed or removed."""
    before = snapshot(tree)
    rc, _out, err = _cli(argv, capsys)
    assert rc == 2, (rc, err)
    assert err.count("\n") == 1 and err.startswith("hrnet-explorer ") and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    assert snapshot(tree) == before
    return err


def edit_request(run: Path, **fields) -> None:
    doc = json.loads((run / "ablation.json").read_text())
    for key, value in fields.items():
        if value is DROP:
            doc.pop(key)
        else:
            doc[key] = value
    (run / "ablation.json").write_text(json.dumps(doc))


def edit_variant(run: Path, index: int, **fields) -> None:
    doc = json.loads((run / "ablation.json").read_text())
    doc["variants"][index].update(fields)
    (run / "ablation.json").write_text(json.dumps(doc))


def not_done(run: Path, variant: str) -> None:
    """Make a finished job look interrupted, so that a resume would train it again."""
    path = run / variant / "seed0" / "status.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "state": "failed", "error": "interrupted"}))


DROP = object()
RESUME = ("ablate", "--resume", "--out")


# ---- 1. resume trusts the run folder -----------------------------------------------------------
ABSOLUTE = "<an absolute path in tmp_path>"


@pytest.mark.parametrize("name", ["../../x", ABSOLUTE, "..", ".", "a/b", ".lock", "report.md", "status.json", "",
                                  "x" * 81, "a\nb", 5, None])
def test_resume_refuses_variant_names_that_are_not_one_folder_in_the_run(run, tmp_path, capsys, name):
    if name == ABSOLUTE:
        name = str(tmp_path / "elsewhere")
    edit_variant(run, 0, name=name)
    not_done(run, "final_only")  # without the fix the job would train into <run>/<name>/seed0
    refused([*RESUME, run], capsys, tmp_path, "ablation.json: variants[0].name")


SCHEDULE_OF_ALL = "1/1111/111"
BAD_REQUESTS = {
    "seeds_strings": ({"seeds": ["0"]}, "seeds[0]: must be an integer"),
    "seeds_negative": ({"seeds": [-1]}, "seeds[0]: must be an integer in 0..2147483647, got -1"),
    "seeds_bool": ({"seeds": [True]}, "seeds[0]"),
    "seeds_float": ({"seeds": [0.5]}, "seeds[0]"),
    "seeds_twice": ({"seeds": [0, 0]}, "seeds: a seed is given twice"),
    "seeds_text": ({"seeds": "0"}, "seeds: must be a list"),
    "seeds_empty": ({"seeds": []}, "seeds: must be a list of 1..1000 seeds"),
    "variants_strings": ({"variants": list(VARIANTS)}, "variants[0]: must be an object"),
    "variants_object": ({"variants": {"all": SCHEDULE_OF_ALL}}, "variants: must be a list"),
    "variants_missing": ({"variants": DROP}, "'variants' missing"),
    "precision_list": ({"precision": [1]}, "precision: must be an object"),
    "precision_amp_text": ({"precision": {"amp": "yes", "channels_last": False, "device": "cpu"}}, "precision: amp"),
    "precision_device": ({"precision": {"amp": False, "channels_last": False, "device": "tpu"}}, "precision: device"),
    "recipe_text": ({"recipe": "smoke"}, "recipe: must be an object"),
    "recipe_bad_epochs": ({"recipe": {"name": "smoke", "epochs": 0}}, "recipe: epochs: must be a positive integer"),
    "recipe_unknown_key": ({"recipe": {"name": "smoke", "lr_stepz": [1]}}, "recipe.lr_stepz: unknown key"),
    "recipe_no_name": ({"recipe": {"epochs": 2}}, "recipe.name"),
    "base_a_path": ({"base": "/etc/passwd"}, "base: must be an object"),
    "base_bad_width": ({"base": {"family": "pose", "width": "wide"}}, "base: "),
    "base_missing": ({"base": DROP}, "'base' missing"),
    "device": ({"device": "tpu"}, "device: must be one of auto, cpu, cuda"),
    "data_arg_list": ({"data_arg": ["/data"]}, "data_arg: must be text"),
    "command_text": ({"command": "rm -rf /"}, "command: must be a list"),
    "smoke_text": ({"smoke": "yes"}, "smoke: must be true or false"),
    "name_number": ({"name": 5}, "name: must be text"),
    "data_list": ({"data": ["builtin"]}, "data: must be an object"),
}


@pytest.mark.parametrize("command", ["resume", "report"])
@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_a_damaged_request_is_refused_naming_its_field(run, tmp_path, capsys, case, command):
    change, words = BAD_REQUESTS[case]
    edit_request(run, **change)
    not_done(run, "all")  # a resume that went on would train and write
    argv = [*RESUME, run] if command == "resume" else ["report", run]
    refused(argv, capsys, tmp_path, f"{run / 'ablation.json'}: ", words)


VARIANT_FIELDS = {
    "schedule_shape": ({"schedule": "1/1111/11"}, "variants[2].schedule: schedule '1/1111/11' must give x/xxxx/xxx"),
    "schedule_number": ({"schedule": 8}, "variants[2].schedule: must be 0/1 flags"),
    "schedule_letters": ({"schedule": "all"}, "variants[2].schedule: must be 0/1 flags"),
    "fusions_negative": ({"fusions": -1}, "variants[2].fusions: must be an integer in 0..100000"),
    "fusions_text": ({"fusions": "8"}, "variants[2].fusions: must be an integer"),
    "name_twice": ({"name": "final_only"}, "variants[2].name: variant 'final_only' is given twice"),
}


@pytest.mark.parametrize("case", sorted(VARIANT_FIELDS))
def test_resume_refuses_a_stored_variant_that_does_not_fit(run, tmp_path, capsys, case):
    change, words = VARIANT_FIELDS[case]
    edit_variant(run, 2, **change)
    not_done(run, "all")
    refused([*RESUME, run], capsys, tmp_path, words)


@pytest.mark.parametrize("doc, words", [
    (b"[]", "not a readable ablation request (a JSON list"),
    (b"[" * 100_000, "nested deeper than 32 levels"),
    (b'{"name": "\xff\xfe"}', "not UTF-8 text"),
    (b'{"name": "run", "variants": [', "not valid JSON"),
    (b'{"seeds": [' + b"9" * 5000 + b"]}", "not usable JSON"),
])
def test_an_unreadable_request_is_refused(run, tmp_path, capsys, doc, words):
    (run / "ablation.json").write_bytes(doc)
    for argv in ([*RESUME, run], ["report", run]):
        refused(argv, capsys, tmp_path, "ablation.json: ", words)


def test_a_huge_request_is_refused_before_it_is_read(run, tmp_path, capsys):
    with open(run / "ablation.json", "r+b") as fh:
        fh.truncate(64 << 20)  # sparse: 64 MiB on paper, nothing on disk
    refused(["report", run], capsys, tmp_path, "ablation.json: not a readable ablation request (is 67,108,864 bytes; at most 1,048,576 are read)")


def test_resume_writes_through_no_link_in_the_run_folder(run, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "precious.txt"
    victim.write_text("someone's data\n")
    not_done(run, "all")  # a resume would write all/seed0/model.yaml, config.yaml, env.json...
    (run / "all" / "seed0" / "model.yaml").unlink()
    (run / "all" / "seed0" / "model.yaml").symlink_to(victim)
    refused([*RESUME, run], capsys, tmp_path, "all/seed0/model.yaml: is a link")

    (run / "all" / "seed0" / "model.yaml").unlink()
    (run / LOCK_NAME).unlink()
    (run / LOCK_NAME).symlink_to(victim)  # the lock is truncated and written when taken
    refused([*RESUME, run], capsys, tmp_path, ".lock: is a link")

    (run / LOCK_NAME).unlink()
    shutil.move(run / "all", outside / "all")
    (run / "all").symlink_to(outside / "all", target_is_directory=True)
    refused([*RESUME, run], capsys, tmp_path, f"{run / 'all'}: is a link")


def test_variant_names_on_the_command_line_never_leave_the_run_folder(tmp_path, capsys):
    out = tmp_path / "a" / "run"
    for spec in ("..=1,1,0,0,1,0,0,1", "ablation.json=1,1,0,0,1,0,0,1", ".x=1,1,0,0,1,0,0,1"):
        refused(["ablate", "--smoke", "--variants", "8", "--schedule", spec, "--out", out], capsys, tmp_path,
                "variant name")
    assert not out.exists()


# ---- 2. --out into someone's folder ------------------------------------------------------------
@pytest.mark.parametrize("resume", [False, True])
def test_out_refuses_a_folder_of_unrelated_files(tmp_path, capsys, resume):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work\n")
    (mine / "data").mkdir()
    argv = ["ablate", "--smoke", "--variants", "8", "--out", mine] + (["--resume"] if resume else [])
    refused(argv, capsys, tmp_path, "holds files this tool did not write", "'data'")


def test_out_refuses_a_foreign_folder_whose_request_is_damaged(run, tmp_path, capsys):
    (run / MARKER_NAME).unlink()  # not this tool's folder (no marker) and no readable request
    edit_request(run, seeds="0")
    refused([*RESUME, run], capsys, tmp_path, "seeds: must be a list")
    (run / "ablation.json").unlink()
    refused([*RESUME, run], capsys, tmp_path, "holds files this tool did not write")


def _bad_coco(root: Path) -> Path:
    """A COCO folder whose files are all in place (the early checks pass) but whose annotations are not JSON."""
    for split in ("train2017", "val2017"):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"person_keypoints_{split}.json").write_text("not json")
    return root


def test_a_refused_run_leaves_no_folder_or_file_of_its_own(tmp_path, capsys):
    coco = _bad_coco(tmp_path / "coco")
    new = tmp_path / "new" / "deeper" / "run"
    refused(["ablate", "--smoke", "--variants", "8", "--data", coco, "--out", new], capsys, tmp_path,
            "not valid JSON")
    assert not (tmp_path / "new").exists()  # no folder, no .lock, no marker

    empty = tmp_path / "empty"
    empty.mkdir()
    refused(["ablate", "--smoke", "--variants", "8", "--data", coco, "--out", empty], capsys, tmp_path,
            "not valid JSON")
    assert list(empty.iterdir()) == []


def test_the_out_rule(run, tmp_path):
    """Missing, empty, marked, and runs made before the marker (a readable request, or the app's
    launch.json naming the folder) are used; anything else is refused in one line."""
    check_run_folder_use(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    check_run_folder_use(tmp_path / "empty")
    check_run_folder_use(run)  # marked by the runner that made it
    (run / MARKER_NAME).unlink()
    (run / "notes.txt").write_text("mine")
    check_run_folder_use(run)  # made before the marker: its request is readable
    legacy_app = tmp_path / "app-run"
    legacy_app.mkdir()
    (legacy_app / "launch.json").write_text(json.dumps({"run_dir": str(legacy_app), "pid": 1, "started": 0.0}))
    (legacy_app / "worker.log").write_text("failed before its request\n")
    check_run_folder_use(legacy_app)

    other = tmp_path / "other"
    other.mkdir()
    (other / "launch.json").write_text(json.dumps({"run_dir": str(legacy_app)}))  # names another folder
    (other / MARKER_NAME).symlink_to(run / "ablation.json")  # a link is no marker
    with pytest.raises(RunFolderError, match="holds files this tool did not write") as err:
        check_run_folder_use(other)
    assert "\n" not in str(err.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserInputError, match="exists and is not a folder"):
        check_run_folder_use(tmp_path / "file")


def test_a_run_made_before_the_marker_resumes_and_is_marked(run, tmp_path, capsys):
    (run / MARKER_NAME).unlink()
    (run / "notes.txt").write_text("my notes on this run\n")  # the owner's own file is kept as it is
    before = snapshot(tmp_path)
    rc, out, err = _cli([*RESUME, run], capsys)  # every job is done: data, report, no training
    assert rc == 0, err
    assert "resuming" in out and err == ""
    after = snapshot(tmp_path)
    run_rel = str(run.relative_to(tmp_path))
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed and all(k.startswith(run_rel + os.sep) for k in changed), changed
    assert (run / "notes.txt").read_text() == "my notes on this run\n"
    assert json.loads((run / MARKER_NAME).read_text())["made_by"] == "hrnet-explorer"


# ---- 5. one bounded, validated reader ----------------------------------------------------------
def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def _row(**changes) -> bytes:
    row = {"epoch": 3, "train_loss": 0.004, "images_per_s": 100.0, "wall_s": 2.0, "AP": 0.1} | changes
    return (json.dumps({k: v for k, v in row.items() if v is not DROP}) + "\n").encode()


BAD_METRICS = {
    "binary": (b"\xff\xfe\x00\x01garbage\n", "line 3: not UTF-8 text"),
    "list": (b"[1, 2]\n", "line 3: not a JSON object (got list)"),
    "string": (b'"epoch 3"\n', "line 3: not a JSON object (got str)"),
    "epoch_missing": (_row(epoch=DROP), "line 3: 'epoch' missing"),
    "epoch_text": (_row(epoch="3"), "line 3: epoch: must be an integer"),
    "epoch_repeated": (_row(epoch=2), "line 3: epoch 2 after epoch 2"),
    "loss_text": (_row(train_loss="low"), "line 3: train_loss: must be a finite number"),
    "loss_nan": (b'{"epoch": 3, "train_loss": NaN, "images_per_s": 1, "wall_s": 1}\n', "line 3: train_loss"),
    "AP_object": (_row(AP={"value": 1}), "line 3: AP: must be a number"),
    "deep": (b"[" * 100_000 + b"\n", "line 3: nested deeper than 32 levels"),
    "deep_in_object": (b'{"epoch": 3, "x": ' + b"[" * 40 + b"]" * 40 + b"}\n", "line 3: nested deeper"),
    "huge_integer": (b'{"epoch": ' + b"9" * 5000 + b"}\n", "line 3: not usable JSON"),
    "loss_400_digits": (_row(train_loss=10**400), "line 3: train_loss: must be a finite number"),
    "not_json_middle": (b'{"epoch": 3, "train_lo\n' + _row(epoch=4), "line 3: not valid JSON"),
}


@pytest.mark.parametrize("command", ["report", "resume"])
@pytest.mark.parametrize("case", sorted(BAD_METRICS))
def test_a_damaged_metrics_line_is_refused_with_its_line_and_field(run, tmp_path, capsys, case, command):
    data, words = BAD_METRICS[case]
    metrics = run / "all" / "seed0" / "metrics.jsonl"
    _append(metrics, data)
    not_done(run, "across_stage")  # a resume that went on would train and write
    argv = ["report", run] if command == "report" else [*RESUME, run]
    refused(argv, capsys, tmp_path, f"{metrics} {words}")


@pytest.mark.parametrize("size, words", [
    (40 << 20, "is 41,943,040 bytes; at most 33,554,432 are read"),
    (None, "has more than 100,000 lines"),
])
def test_huge_metrics_are_refused_before_they_are_read(run, tmp_path, capsys, size, words):
    metrics = run / "all" / "seed0" / "metrics.jsonl"
    if size:
        with open(metrics, "r+b") as fh:
            fh.truncate(size)  # sparse
    else:
        _append(metrics, b" \n" * 100_001)
    refused(["report", run], capsys, tmp_path, f"{metrics}: {words}")


def test_a_torn_last_metrics_line_is_still_skipped_silently(run, capsys):
    metrics = run / "all" / "seed0" / "metrics.jsonl"
    rows = read_metrics(metrics.parent)
    _append(metrics, b'{"epoch": 3, "train_lo')  # a kill mid-append: no newline, half an object
    assert read_metrics(metrics.parent) == rows
    rc, _out, err = _cli(["report", run], capsys)
    assert rc == 0 and err == "", err


def test_report_refuses_a_folder_or_a_link_where_its_files_go(run, tmp_path, capsys):
    victim = tmp_path / "precious.csv"
    victim.write_text("someone's table\n")
    (run / "summary.csv").unlink()
    (run / "summary.csv").symlink_to(victim)
    refused(["report", run], capsys, tmp_path, "summary.csv: is a link")
    (run / "summary.csv").unlink()
    (run / "report.md").unlink()
    (run / "report.md").mkdir()
    refused(["report", run], capsys, tmp_path, "report.md: is a folder")
    refused([*RESUME, run], capsys, tmp_path, "report.md: is a folder")  # before training, not after


def _good_state(run: Path) -> list[str]:
    return list(read_progress(run)["state"])


def test_damaged_state_records_are_warnings_never_tracebacks(run, tmp_path, capsys):
    """status.json of a job as a list, a field of the wrong type, the runner's status.json as a list, the
    app's worker.json and launch.json damaged: the run is still read; what is wrong shows as the job's error."""
    assert _good_state(run) == ["done"] * 3
    (run / "all" / "seed0" / "status.json").write_text("[1, 2, 3]")
    status = run / "across_stage" / "seed0" / "status.json"
    status.write_text(json.dumps({**json.loads(status.read_text()), "epoch": "two", "AP": [1]}))
    (run / "status.json").write_text('["done"]')
    final = run / "final_only" / "seed0" / "status.json"  # "running" under a pid no process can have
    final.write_text(json.dumps({**json.loads(final.read_text()), "state": "running", "pid": 10**30,
                                 "host": socket.gethostname()}))
    (run / "worker.json").write_text(json.dumps({"state": "running", "pid": "abc", "started": "now"}))
    (run / "launch.json").write_text("[]")

    progress = read_progress(run).set_index("variant")
    assert progress.loc["all", "state"] == "failed"
    assert "all/seed0/status.json: not a JSON object" in progress.loc["all", "error"]
    assert "resume the run to train this job again" in progress.loc["all", "error"]
    assert progress.loc["across_stage", "state"] == "done" and progress.loc["across_stage", "epoch"] == 0
    assert "across_stage/seed0/status.json: epoch: must be an integer" in progress.loc["across_stage", "error"]
    assert progress.loc["final_only", "state"] == "failed"  # running, with no pid to ask whether it is
    assert "final_only/seed0/status.json: pid: must be an integer" in progress.loc["final_only", "error"]
    worker = worker_record(run)  # pid "abc": no process to ask about, so the worker is gone
    assert worker["state"] == "failed" and "worker.json: pid" in worker["reason"]
    status_now = run_status(run)
    assert status_now.state == "failed" and "\n" not in status_now.reason

    rc, _out, err = _cli(["report", run], capsys)  # the report says which job it could not count
    assert rc == 0 and err == "", err
    assert "all: seed 0: " in (run / "report.md").read_text()


def test_the_run_list_shows_a_damaged_run_and_the_others(run, tmp_path):
    root = run.parent
    bad = root / "bad"
    shutil.copytree(run, bad)
    edit_request(bad, variants=list(VARIANTS))
    deep = root / "deep"
    shutil.copytree(run, deep)
    (deep / "ablation.json").write_bytes(b"[" * 100_000)
    runs = list_runs(root).set_index("name")
    assert runs.loc["run", "state"] == "done" and runs.loc["run", "jobs"] == 3
    assert runs.loc["bad", "state"] == "failed"
    assert runs.loc["bad", "reason"] == f"{bad / 'ablation.json'}: variants[0]: must be an object, got 'final_only'"
    assert runs.loc["deep", "state"] == "failed" and "nested deeper than 32 levels" in runs.loc["deep", "reason"]
    with pytest.raises(RunFolderError, match=r"variants\[0\]: must be an object") as err:
        read_progress(bad)
    assert "\n" not in str(err.value)

    from analysis.ablation import launch as al

    assert al.delete_run(bad, root) == bad.resolve()  # a damaged run can still be deleted
    assert not bad.exists() and run.is_dir()


def test_the_feature_maps_dataset_of_a_damaged_run_is_one_line(run):
    from analysis.features.val_pose import run_data_root

    for change, words in (({"data": ["builtin"]}, "data: must be an object"),
                          ({"data": {"kind": "builtin", "path": 5}}, "data: path: must be text")):
        edit_request(run, **change)
        with pytest.raises(UserInputError, match=words):
            run_data_root(run)
    (run / "ablation.json").write_bytes(b"[" * 100_000)
    with pytest.raises(UserInputError, match="nested deeper"):
        run_data_root(run)


def test_reader_bounds_on_text_and_requests(tmp_path):
    big = tmp_path / "report.md"
    with open(big, "wb") as fh:
        fh.truncate(8 << 20)
    with pytest.raises(RunFolderError, match="is 8,388,608 bytes"):
        read_text_file(big)
    (tmp_path / "binary.md").write_bytes(b"\xff\xfe")
    with pytest.raises(RunFolderError, match="not UTF-8 text"):
        read_text_file(tmp_path / "binary.md")
    (tmp_path / "ablation.json").mkdir()
    with pytest.raises(RunFolderError, match="is a folder"):
        read_request(tmp_path)
    assert read_request(tmp_path / "nowhere") is None


def test_the_app_shows_a_damaged_run_as_one_error_line(run, monkeypatch):
    """The Ablation page over a runs folder with a damaged run: no exception, the run is listed, and
    opening it shows the problem in one line, with the Delete button still there."""
    from streamlit.testing.v1 import AppTest

    from analysis.settings import RUNS_ENV

    edit_request(run, variants=list(VARIANTS))
    monkeypatch.setenv(RUNS_ENV, str(run.parent))
    monkeypatch.setenv("HRNET_EXPLORER_USER_CONFIGS", str(run.parent.parent / "configs"))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    at.switch_page("app/ablation.py").run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors and all("\n" not in e for e in errors), errors
    assert any("variants[0]: must be an object" in e for e in errors), errors
    assert "abl_delete" in [b.key for b in at.button]


@pytest.mark.parametrize("launched, words", [
    ({"run_dir": "x", "request": ["name", "base"]}, "holds no ablation"),  # the request is no object
    ({"request": {"name": "r", "base": 5}}, "launch.json: request.base: must be str, got 5"),
    ({"request": {"name": "r", "base": "b.yaml", "rm": "-rf"}}, "launch.json: request.'rm': unknown field"),
    ({"request": {"name": "r", "base": "b.yaml", "seeds": "3"}}, "launch.json: request.seeds: must be int"),
])
def test_resuming_from_a_damaged_launch_record_starts_no_worker(tmp_path, launched, words):
    from analysis.ablation import launch as al

    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    (run_dir / "launch.json").write_text(json.dumps(launched))
    before = snapshot(tmp_path)
    with pytest.raises(al.LaunchError, match=re.escape(words)) as err:
        al.resume(run_dir)
    assert "\n" not in str(err.value)
    assert snapshot(tmp_path) == before  # no worker.log, no worker started
