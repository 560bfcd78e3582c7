"""Config from a checkpoint alone: every preset round-trips (build -> state_dict -> inferred config), the
CLI infers and dumps it, and a checkpoint of no known HRNet is one line (exit 2)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from conftest import PRESETS, ROOT, SHARED

import hrnet_core as hc
from analysis.cli import main
from hrnet_core.concise_yaml import DEFAULT_INPUT_HW, DEFAULT_UPSAMPLE

OFFICIAL = sorted((SHARED / "official").glob("*/*.yaml"))


def _weights_cannot_tell(cfg: hc.HRNetConfig) -> hc.HRNetConfig:
    """``cfg`` with what no tensor holds (``hc.NOT_IN_WEIGHTS``) set to the family's defaults."""
    return dataclasses.replace(cfg, input_hw=DEFAULT_INPUT_HW[cfg.family], upsample=DEFAULT_UPSAMPLE[cfg.family],
                               description="")


@pytest.mark.parametrize("path", PRESETS + OFFICIAL, ids=lambda p: p.stem)
def test_every_preset_round_trips(path: Path):
    cfg = hc.load_config(path)
    state = hc.build_on_meta(cfg).state_dict()
    assert hc.infer_config(state, name=cfg.name) == _weights_cannot_tell(cfg)


def test_fusion_schedules_and_mmpose_names_are_inferred():
    cfg = hc.load_config(ROOT / "configs" / "ablation_pose_w32_fusion1.yaml").with_fusion(
        [[True], [False, True, False, True], [True, False, True]])
    state = hc.build_on_meta(cfg).state_dict()
    mmpose = {(f"head.{k}" if k.startswith("final_layer") else f"backbone.{k}"): v for k, v in state.items()}
    mapping = hc.detect_mapping(mmpose)
    assert hc.infer_config(mapping.apply(mmpose), name=cfg.name).fusion_schedule == cfg.fusion_schedule


def test_cli_infers_and_dumps_the_config(tmp_path, capsys):
    cfg = hc.load_config(ROOT / "configs" / "seg_hrnetv2_w18_small_v1.yaml")
    path = tmp_path / "seg_small.pth"
    torch.save({"state_dict": hc.build_model(cfg).state_dict()}, path)
    assert main(["inspect", "--checkpoint", str(path), "--dump-config"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# config: inferred") and "input_size" in text.splitlines()[0]
    dumped = hc.load_config_text(text, name="seg_small")
    assert dumped == dataclasses.replace(_weights_cannot_tell(cfg), name="seg_small")
    assert main(["inspect", "--checkpoint", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config_source"] == "inferred" and out["params"] == hc.count_params(cfg)
    assert out["checkpoint_format"].startswith("format: official,") and "strict" in out["checkpoint_format"]


@pytest.mark.parametrize("case", ["resnet_like", "no_head", "uneven_modules", "no_config_no_checkpoint"])
def test_no_known_hrnet_is_one_line(tmp_path, capsys, case):
    state = dict(hc.build_model(hc.load_config(
        {"family": "pose", "input_size": [64, 64], "width": 4, "modules": [1, 2, 1], "blocks": 1,
         "stage1": {"blocks": 1, "planes": 8}, "head": {"kind": "v1", "outputs": 3}})).state_dict())
    if case == "resnet_like":
        state = {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(10, 512)}
    elif case == "no_head":
        state = {k: v for k, v in state.items() if not k.startswith("final_layer")}
    elif case == "uneven_modules":
        state = {k: v for k, v in state.items() if not k.startswith("stage3.1.branches.1.")}
    path = tmp_path / f"{case}.pth"
    torch.save(state, path)
    args = ["inspect"] if case == "no_config_no_checkpoint" else ["inspect", "--checkpoint", str(path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert ("CONFIG" in err) if case == "no_config_no_checkpoint" else (f"{case}.pth: not a known HRNet" in err)
