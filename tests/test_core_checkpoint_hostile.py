"""Hostile checkpoint files: each refused before loading, with a message that says what the file is."""

from __future__ import annotations

import os
import pickle
import time
import zipfile
from pathlib import Path

import pytest
import torch

import hrnet_core as hc
from hrnet_core.checkpoint import NonFiniteWeightsWarning, check_checkpoint_file

TINY = {"family": "pose", "input_size": [64, 64], "width": 4, "modules": [1, 1, 1], "blocks": 1,
        "stage1": {"blocks": 1, "planes": 8}, "head": {"kind": "v1", "outputs": 3}}


def _model():
    return hc.build_model(hc.load_config(TINY))


def _refused(path, words: str, **kw) -> str:
    start = time.process_time()
    with pytest.raises(hc.CheckpointError) as info:
        hc.load_checkpoint(_model(), path, **kw)
    assert time.process_time() - start < 5
    text = str(info.value)
    assert words in text and "\n" not in text and str(path) in text, text
    return text


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_each_kind_of_bad_file_has_its_own_message(tmp_path: Path):
    random_bytes = tmp_path / "random.pth"
    random_bytes.write_bytes(os.urandom(4096))
    text = tmp_path / "text.pth"
    text.write_text("hello, these are not weights\n" * 10)
    evil = tmp_path / "evil.pth"
    torch.save({"w": _Payload()}, evil)
    other_zip = tmp_path / "other.pth"
    with zipfile.ZipFile(other_zip, "w") as zf:
        zf.writestr("readme.txt", "a zip, not a checkpoint")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert "unsafe pickle" not in _refused(random_bytes, "not a checkpoint")
    _refused(text, "not a checkpoint")
    _refused(evil, "unsafe pickle: loading it would run code")
    _refused(other_zip, "not a checkpoint")
    _refused(empty, "is empty")
    _refused(tmp_path, "is a directory")
    _refused(tmp_path / "absent.pth", "no such checkpoint file")
    _refused(Path("/dev/zero"), "not a regular file")


def test_zip_bomb_is_refused_before_inflating(tmp_path: Path):
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({}))
        with zf.open("archive/data/0", "w") as fh:
            chunk = bytes(2**20)
            for _ in range(1024):  # 1 GiB of zeros, about 1 MB on disk
                fh.write(chunk)
    assert bomb.stat().st_size < 5 * 2**20
    _refused(bomb, "zip bomb")
    with pytest.raises(hc.CheckpointError, match="above"):
        check_checkpoint_file(bomb, max_bytes=1024)


def test_real_checkpoints_pass_the_size_checks(tmp_path: Path):
    model = _model()
    path = tmp_path / "ok.pth"
    torch.save(model.state_dict(), path)
    assert check_checkpoint_file(path) == "zip"
    legacy = tmp_path / "legacy.pth"
    torch.save(model.state_dict(), legacy, _use_new_zipfile_serialization=False)
    assert check_checkpoint_file(legacy) == "pickle"
    assert hc.load_checkpoint(_model(), legacy).loaded == len(model.state_dict())


def test_non_finite_weights_need_the_explicit_flag(tmp_path: Path):
    model = _model()
    state = model.state_dict()
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = state[key].clone().fill_(float("nan"))
    path = tmp_path / "nan.pth"
    torch.save(state, path)
    _refused(path, "NaN or infinite")
    with pytest.warns(NonFiniteWeightsWarning, match="NaN or infinite"):
        report = hc.load_checkpoint(_model(), path, allow_nonfinite=True)
    assert report.loaded == len(state)
