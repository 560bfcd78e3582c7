"""Trained weights in the feature-map views: run checkpoints by run / variant / seed, a run's validation
persons with ground truth against prediction, the untrained network's activations, and the Feature maps
page (AppTest) and `features` CLI on a real smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT
from streamlit.testing.v1 import AppTest

import hrnet_core as hc
from analysis.ablation.coco_data import DatasetError, KeypointDataset
from analysis.ablation.keypoints import FLIP_PAIRS
from analysis.ablation.progress import (
    RUN_CONFIG_NAME,
    checkpoint_run_dir,
    find_run_checkpoint,
    run_checkpoints,
)
from analysis.cli import main
from analysis.features.capture import capture
from analysis.features.val_pose import (
    BOX_COLOUR,
    JOINT_COLUMNS,
    LEFT,
    draw_comparison,
    pick,
    predict_person,
    run_data_root,
    val_persons,
)
from analysis.features.weights import build_weights, checkpoint_meta, describe_checkpoint
from analysis.imaging.images import load_image
from hrnet_core import CheckpointError

APP = str(ROOT / "streamlit_app.py")
RUN = "smoke"


@pytest.fixture(scope="module")
def run_dir(trained_runs) -> Path:
    return trained_runs / RUN


def _job_cfg(run_dir: Path, variant: str = "all"):
    return hc.load_config(run_dir / variant / "seed0" / RUN_CONFIG_NAME)


# ---- listing and finding run checkpoints --------------------------------------------------------------


def test_run_checkpoints_list_best_and_last_with_their_config(run_dir):
    df = run_checkpoints(run_dir.parent)
    assert set(df["variant"]) == {"final_only", "across_stage", "all"}
    job = df[(df["run"] == RUN) & (df["variant"] == "all") & (df["seed"] == 0)]
    assert list(job["which"]) == ["best", "last"]  # best first
    assert set(job["path"]) == {str(run_dir / "all" / "seed0" / f"{w}.pth") for w in ("best", "last")}
    assert set(job["config"]) == {str(run_dir / "all" / "seed0" / RUN_CONFIG_NAME)}
    assert find_run_checkpoint(run_dir, "all", 0) == run_dir / "all" / "seed0" / "best.pth"
    assert find_run_checkpoint(run_dir, "all", 0, "last") == run_dir / "all" / "seed0" / "last.pth"
    assert checkpoint_run_dir(run_dir / "all" / "seed0" / "last.pth") == run_dir.resolve()


def test_find_run_checkpoint_falls_back_to_last_and_names_what_is_missing(tmp_path):
    job = tmp_path / "r" / "v" / "seed3"
    job.mkdir(parents=True)
    (job / "last.pth").write_bytes(b"")
    assert find_run_checkpoint(tmp_path / "r", "v", 3, "auto") == job / "last.pth"
    with pytest.raises(CheckpointError, match=r"best\.pth: no such checkpoint \(the job has: last\.pth\)"):
        find_run_checkpoint(tmp_path / "r", "v", 3, "best")
    with pytest.raises(CheckpointError, match=r"no such job in r \(it has: v/seed3\)"):
        find_run_checkpoint(tmp_path / "r", "all", 0)
    with pytest.raises(CheckpointError, match="no such run folder"):
        find_run_checkpoint(tmp_path / "nope", "v", 3)
    assert run_checkpoints(tmp_path / "missing").empty


def test_checkpoint_meta_and_description(run_dir, tmp_path):
    ck = run_dir / "all" / "seed0" / "last.pth"
    meta = checkpoint_meta(ck)
    epochs = json.loads((run_dir / "ablation.json").read_text())["recipe"]["epochs"]
    assert meta["epoch"] == epochs and meta["variant"] == "all" and meta["seed"] == 0
    pck = meta["metrics"]["PCK@0.1"]
    assert describe_checkpoint(meta) == (f"epoch {epochs} · val AP {100 * meta['metrics']['AP']:.1f} % · "
                                         f"val PCK@0.1 {100 * pck:.1f} %")
    bare = tmp_path / "bare.pth"
    torch.save({"w": torch.zeros(1)}, bare)
    assert checkpoint_meta(bare) == {} and describe_checkpoint({}) == ""
    (tmp_path / "junk.pth").write_bytes(b"junk")
    assert checkpoint_meta(tmp_path / "junk.pth") == {}


# ---- the untrained network ------------------------------------------------------------------------------


def test_untrained_network_activations_have_not_collapsed():
    """Every branch keeps a per-branch std within a few orders of 1; with the official N(0, 0.001) init in
    eval mode they would be 1e-10 and below (why the untrained view does not use it). W32's stage layout
    (1 / 4 / 3 modules) at width 16, 2 blocks and 128x96 to keep the test light."""
    cfg = hc.load_config({"width": 16, "modules": [1, 4, 3], "blocks": 2, "input_size": [128, 96]})
    model, status = build_weights(cfg)
    assert status.startswith("untrained network (PyTorch default init")
    stds = capture(model, cfg, "astronaut", device="cpu").stats()["std"]
    assert stds.min() > 1e-3 and stds.max() < 1e2, (stds.min(), stds.max())
    collapsed, _ = build_weights(cfg, init="official")
    assert capture(collapsed, cfg, "astronaut", device="cpu").stats()["std"].min() < 1e-6
    # Seeded: the same untrained network every time, without touching the global RNG.
    state = torch.random.get_rng_state()
    again, _ = build_weights(cfg)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


# ---- validation persons: ground truth vs prediction -------------------------------------------------------


def test_val_persons_come_from_the_run_dataset(run_dir):
    root = run_data_root(run_dir)
    data = json.loads((run_dir / "ablation.json").read_text())["data"]
    assert root == Path(data["path"])
    records = val_persons(root, (64, 64))
    assert len(records) == data["val_persons"]
    assert pick(records, 0) is records[0]
    with pytest.raises(DatasetError, match=rf"validation person {len(records)}: out of range"):
        pick(records, len(records))
    with pytest.raises(DatasetError, match="ablation.json: missing"):
        run_data_root(run_dir / "all")


def _targets(rec, input_hw):
    """The training targets (Gaussian heatmaps) of ``rec``'s crop, as the loader builds them."""
    _, target, weight, _ = KeypointDataset([rec], input_hw, sigma=2.0)[0]
    return target.numpy(), weight.numpy()[:, 0] > 0


def test_predict_person_decodes_target_heatmaps_back_to_the_truth(run_dir):
    input_hw = (256, 192)
    records = val_persons(run_data_root(run_dir), input_hw)
    for rec in records[:4]:
        target, inside = _targets(rec, input_hw)
        pred = predict_person(target, rec)
        joints = pred.joints()
        assert list(joints.columns) == list(JOINT_COLUMNS) and len(joints) == 17
        ok = joints["labelled"].to_numpy() & inside
        assert ok.sum() >= 5
        assert (joints.loc[ok, "error_rel"] < 0.05).all(), joints.loc[ok, ["joint", "error_px", "error_rel"]]
        assert np.allclose(joints.loc[ok, "confidence"], 1.0, atol=1e-3)  # a Gaussian target's peak is 1
        assert pred.metrics["LR-swap"] == 0.0
    # The same maps with left and right exchanged: the per-person metrics see the swap.
    rec = max(records, key=lambda r: (r.joints[:, 2] > 0).sum())
    target, _ = _targets(rec, input_hw)
    perm = list(range(17))
    for a, b in FLIP_PAIRS:
        perm[a], perm[b] = b, a
    swapped = predict_person(target[perm], rec)
    assert swapped.metrics["LR-swap"] > 0.5 and swapped.metrics["PCK@0.1"] < predict_person(target, rec).metrics["PCK@0.1"]
    with pytest.raises(ValueError, match="17"):
        predict_person(target[:16], rec)


def test_draw_comparison_shows_truth_left_prediction_right(run_dir):
    input_hw = (64, 64)
    rec = val_persons(run_data_root(run_dir), input_hw)[0]
    target, _ = _targets(rec, input_hw)
    pred = predict_person(np.zeros_like(target), rec)  # every joint at the crop's corner: nothing near the truth
    img = np.asarray(draw_comparison(load_image(rec.image), pred, input_hw, height=200))
    width = 200  # square input
    assert img.shape == (200 + 22, 2 * width + 8, 3)
    left_panel, right_panel = img[22:, :width], img[22:, width + 8:]
    for panel in (left_panel, right_panel):
        assert (panel == BOX_COLOUR).all(axis=-1).sum() > 100  # the person box, drawn in both
    # Ground-truth left-side joints are drawn in the left panel, where the prediction has none.
    from analysis.imaging.topdown import affine_points, get_affine_transform

    m = get_affine_transform(rec.center, rec.scale, 0, (width, 200))
    j = next(j for j, _ in FLIP_PAIRS if rec.joints[j, 2] > 0)
    x, y = np.round(affine_points(rec.joints[j, :2], m)).astype(int)
    assert (left_panel[y, x] == LEFT).all()
    assert not (right_panel[y, x] == LEFT).all()


# ---- the features CLI ----------------------------------------------------------------------------------------


def test_cli_features_run_checkpoint_with_val_person(run_dir, tmp_path, capsys):
    out = tmp_path / "fm"
    assert main(["features", "--run", str(run_dir), "--variant", "all", "--seed", "0", "--which", "best",
                 "--val-index", "1", "--device", "cpu", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    cfg = _job_cfg(run_dir)
    h, w = cfg.input_hw
    assert f"(HRNet-W{cfg.stages[0].channels[0]}, {hc.count_params(cfg) / 1e6:.3f}M params, input {h}x{w})" in text
    assert f"{run_dir / 'all' / 'seed0' / 'best.pth'} (strict)" in text
    assert "checkpoint: epoch " in text and "validation person 1 (" in text
    joints = pd.read_csv(out / "joints.csv")
    assert list(joints.columns) == list(JOINT_COLUMNS) and len(joints) == 17
    rec = val_persons(run_data_root(run_dir), cfg.input_hw)[1]
    assert np.allclose(joints["gt_x"].dropna(), rec.joints[rec.joints[:, 2] > 0, 0], atol=1e-3)
    assert (out / "gt_vs_pred.png").is_file() and (out / "stats.csv").is_file()


def test_cli_features_checkpoint_brings_its_model_yaml(run_dir, tmp_path, capsys):
    ck = run_dir / "final_only" / "seed0" / "last.pth"
    assert main(["features", "--checkpoint", str(ck), "--image", "coffee", "--device", "cpu",
                 "-o", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    cfg = _job_cfg(run_dir, "final_only")
    assert f"{hc.count_params(cfg) / 1e6:.3f}M params" in text and f"{ck} (strict)" in text


def test_cli_features_untrained_says_so(tmp_path, capsys):
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text("width: 8\nmodules: [1, 1, 1]\nblocks: 1\nstage1: {blocks: 1, planes: 16}\ninput_size: [64, 64]\n")
    assert main(["features", str(tiny), "--device", "cpu", "-o", str(tmp_path / "o")]) == 0
    assert "untrained network (PyTorch default init, seed 0)" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--run", "{run}", "--variant", "all", "--val-index", "999"], "validation person 999: out of range"),
    (["--run", "{run}", "--variant", "nope"], "nope/seed0: no such job in smoke"),
    (["--run", "{run}"], "--variant: needed with --run"),
    (["{config}", "--val-index", "0"], "--val-index: needs a run"),
    (["--run", "{run}", "--variant", "all", "--val-index", "0", "--image", "coffee"], "drop --image"),
    ([], "CONFIG: needed"),
])
def test_cli_features_bad_run_arguments_are_one_line(run_dir, tmp_path, capsys, args, message):
    config = str(run_dir / "all" / "seed0" / RUN_CONFIG_NAME)
    argv = ["features", *[a.format(run=run_dir, config=config) for a in args], "-o", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# ---- the Feature maps page (AppTest) -------------------------------------------------------------------


@pytest.fixture()
def page_env(trained_runs, tmp_path, monkeypatch):
    monkeypatch.setenv("HRNET_EXPLORER_RUNS", str(trained_runs))
    monkeypatch.setenv("HRNET_EXPLORER_USER_CONFIGS", str(tmp_path / "configs"))
    return trained_runs


def _feature_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("app/feature_maps.py").run()
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_page_run_checkpoint_and_val_person_show_gt_vs_prediction(page_env):
    run_dir = page_env / RUN
    at = _feature_page()
    _ok(at)
    at.selectbox(key="f_ck").set_value("a run's checkpoint (run / variant / seed)…").run()
    at.selectbox(key="f_run").set_value(RUN).run()
    at.selectbox(key="f_variant").set_value("all").run()
    at.selectbox(key="f_seed").set_value(0).run()
    assert at.selectbox(key="f_which").options == ["best", "last"]
    at.selectbox(key="f_which").set_value("best").run()
    at.selectbox(key="f_image").set_value("a run's validation person (by index)…").run()
    at.number_input(key="f_val_index").set_value(2).run()
    _ok(at)

    cfg = _job_cfg(run_dir)
    h, w = cfg.input_hw
    model_bits = (f"**{cfg.name}**", f"W{cfg.stages[0].channels[0]}", f"input {h}x{w}")
    header = next(m.value for m in at.markdown if m.value.startswith("Checkpoint smoke/all/seed0/best.pth"))
    assert all(b in header for b in model_bits) and "epoch " in header, header
    assert "W32" not in header
    assert any("Using the run's own config" in c.value for c in at.caption)
    assert any("best.pth (strict)" in c.value for c in at.caption)  # those weights were loaded
    sidebar = " ".join(m.value for m in at.sidebar.markdown)
    assert all(b in sidebar for b in model_bits) and "W32" not in sidebar, sidebar
    assert any(c.value == "Model of checkpoint smoke/all/seed0/best.pth" for c in at.sidebar.caption)

    count = len(val_persons(run_data_root(run_dir), cfg.input_hw))
    assert any(s.value == f"Validation person 2 of {count} (run {RUN})" for s in at.subheader)
    joints = next(df.value for df in at.dataframe if "confidence" in df.value.columns)
    assert len(joints) == 17 and joints["confidence"].between(0, 2).all()
    assert {"PCK@0.1 (this person)", "Mean confidence"} <= {m.label for m in at.metric}
    assert any(p.proto.spec and "confidence" in p.proto.spec for p in at.get("plotly_chart"))

    at.selectbox(key="f_which").set_value("last").run()
    _ok(at)
    assert any(m.value.startswith("Checkpoint smoke/all/seed0/last.pth") for m in at.markdown)


def test_page_without_checkpoint_is_an_untrained_network_with_live_activations(page_env):
    at = _feature_page()
    _ok(at)
    assert at.selectbox(key="f_ck").value == "none (untrained network)"
    assert any("Untrained network" in w.value for w in at.warning)
    assert any("untrained network (PyTorch default init" in c.value for c in at.caption)
    stats = next(df.value for df in at.dataframe if "sparsity" in df.value.columns)
    assert stats["std"].min() > 1e-3, stats["std"].min()
    assert any(c.value == "Current model" for c in at.sidebar.caption)  # the Build page's model
    assert any("W32" in m.value for m in at.sidebar.markdown)
    # A validation person without a checkpoint: the dataset of a run picked by name.
    at.selectbox(key="f_image").set_value("a run's validation person (by index)…").run()
    _ok(at)
    assert at.selectbox(key="f_val_run").value == RUN
    assert any(s.value.startswith("Validation person 0 of ") for s in at.subheader)
