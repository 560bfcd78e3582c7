"""``space train``: every sample of a space folder trained with an ablation recipe (smoke, one epoch here), results
appended as samples finish, resumable, a failing sample recorded while the study goes on, sampled keys winning
over the recipe's size overrides; the trained folder reads back in ``space report``."""

from __future__ import annotations

import json

import pytest

import hrnet_core as hc
from analysis.ablation.recipes import load_recipe
from analysis.cli import main
from analysis.space.train import recipe_overrides, sample_config
from hrnet_core.concise_yaml import to_concise_dict

SPACE = """name: tiny
base: pose_hrnet_w32_256x192
samples: 2
seed: 0
sample:
  width: {int: [8, 12], step: 4}
  fusion: {choice: [all, none]}
  modules: {choice: [[1, 1, 1]]}
  blocks: {choice: [1]}
  input_size: {choice: [[64, 64]]}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("space")
    (root / "tiny.yaml").write_text(SPACE)
    folder = root / "tiny"
    assert main(["space", "sample", str(root / "tiny.yaml"), "--out", str(folder)]) == 0
    lines = (folder / "samples.jsonl").read_text().splitlines()
    broken = json.loads(lines[0])  # a third sample the recipe cannot train: 5 joints against COCO's 17
    broken["id"], broken["config"]["head"]["outputs"] = "broken", 5
    (folder / "samples.jsonl").write_text("\n".join([*lines, json.dumps(broken)]) + "\n")
    assert main(["space", "train", str(folder), "--recipe", "smoke", "--epochs", "1", "--device", "cpu"]) == 0
    return folder, [json.loads(line) for line in lines]


def _results(folder):
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


def test_every_sample_has_a_result_and_a_job_folder(trained):
    folder, samples = trained
    rows = {r["id"]: r for r in _results(folder)}
    assert set(rows) == {s["id"] for s in samples} | {"broken"}
    for s in samples:
        r = rows[s["id"]]
        assert r["status"] == "done" and 0 <= r["ap"] <= 1 and r["epochs"] == 1 and r["seconds"] > 0
        assert (folder / "jobs" / s["id"] / "seed0" / "last.pth").is_file()
        trained_cfg = hc.load_config(folder / "jobs" / s["id"] / "seed0" / "model.yaml")
        assert trained_cfg.stages[0].channels[0] == s["knobs"]["width"]  # the sampled width, not smoke's 8
        assert trained_cfg.stem.channels == load_recipe("smoke").model["stem"]  # the recipe's other overrides
    assert rows["broken"]["status"] == "failed" and rows["broken"]["error"]


def test_a_rerun_trains_nothing_again(trained, capsys):
    folder, _ = trained
    before = (folder / "results.jsonl").read_text()
    assert main(["space", "train", str(folder), "--recipe", "smoke", "--epochs", "1", "--device", "cpu"]) == 0
    assert "0 done, 0 failed, 3 already had a result" in capsys.readouterr().out
    assert (folder / "results.jsonl").read_text() == before


def test_the_report_reads_the_trained_folder(trained, tmp_path):
    folder, samples = trained
    assert main(["space", "report", str(folder), "--out", str(tmp_path / "r")]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["edf"] and (tmp_path / "r" / "report.html").is_file()


def test_sampled_keys_win_over_the_recipe():
    smoke = load_recipe("smoke")
    kept, dropped = recipe_overrides(smoke, ["width", "fusion"])
    assert "width" in dropped and "width" not in kept and kept["stem"] == smoke.model["stem"]
    kept, dropped = recipe_overrides(smoke, ["extra.stages_spec.num_channels"])  # another network's widths
    assert dropped == ("width",)
    sample = {"id": "x", "knobs": {"width": 12}, "config": to_concise_dict(hc.load_config_text(
        "width: 12\nmodules: [1, 1, 1]\nblocks: 1\ninput_size: [64, 64]\n"))}
    cfg = sample_config(sample, smoke)
    assert cfg.stages[0].channels[0] == 12 and cfg.input_hw == tuple(smoke.input_size) and cfg.name == "x"


def test_not_a_space_folder_is_refused(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep")
    assert main(["space", "train", str(tmp_path), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a space folder" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]
