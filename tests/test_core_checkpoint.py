"""Checkpoint loading: official layouts, strictness, and hostile files."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

import hrnet_core as hc

TINY = {"family": "pose", "input_size": [64, 64], "width": 4, "modules": [1, 1, 1], "blocks": 1,
        "stage1": {"blocks": 1, "planes": 8}, "head": {"kind": "v1", "outputs": 3}}


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return hc.build_model(hc.load_config(TINY), init="default").eval()


def _fresh():
    return hc.build_model(hc.load_config(TINY)).eval()


@pytest.mark.parametrize("layout", ["plain", "state_dict", "model", "module_prefix", "legacy_tar"])
def test_official_checkpoint_layouts_load_strictly(model, tmp_path: Path, layout: str):
    sd = model.state_dict()
    obj = {
        "plain": sd,
        "state_dict": {"epoch": 3, "state_dict": sd, "perf": 0.7},
        "model": {"model": sd},
        "module_prefix": {f"module.{k}": v for k, v in sd.items()},
        "legacy_tar": {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "best_state_dict": {}},
    }[layout]
    path = tmp_path / ("ck.pth.tar" if layout == "legacy_tar" else "ck.pth")
    torch.save(obj, path, _use_new_zipfile_serialization=layout != "legacy_tar")
    other = _fresh()
    report = hc.load_checkpoint(other, path)
    assert report.loaded == len(sd) and not report.missing and not report.unexpected
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(other(x), model(x))


def test_mismatch_lists_missing_unexpected_and_misshaped(model, tmp_path: Path):
    sd = dict(model.state_dict())
    sd.pop("conv1.weight")
    sd["extra.weight"] = torch.zeros(1)
    sd["final_layer.weight"] = torch.zeros(7, 4, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(hc.CheckpointError) as info:
        hc.load_checkpoint(_fresh(), path)
    msg = str(info.value)
    assert "bad.pth" in msg and "1 missing (conv1.weight)" in msg and "1 unexpected (extra.weight)" in msg
    assert "mis-shaped (final_layer.weight (7, 4, 1, 1) vs (3, 4, 1, 1))" in msg
    report = hc.load_checkpoint(_fresh(), path, strict=False)
    assert "conv1.weight" in report.missing and "extra.weight" in report.unexpected


def test_text_file_is_refused_with_its_name(tmp_path: Path):
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n")
    with pytest.raises(hc.CheckpointError) as info:
        hc.load_checkpoint(_fresh(), path)
    assert "notes.pth" in str(info.value) and "\n" not in str(info.value)


def test_missing_file(tmp_path: Path):
    with pytest.raises(hc.CheckpointError, match="absent.pth"):
        hc.load_checkpoint(_fresh(), tmp_path / "absent.pth")


def test_non_tensor_payload(tmp_path: Path):
    path = tmp_path / "numbers.pth"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(hc.CheckpointError, match="no state_dict"):
        hc.load_checkpoint(_fresh(), path)


class _Payload:
    marker: Path

    def __reduce__(self):
        return (Path.write_text, (self.marker, "payload ran"))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_malicious_pickle_never_runs(tmp_path: Path, writer: str):
    marker = tmp_path / "pwned.txt"
    payload = _Payload()
    payload.marker = marker
    path = tmp_path / "evil.pth"
    if writer == "torch":
        torch.save({"state_dict": {"conv1.weight": payload}}, path)
    else:
        path.write_bytes(pickle.dumps({"conv1.weight": payload}))
    with pytest.raises(hc.CheckpointError) as info:
        hc.load_checkpoint(_fresh(), path)
    assert "evil.pth" in str(info.value)
    assert not marker.exists(), "the pickle payload was executed"
    # control: an unsafe load would indeed run it, so the check above is meaningful
    if writer == "torch":
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert marker.exists()
