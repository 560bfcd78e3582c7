"""``space search``: the space file mapped onto Optuna's distributions, a tiny TPE search (smoke recipe, one epoch)
whose trials land in samples.jsonl / results.jsonl and a resumable SQLite study, epoch APs reported for pruning,
NSGA-II for two objectives, bad input in one line."""

from __future__ import annotations

import json

import optuna
import pytest

from analysis.cli import main
from analysis.space.search import STUDY_FILE, suggest
from analysis.space.space_file import parse_space

SPACE = """name: tiny_search
base: pose_hrnet_w32_256x192
samples: 4
seed: 0
sample:
  width: {int: [8, 16], step: 4}
  fusion: {choice: [all, none]}
  modules: {choice: [[1, 1, 1]]}
  blocks: {choice: [1]}
  input_size: {choice: [[64, 64]]}
"""


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def test_the_space_maps_onto_optuna_distributions():
    space = parse_space({"name": "m", "base": "pose_hrnet_w32_256x192", "samples": 1, "seed": 0, "sample": {
        "width": {"int": [8, 64], "dist": "power2"}, "stem": {"int": [16, 64], "step": 16},
        "fusion": {"choice": ["all", "none"]}, "input_size": {"choice": [[256, 192], [128, 96]]}}})
    trial = optuna.trial.FixedTrial({"width.log2": 4, "stem": 48, "fusion": 1, "input_size": 1})
    assert suggest(trial, space) == {"width": 16, "stem": 48, "fusion": "none", "input_size": [128, 96]}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):  # every suggestion lies inside its knob
        v = suggest(study.ask(), space)
        assert v["width"] in (8, 16, 32, 64) and v["stem"] in (16, 32, 48, 64) and v["fusion"] in ("all", "none")


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    (root / "s.yaml").write_text(SPACE)
    out = root / "run"
    assert main(["space", "search", str(root / "s.yaml"), "--trials", "2", "--objectives", "ap", "--out", str(out),
                 "--epochs", "2", "--device", "cpu"]) == 0
    return root, out


def test_trials_land_in_the_space_files_and_the_study(searched):
    root, out = searched
    samples, results = _lines(out / "samples.jsonl"), _lines(out / "results.jsonl")
    study = optuna.load_study(study_name="tiny_search", storage=f"sqlite:///{out / STUDY_FILE}")
    assert len(study.trials) == 2
    ids = {t.user_attrs["id"] for t in study.trials}
    assert ids == {s["id"] for s in samples} == {r["id"] for r in results}  # a repeated config is trained once
    for t in study.trials:
        r = next(r for r in results if r["id"] == t.user_attrs["id"])
        assert t.value == r["ap"] and r["status"] == "done"
        assert t.intermediate_values  # the evaluated epochs' AP, for the pruner
    assert main(["space", "report", str(out), "--out", str(root / "report")]) == 0


def test_a_second_call_resumes_the_study(searched):
    root, out = searched
    assert main(["space", "search", str(root / "s.yaml"), "--trials", "1", "--objectives", "ap", "--out", str(out),
                 "--epochs", "2", "--device", "cpu"]) == 0
    study = optuna.load_study(study_name="tiny_search", storage=f"sqlite:///{out / STUDY_FILE}")
    assert len(study.trials) == 3


def test_two_objectives_use_nsga2(tmp_path):
    (tmp_path / "s.yaml").write_text(SPACE)
    out = tmp_path / "mo"
    assert main(["space", "search", str(tmp_path / "s.yaml"), "--trials", "1", "--objectives", "ap,params",
                 "--out", str(out), "--epochs", "1", "--device", "cpu"]) == 0
    study = optuna.load_study(study_name="tiny_search", storage=f"sqlite:///{out / STUDY_FILE}")
    assert isinstance(study.sampler, optuna.samplers.NSGAIISampler) or len(study.directions) == 2
    (t,) = study.trials
    assert t.values[1] == _lines(out / "samples.jsonl")[0]["params"]


@pytest.mark.parametrize("args, words", [(["--objectives", "accuracy"], "--objectives"),
                                         (["--objectives", "ap,ap"], "--objectives")])
def test_bad_input_is_one_line(tmp_path, capsys, args, words):
    (tmp_path / "s.yaml").write_text(SPACE)
    assert main(["space", "search", str(tmp_path / "s.yaml"), "--trials", "1", "--out", str(tmp_path / "o"),
                 *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and not (tmp_path / "o").exists()


def test_a_foreign_folder_is_left_alone(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(SPACE)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "mine.txt").write_text("keep")
    assert main(["space", "search", str(tmp_path / "s.yaml"), "--trials", "1", "--out", str(tmp_path / "o")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["mine.txt"]
