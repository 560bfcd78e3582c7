"""The network learns: a short training run on the built-in data must localise joints far better than
the same network untrained, on the same validation images.

It fails when the loss, the heatmap targets or the optimiser step are broken (each is checked by
breaking it on purpose below), not only when the pipeline crashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import ROOT

import hrnet_core as hc
from analysis.ablation import step as step_module
from analysis.ablation.coco_data import KeypointDataset, load_coco_api
from analysis.ablation.evaluate import evaluate
from analysis.ablation.recipes import parse_recipe
from analysis.ablation.runner import AblationRequest, load_request, parse_variants, resolve_base, run_ablation
from analysis.ablation.train import init_by_name

FACTOR = 3.0  # trained PCK@0.1 / untrained PCK@0.1 (issue 10)

# A small, easy version of the built-in task (one upright figure, little clutter) so that a few hundred
# steps on a CPU show learning; the cpu recipe is the full-size study.
RECIPE = {
    "name": "learning-test",
    "data": "builtin",
    "builtin": {"seed": 11, "train": 600, "val": 60, "image_size": [96, 96],
                "scene": {"figures": [1, 0, 0], "clutter_min": 0, "clutter_max": 2, "occluder_prob": 0.0,
                          "free_rotation": 0.0}},
    "input_size": [64, 64],
    "sigma": 1.5,
    "epochs": 4,
    "batch_size": 16,
    "lr": 0.004,
    "lr_schedule": "cosine",
    "warmup_epochs": 0.5,
    "augment": {"flip": True, "scale": 0.15, "rotation": 10, "rotation_prob": 0.3, "half_body_prob": 0.0},
    "eval_every": 4,
    "eval_batch_size": 32,
    "workers": 0,
    "cpu_threads": 1,
    "cpu_precision": "fp32",
    "model": {"width": 8, "blocks": 1, "stem": 16, "stage1_blocks": 1, "stage1_planes": 16},
}


def _train(out: Path) -> dict:
    recipe = parse_recipe(RECIPE, "learning-test")
    base = resolve_base(hc.load_config(ROOT / "configs" / "pose_hrnet_w32_256x192.yaml"), recipe)
    req = AblationRequest(out, base, parse_variants("8", base), recipe, "builtin", [0], "cpu")
    result = run_ablation(req, log=lambda s: None)
    assert result["done"] == 1, result
    rows = [json.loads(x) for x in (out / "all" / "seed0" / "metrics.jsonl").read_text().splitlines()]
    return rows[-1]


def _untrained_pck(out: Path) -> float:
    """PCK@0.1 of the same network, untrained (same init and seed), on the same validation images."""
    req = load_request(out)
    from analysis.ablation.runner import prepare_data
    from analysis.ablation.train import DistContext

    data = prepare_data(req, DistContext(torch.device("cpu")), log=lambda s: None)
    cfg = req.base.with_fusion(req.variants[0].schedule)
    model = init_by_name(hc.build_model(cfg, init="default"), 0, req.recipe.init)
    val = KeypointDataset(data.val_records, cfg.input_hw, req.recipe.sigma)
    return evaluate(model, val, load_coco_api(data.val_ann_file), torch.device("cpu"), 32)["PCK@0.1"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HRNET_EXPLORER_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def trained(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("learn") / "run"
    return out, _train(out)


def test_short_training_beats_the_untrained_network_threefold(trained):
    out, row = trained
    before = _untrained_pck(out)
    after = row["PCK@0.1"]
    assert after >= FACTOR * max(before, 0.01), f"PCK@0.1 untrained {before:.3f}, trained {after:.3f}"
    assert (out / "all" / "seed0" / "best.pth").is_file()


@pytest.mark.parametrize("broken", ["loss", "targets", "optimizer"])
def test_the_learning_check_fails_when_training_is_broken(broken, cache, monkeypatch, tmp_path):
    """Each part is broken in turn: the same check must then fail."""
    if broken == "loss":  # a loss that does not depend on the heatmaps' error
        monkeypatch.setattr(step_module, "joints_mse", lambda out, target, weight: (out * 0).sum() + out.mean() * 0)
    elif broken == "targets":  # heatmaps that say nothing about the joints
        import analysis.ablation.coco_data as cd

        real = cd.gaussian_targets

        def zeros(*a, **k):
            t, w = real(*a, **k)
            return t * 0, w

        monkeypatch.setattr(cd, "gaussian_targets", zeros)
    else:  # an optimiser that never steps
        monkeypatch.setattr(torch.optim.Adam, "step", lambda self, closure=None: None)
    out = tmp_path / "run"
    row = _train(out)
    before = _untrained_pck(out)
    assert not row["PCK@0.1"] >= FACTOR * max(before, 0.01), f"broken {broken}: PCK {row['PCK@0.1']:.3f} vs {before:.3f}"
