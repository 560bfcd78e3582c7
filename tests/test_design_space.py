"""Design spaces (``hrnet-explorer space sample`` / ``space report``, ``analysis.space``): samples inside every range and
constraint, counts equal to ``analyze``, deterministic per seed, distinct; any network as base; the EDF / KS / Spearman
code against scipy and hand-computed cases; the Pareto front on a hand-made set; bad input exits 2 with one line and
writes nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from scipy import stats

import hrnet_core as hc
from analysis.cli import main
from analysis.complexity import analyze
from analysis.space import read_space, sample_space
from analysis.space.base_mapping import sample_id
from analysis.space.knobs import ChoiceKnob, FloatKnob, IntKnob
from analysis.space.population_stats import (
    common_bins,
    error_edf,
    ks_two_sample,
    normalized_edf,
    normalized_weights,
    pareto_front,
    spearman,
)

POSE_W32 = ROOT / "configs" / "pose_hrnet_w32_256x192.yaml"
HRNET_SPACE = f"""
name: tiny_hrnet
base: {POSE_W32}
samples: 10
seed: 3
sample:
  width: {{int: [8, 20], step: 2}}
  blocks: {{int: [1, 2]}}
  modules: {{choice: [[1, 1, 1], [1, 2, 1]]}}
  fusion: {{choice: [none, all]}}
  input_size: {{choice: [[64, 64], [128, 96]]}}
constraints:
  gflops: {{max: 0.25}}
  params: {{min: 2.0e5}}
"""
LITE_SPACE = """
name: tiny_lite
base: litehrnet_18_256x192
samples: 6
sample:
  extra.stem.stem_channels: {int: [16, 32], step: 8}
  extra.stages_spec.num_blocks: {int: [1, 2]}
  backbone.extra.stages_spec.num_modules: {choice: [[1, 1, 1], [2, 4, 2]]}
  input_size: {choice: [[64, 64], [128, 96]]}
"""


def _space(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]


def _sample(tmp_path: Path, text: str, *args: str) -> Path:
    out = tmp_path / "out"
    assert main(["space", "sample", str(_space(tmp_path, text)), "--out", str(out), *args]) == 0
    return out


def _counts_match_analyze(row: dict) -> None:
    cfg = hc.load_config(row["config"])  # buildable as is
    rep = analyze(cfg)
    assert (row["params"], row["conv_linear_macs"], row["activations"]) == (
        rep.params, rep.conv_linear_macs, rep.activations)
    assert row["gflops"] == rep.gflops_paper == rep.conv_linear_macs / 2**30
    assert row["id"] == sample_id(cfg)[0]


def test_hrnet_samples_inside_ranges_and_constraints_with_analyze_counts(tmp_path, capsys):
    out = _sample(tmp_path, HRNET_SPACE)
    assert "10 distinct configs" in capsys.readouterr().out
    rows = _rows(out)
    assert len(rows) == 10 and len({r["id"] for r in rows}) == 10
    assert len({json.dumps({k: v for k, v in r["config"].items() if k != "name"}, sort_keys=True) for r in rows}) == 10
    for r in rows:
        k = r["knobs"]
        assert 8 <= k["width"] <= 20 and k["width"] % 2 == 0 and k["blocks"] in (1, 2)
        assert k["modules"] in ([1, 1, 1], [1, 2, 1]) and k["fusion"] in ("none", "all")
        assert k["input_size"] in ([64, 64], [128, 96])
        assert r["gflops"] <= 0.25 and r["params"] >= 2e5
        st = r["config"]["stages"]
        assert [s["channels"][0] for s in st] == [k["width"]] * 3 and [s["modules"] for s in st] == k["modules"]
        _counts_match_analyze(r)
    assert (out / ".hrnet-explorer-space").is_file()
    # space.yaml is the space as read: it reads back (base inlined) and samples the same configs.
    again = sample_space(read_space(out / "space.yaml"))
    assert [s["id"] for s in again.samples] == [r["id"] for r in rows]


def test_deterministic_per_seed_and_a_space_folder_is_reused(tmp_path, capsys):
    out = _sample(tmp_path, HRNET_SPACE, "-n", "6", "--seed", "11")
    first = (out / "samples.jsonl").read_bytes()
    assert main(["space", "sample", str(tmp_path / "space.yaml"), "-n", "6", "--seed", "11", "--out", str(out)]) == 0
    assert (out / "samples.jsonl").read_bytes() == first  # same seed, same file; our own folder may be rewritten
    space = read_space(tmp_path / "space.yaml")
    other = sample_space(space, 6, seed=12)
    assert [s["id"] for s in other.samples] != [json.loads(line)["id"] for line in first.decode().splitlines()]
    assert sample_space(space, 6, seed=12).samples == other.samples


def test_lite_hrnet_base_knobs_of_its_backbone(tmp_path, capsys):
    out = _sample(tmp_path, LITE_SPACE)
    rows = _rows(out)
    assert len(rows) == 6 and len({r["id"] for r in rows}) == 6
    for r in rows:
        k = r["knobs"]
        extra = r["config"]["backbone"]["extra"]
        assert r["config"]["arch"] == "litehrnet"
        assert extra["stem"]["stem_channels"] == k["extra.stem.stem_channels"] in (16, 24, 32)
        blocks = k["extra.stages_spec.num_blocks"]  # a list in the base: each entry drawn on its own
        assert len(blocks) == 3 and set(blocks) <= {1, 2} and extra["stages_spec"]["num_blocks"] == blocks
        assert extra["stages_spec"]["num_modules"] == k["backbone.extra.stages_spec.num_modules"]
        _counts_match_analyze(r)


@pytest.mark.parametrize("knob", [
    IntKnob("k", ("k",), 8, 64, "uniform", 8), IntKnob("k", ("k",), 3, 40, "log_uniform"),
    IntKnob("k", ("k",), 8, 64, "log_uniform", 8), IntKnob("k", ("k",), 4, 256, "power2"),
    IntKnob("k", ("k",), 1, 9, "normal", 1, 5.0, 2.0), FloatKnob("k", ("k",), 0.5, 2.0, "uniform"),
    FloatKnob("k", ("k",), 1e-3, 1.0, "log_uniform"), FloatKnob("k", ("k",), 0.0, 1.0, "normal", 0.2, 0.5),
])
def test_every_draw_is_inside_its_range(knob):
    rng = np.random.default_rng(0)
    draws = [knob.draw(rng) for _ in range(3000)]
    assert all(knob.low <= v <= knob.high for v in draws)
    if isinstance(knob, IntKnob):
        assert all(isinstance(v, int) for v in draws)
        assert set(draws) <= set(knob.values())
        if knob.dist == "uniform":
            assert set(draws) == set(knob.values())  # every allowed value, each about equally often
        if knob.dist == "power2":
            assert set(draws) == {4, 8, 16, 32, 64, 128, 256}
        if knob.dist == "log_uniform":
            assert knob.low in draws and knob.high in draws
    assert [knob.draw(np.random.default_rng(5)) for _ in range(3)] == [knob.draw(np.random.default_rng(5))] * 3
    choice = ChoiceKnob("c", ("c",), ('"a"', "[1,2]"))
    assert {json.dumps(choice.draw(rng)) for _ in range(50)} == {'"a"', "[1, 2]"}


def test_edf_against_scipy_and_by_hand():
    errs = [0.3, 0.1, 0.2, 0.2, 0.5]
    e, f = error_edf(errs)
    assert e == [0.1, 0.2, 0.2, 0.3, 0.5] and f == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    res = stats.ecdf(errs).cdf
    assert [f[i] for i in (0, 2, 3, 4)] == pytest.approx(res.evaluate(np.array([0.1, 0.2, 0.3, 0.5])))
    # Normalized EDF by hand: complexities 1, 1, 2, 4 in two bins of [1, 4] -> counts 3 and 1 -> weights 1/6 x3, 1/2.
    w = normalized_weights([1, 1, 2, 4], 2, (1.0, 4.0))
    assert w == pytest.approx([1 / 6, 1 / 6, 1 / 6, 1 / 2]) and w.sum() == pytest.approx(1.0)
    ne, nf = normalized_edf([0.4, 0.1, 0.3, 0.2], w)
    assert ne == [0.1, 0.2, 0.3, 0.4] and nf == pytest.approx([1 / 6, 2 / 3, 5 / 6, 1.0])
    with pytest.raises(ValueError):
        normalized_weights([1, 1, 1.2, 4], 3, (1.0, 4.0))  # an empty bin: the weights would not sum to 1
    assert common_bins([[1, 2, 3, 4, 5, 6, 7, 8, 9], [2, 3, 4, 5, 6, 7, 8, 20]])[1] == (2.0, 9.0)
    assert common_bins([[1, 2], [3, 4]]) is None


def test_ks_and_spearman_are_scipys():
    assert ks_two_sample([1, 2, 3], [4, 5, 6]) == pytest.approx({"statistic": 1.0, "p_value": 0.1})  # 2 / C(6, 3)
    a, b = np.random.default_rng(1).normal(0, 1, 40), np.random.default_rng(2).normal(0.5, 1, 30)
    ref = stats.ks_2samp(a, b)
    assert ks_two_sample(a, b) == {"statistic": ref.statistic, "p_value": ref.pvalue}
    x, y = [1, 2, 3, 4, 5], [0.5, 0.4, 0.45, 0.2, 0.1]
    ref = stats.spearmanr(x, y)
    assert spearman(x, y) == {"rho": pytest.approx(ref.statistic), "p_value": pytest.approx(ref.pvalue), "n": 5}
    assert spearman([1, 1, 1], [1, 2, 3])["rho"] is None


def test_pareto_front_of_a_hand_made_set():
    pts = {"A": (1, 5), "B": (2, 3), "C": (3, 3), "D": (2, 4), "E": (4, 1), "F": (4, 1), "G": (5, 2), "H": (0.5, 9)}
    ids = list(pts)
    front = pareto_front(ids, [pts[i][0] for i in ids], [pts[i][1] for i in ids])
    assert front == ["H", "A", "B", "E", "F"]  # C: B has less x, same y; D, G dominated; E, F equal: both kept
    assert pareto_front([], [], []) == []


def _results(folder: Path, rows: list[dict], shift: float) -> tuple[dict, list[str]]:
    # Synthetic results.jsonl: the training step does not exist yet. AP grows with GFLOPs; every 4th sample fails.
    lines, errors, failed = [], {}, []
    for i, r in enumerate(rows):
        if i % 4 == 3:
            lines.append({"id": r["id"], "status": "failed", "epochs": 1, "seconds": 2.5, "error": "out of memory"})
            failed.append(r["id"])
            continue
        ap = min(1.0, 0.3 + 0.2 * r["gflops"] - shift + 0.01 * (i % 3))
        lines.append({"id": r["id"], "status": "done", "ap": ap, "epochs": 2, "seconds": 10.0})
        errors[r["id"]] = 1 - ap
    (folder / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return errors, failed


def test_report_summary_figures_and_failed_samples(tmp_path, capsys):
    spaces = []
    for name, text, shift in (("hr", HRNET_SPACE, 0.0), ("lite", LITE_SPACE, 0.1)):
        out = tmp_path / name
        assert main(["space", "sample", str(_space(tmp_path, text, f"{name}.yaml")), "--out", str(out)]) == 0
        rows = _rows(out)
        spaces.append((rows, *_results(out, rows, shift)))
    report = tmp_path / "report"
    assert main(["space", "report", str(tmp_path / "hr"), str(tmp_path / "lite"), "--out", str(report)]) == 0
    assert "KS tiny_hrnet vs tiny_lite" in capsys.readouterr().out
    summary = json.loads((report / "summary.json").read_text())
    (rows_a, err_a, failed_a), (rows_b, err_b, _) = spaces
    ref = stats.ks_2samp(list(err_a.values()), list(err_b.values()))
    assert summary["ks"]["statistic"] == pytest.approx(ref.statistic)
    assert summary["ks"]["p_value"] == pytest.approx(ref.pvalue)
    edf = summary["edf"]["tiny_hrnet"]
    assert edf["n"] == len(err_a) and edf["error"] == pytest.approx(sorted(err_a.values()))
    assert edf["cdf"][-1] == pytest.approx(1.0)
    for c in ("params", "gflops"):
        norm = edf["normalized"][c]
        if norm is not None:
            assert norm["cdf"][-1] == pytest.approx(1.0)
            assert norm["range"] == summary["edf"]["tiny_lite"]["normalized"][c]["range"]  # one range for both
    space_a = summary["spaces"][0]
    assert space_a["failed"] == len(failed_a) and {f["id"] for f in space_a["failed_ids"]} == set(failed_a)
    assert not set(failed_a) & set(summary["pareto"]["tiny_hrnet"]["gflops"])  # failed: listed, never plotted
    done = [r for r in rows_a if r["id"] in err_a]
    assert summary["pareto"]["tiny_hrnet"]["params"] == pareto_front(
        [r["id"] for r in done], [r["params"] for r in done], [err_a[r["id"]] for r in done])
    assert "latency_ms" not in summary["pareto"]["tiny_hrnet"] and "all" in summary["pareto"]
    width = summary["knob_effect"]["tiny_hrnet"]["width"]
    ref = stats.spearmanr([r["knobs"]["width"] for r in done], [err_a[r["id"]] for r in done])
    assert width["rho"] == pytest.approx(ref.statistic) and width["n"] == len(done)
    assert summary["knob_effect"]["tiny_lite"]["extra.stages_spec.num_blocks[2]"]["x"] == "value"
    md = (report / "report.md").read_text()
    for name in ("edf", "complexity", "knobs_1", "knobs_2"):
        assert (report / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (report / "figures" / f"{name}.svg").read_bytes()[:2000]
        assert f"figures/{name}.png" in md
    assert "plotly" in (report / "report.html").read_text()[:200_000] and failed_a[0] in md


def test_report_refuses_an_ap_in_percent(tmp_path, capsys):
    out = _sample(tmp_path, LITE_SPACE, "-n", "2")
    sid = _rows(out)[0]["id"]
    (out / "results.jsonl").write_text(json.dumps({"id": sid, "status": "done", "ap": 71.2, "epochs": 1,
                                                   "seconds": 1}) + "\n")
    capsys.readouterr()
    assert main(["space", "report", str(out), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "results.jsonl line 1: ap" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


BAD = {
    "unknown_key": ("sample: {widht: {int: [8, 16]}}", "sample.widht: unknown key"),
    "unknown_nested_key": ("sample: {head.bogus: {int: [1, 2]}}", "sample.head.bogus: unknown key"),
    "low_above_high": ("sample: {width: {int: [64, 8]}}", "sample.width.int: low 64 is above high 8"),
    "empty_choice": ("sample: {fusion: {choice: []}}", "sample.fusion.choice: must be a non-empty list"),
    "power2_on_float": ("sample: {width: {float: [8, 64], dist: power2}}", "sample.width.dist"),
    "log_uniform_low_0": ("sample: {width: {int: [0, 64], dist: log_uniform}}", "log_uniform needs low > 0"),
    "float_for_int_key": ("sample: {width: {float: [8.5, 9.5]}}", "sample.width: the base"),
    "no_effect": ("sample: {head.channels: {int: [100, 200]}}", "does not change the model"),
    "samples_0": ("samples: 0\nsample: {width: {int: [8, 16]}}", "samples: must be a positive integer"),
    "samples_too_many": ("samples: 1000001\nsample: {width: {int: [8, 16]}}", "exceeds the maximum"),
    "unsatisfiable": ("sample: {width: {int: [8, 16]}}\nconstraints: {gflops: {max: 0.001}}",
                      "constraints.gflops.max: no config in the first 1000 draws"),
    "min_above_max": ("sample: {width: {int: [8, 16]}}\nconstraints: {params: {min: 5, max: 1}}",
                      "constraints.params: min 5 is above max 1"),
    "network_shorthand": ("sample: {width: {int: [8, 16]}}", "sample.width: unknown key for arch litehrnet"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_space_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, case):
    body, needle = BAD[case]
    base = "litehrnet_18_256x192" if case == "network_shorthand" else POSE_W32
    space = _space(tmp_path, f"base: {base}\n{body}\n")
    out = tmp_path / "out"
    assert main(["space", "sample", str(space), "--out", str(out), "-n", "3"]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("n", ["0", "-1", "1000001"])
def test_bad_n_exits_2(tmp_path, capsys, n):
    space = _space(tmp_path, HRNET_SPACE)
    assert main(["space", "sample", str(space), "-n", n, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "-n" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_folder_the_tool_did_not_make_stays_untouched(tmp_path, capsys):
    space = _space(tmp_path, HRNET_SPACE)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    for target in (foreign, foreign / "notes.txt"):
        assert main(["space", "sample", str(space), "-n", "2", "--out", str(target)]) == 2
        err = capsys.readouterr().err
        assert "--out" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"] and (foreign / "notes.txt").read_text() == "keep me"
    assert main(["space", "report", str(tmp_path), "--out", str(tmp_path / "r")]) == 2  # not a space folder
    assert "not a space folder" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_latency_is_measured_for_each_sample(tmp_path, capsys, monkeypatch):
    from analysis.space import latency

    monkeypatch.setattr(latency, "CPU_RUNS", (0, 1))  # one timed forward per sample: the path, not the figure
    text = f"""
base: {POSE_W32}
sample:
  width: {{int: [8, 10], step: 2}}
  modules: {{choice: [[1, 1, 1]]}}
  blocks: {{choice: [1]}}
  input_size: {{choice: [[64, 64]]}}
constraints:
  latency_ms: {{max: 1.0e6}}
"""
    out = _sample(tmp_path, text, "-n", "2", "--latency", "--device", "cpu")
    rows = _rows(out)
    assert len(rows) == 2 and all(r["latency_ms"] > 0 and math.isfinite(r["latency_ms"]) for r in rows)
    assert "latency: 2/2 samples accepted" in capsys.readouterr().err


def test_base_forms_resolve_like_config_arguments(tmp_path):
    (tmp_path / "cfgs").mkdir()
    (tmp_path / "cfgs" / "mine.yaml").write_text(POSE_W32.read_text())
    (tmp_path / "spaces").mkdir()
    knob = "sample: {width: {int: [8, 16]}}\n"
    forms = {"../cfgs/mine.yaml": "pose_hrnet_w32_256x192",  # relative to the space file
             "configs/pose_hrnet_w32_256x192.yaml": "pose_hrnet_w32_256x192",  # else to the project root
             "pose_hrnet_w32_256x192": "pose_hrnet_w32_256x192"}  # a preset name
    for base, name in forms.items():
        assert read_space(_space(tmp_path / "spaces", f"base: {base}\n{knob}")).base.name == name
    mm = ROOT.parent / "shared" / "official" / "mmpose" / "td-hm_hrformer-small_8xb32-210e_coco-256x192.py"
    if mm.is_file():  # an mmpose .py config of another network: its backbone knobs
        space = read_space(_space(tmp_path, f"base: {mm}\nsample: {{extra.stage4.num_modules: {{int: [1, 2]}}}}\n"))
        assert space.base.arch == "hrformer" and space.knobs[0].path[0] == "backbone"


def test_report_with_nothing_trained_yet_and_no_resampling_over_results(tmp_path, capsys):
    space = _space(tmp_path, LITE_SPACE)
    out = _sample(tmp_path, LITE_SPACE, "-n", "2")
    assert main(["space", "report", str(out), "--out", str(tmp_path / "r")]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["spaces"][0]["pending"] == 2 and summary["ks"] is None and summary["edf"]["tiny_lite"]["n"] == 0
    assert "No trained samples yet" in (tmp_path / "r" / "report.md").read_text()
    (out / "results.jsonl").write_text("")
    capsys.readouterr()
    assert main(["space", "sample", str(space), "-n", "2", "--out", str(out)]) == 2  # would orphan the results
    assert "results.jsonl" in capsys.readouterr().err
