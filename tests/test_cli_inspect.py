"""`hrnet-explorer inspect`: output, JSON fields, and exit status 2 with one line for user errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, SHARED

import hrnet_core as hc
from analysis.cli import main

POSE_W32 = ROOT / "configs" / "pose_hrnet_w32_256x192.yaml"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analysis.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_inspect_json_fields(capsys):
    assert main(["inspect", str(POSE_W32), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    cfg = hc.load_config(POSE_W32)
    assert out["family"] == "pose" and out["head"] == "v1"
    assert out["params"] == hc.count_params(cfg)
    assert out["fusions"] == 8 and out["modules"] == 8
    assert out["input_hw"] == [256, 192]
    assert out["output_shapes"] == [[1, 17, 64, 48]]


def test_inspect_fusion_override_and_text(capsys):
    assert main(["inspect", str(POSE_W32), "--fusion", "across_stage"]) == 0
    text = capsys.readouterr().out
    assert "3 of 8 modules fuse (across_stage)" in text and "1/32" in text and "checkpoint: none" in text


def test_inspect_with_checkpoint(tmp_path, capsys):
    fixture = SHARED / "fixtures" / "numeric" / "pose_tiny"
    assert main(["inspect", str(fixture / "config.yaml"), "--checkpoint", str(fixture / "state_dict.pth"),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "strict" in out["checkpoint"] and str(fixture / "state_dict.pth") in out["checkpoint"]


@pytest.mark.parametrize("case", ["missing", "bad_yaml", "invalid", "text_ckpt", "wrong_ckpt"])
def test_user_errors_exit_2_with_one_line(tmp_path, case, capsys):
    cfg = str(POSE_W32)
    extra: list[str] = []
    if case == "missing":
        cfg, needle = str(tmp_path / "nope.yaml"), "nope.yaml"
    elif case == "bad_yaml":
        bad = tmp_path / "bad.yaml"
        bad.write_text("family: pose\nwidth: [32\n")
        cfg, needle = str(bad), "bad.yaml"
    elif case == "invalid":
        bad = tmp_path / "invalid.yaml"
        raw = (SHARED / "official/pose_coco/w32_256x192_adam_lr1e-3.yaml").read_text()
        bad.write_text(raw.replace("NUM_BRANCHES: 3", "NUM_BRANCHES: 4"))
        cfg, needle = str(bad), "STAGE3.NUM_BRANCHES"
    elif case == "text_ckpt":
        ck = tmp_path / "weights.pth"
        ck.write_text("hello")
        extra, needle = ["--checkpoint", str(ck)], "weights.pth"
    else:
        ck = tmp_path / "tiny.pth"
        torch.save(torch.load(SHARED / "fixtures/numeric/pose_tiny/state_dict.pth", weights_only=True), ck)
        extra, needle = ["--checkpoint", str(ck)], "mis-shaped"
    code = main(["inspect", cfg, *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_console_process_exit_status_and_no_traceback(tmp_path):
    ok = _cli("inspect", str(POSE_W32), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["params"] > 0
    bad = _cli("inspect", str(tmp_path / "missing.yaml"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
