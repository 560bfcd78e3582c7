"""Run folders under faults: a damaged checkpoint falls back one epoch, a full disk is recorded as a
failed job (no temporary files left, ``report`` still works), and resuming afterwards finishes the run."""

from __future__ import annotations

import errno
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import analysis.ablation.train as train_mod
import hrnet_core as hc
from analysis.ablation.files import read_json, read_jsonl
from analysis.ablation.recipes import load_recipe
from analysis.ablation.runner import AblationRequest, load_request, parse_variants, resolve_base, run_ablation
from analysis.ablation.step import flushing_denormals
from analysis.cli import main

ROOT = Path(__file__).resolve().parents[1]
W32 = ROOT / "configs" / "pose_hrnet_w32_256x192.yaml"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HRNET_EXPLORER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


class SimulatedKill(BaseException):
    """Stands for SIGKILL: not an ``Exception``, so the runner does not record it as a failed job."""


def _request(out: Path, epochs: int = 3) -> AblationRequest:
    recipe = replace(load_recipe("smoke"), epochs=epochs, lr_steps=(epochs,), eval_every=1, cpu_precision="fp32")
    base = resolve_base(hc.load_config(W32), recipe)
    return AblationRequest(out, base, parse_variants("3", base), recipe, "builtin", [0], "cpu", str(W32))


def _killed_after(out: Path, epoch: int) -> Path:
    def kill(job, e):
        if e == epoch:
            raise SimulatedKill

    with pytest.raises(SimulatedKill):
        run_ablation(_request(out), on_epoch_end=kill, log=lambda s: None)
    return out / "across_stage" / "seed0"


def _tear(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_torn_last_checkpoint_resumes_from_the_previous_epoch(tmp_path):
    threads = torch.get_num_threads()
    assert not flushing_denormals()
    folder = _killed_after(tmp_path / "run", 2)
    # Training in this process gave back its processor state even when killed (flush-to-zero would make
    # hypothesis, and any numpy user after it, refuse to run) and its thread count.
    assert not flushing_denormals() and torch.get_num_threads() == threads
    assert torch.load(folder / "prev.pth", weights_only=True)["epoch"] == 1
    assert torch.load(folder / "last.pth", weights_only=True)["epoch"] == 2
    _tear(folder / "last.pth")

    lines, seen = [], []
    result = run_ablation(load_request(tmp_path / "run"), resume=True, log=lines.append,
                          on_epoch_end=lambda job, e: seen.append(e))
    assert result["state"] == "done"
    assert seen == [2, 3]  # epoch 2 is trained again, from epoch 1's checkpoint
    assert any("last.pth not a checkpoint" in s and "resuming from prev.pth (epoch 1)" in s for s in lines), lines
    assert [r["epoch"] for r in read_jsonl(folder / "metrics.jsonl")] == [1, 2, 3]
    assert torch.load(folder / "last.pth", weights_only=True)["epoch"] == 3


def test_no_readable_checkpoint_fails_the_job_in_one_line_that_says_how_to_recover(tmp_path, capsys):
    out = tmp_path / "run"
    folder = _killed_after(out, 2)
    _tear(folder / "last.pth")
    (folder / "prev.pth").write_bytes(b"not a checkpoint at all")

    result = run_ablation(load_request(out), resume=True, log=lambda s: None)
    assert result["state"] == "failed" and result["failed"] == 1
    status = read_json(folder / "status.json")
    assert status["state"] == "failed"
    error = status["error"]
    assert "no readable checkpoint" in error and "delete last.pth and prev.pth" in error and "\n" not in error
    assert str(folder) in error

    # The way out it names works.
    (folder / "last.pth").unlink()
    (folder / "prev.pth").unlink()
    assert run_ablation(load_request(out), resume=True, log=lambda s: None)["state"] == "done"
    assert [r["epoch"] for r in read_jsonl(folder / "metrics.jsonl")] == [1, 2, 3]


def test_a_full_disk_is_a_failed_job_with_its_reason_and_no_temporary_files(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    real_save = torch.save
    calls = {"n": 0}

    def save_until_the_disk_fills(obj, f, *args, **kwargs):
        calls["n"] += 1
        if isinstance(obj, dict) and obj.get("epoch") == 2:
            Path(f).write_bytes(b"PK\x03\x04 half a zip")  # part of the file made it, then the disk was full
            raise OSError(errno.ENOSPC, "No space left on device", str(f))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(train_mod.torch, "save", save_until_the_disk_fills)
    result = run_ablation(_request(out), log=lambda s: None)
    monkeypatch.undo()

    folder = out / "across_stage" / "seed0"
    assert result["state"] == "failed" and result["failed"] == 1
    status = read_json(folder / "status.json")
    assert status["state"] == "failed" and "No space left on device" in status["error"]
    assert "No space left on device" in (folder / "error.txt").read_text()
    assert read_json(out / "status.json")["state"] == "failed"
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert torch.load(folder / "last.pth", weights_only=True)["epoch"] == 1  # the complete epoch is kept

    # `report` works on the partial folder.
    rc = main(["report", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert (out / "report.md").is_file()

    # Space freed: the run resumes after the last complete epoch and finishes.
    result = run_ablation(load_request(out), resume=True, log=lambda s: None)
    assert result["state"] == "done"
    assert [r["epoch"] for r in read_jsonl(folder / "metrics.jsonl")] == [1, 2, 3]
    assert json.loads((folder / "status.json").read_text())["state"] == "done"
