"""Messages (issue 12): an uploaded file is named by its own name; "not a checkpoint" is told apart from
"refused: would run code"; each in full, on one line."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.logic.messages import UploadError, name_upload
from hrnet_core import CheckpointError
from hrnet_core.checkpoint import read_state_dict

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")


def test_name_upload_replaces_stand_ins_with_the_files_own_name():
    err = CheckpointError("/tmp/hrnet-uploads/ab12.pth: not a checkpoint (neither a PyTorch zip archive nor a pickle)")
    named = name_upload(err, {"/tmp/hrnet-uploads/ab12.pth": "my weights.pth"})
    assert isinstance(named, UploadError)
    assert str(named) == "my weights.pth: not a checkpoint (neither a PyTorch zip archive nor a pickle)"
    image = name_upload(CheckpointError("<upload>: unreadable or corrupt image (x)"), {"<upload>": "cat.png"})
    assert str(image).startswith("cat.png: unreadable")
    same = CheckpointError("w.pth: holds no state_dict")
    assert name_upload(same, {"<upload>": "cat.png"}) is same


class _RunsCode:
    def __reduce__(self):
        return (os.getcwd, ())  # harmless, but a global call all the same: weights_only refuses it


@pytest.fixture()
def files(tmp_path, monkeypatch):
    monkeypatch.setenv("HRNET_EXPLORER_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("HRNET_EXPLORER_USER_CONFIGS", str(tmp_path / "configs"))
    monkeypatch.setenv("HRNET_EXPLORER_CHECKPOINT_DIRS", str(tmp_path / "weights"))
    (tmp_path / "weights").mkdir()
    garbage = tmp_path / "weights" / "garbage.pth"
    garbage.write_bytes(b"this is a text file, not weights\n" * 10)
    evil = tmp_path / "weights" / "evil.pth"
    evil.write_bytes(pickle.dumps({"w": _RunsCode()}, protocol=2))
    return garbage, evil


def test_the_loader_tells_not_a_checkpoint_from_would_run_code(files):
    garbage, evil = files
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        read_state_dict(garbage)
    with pytest.raises(CheckpointError, match="would run code") as err:
        read_state_dict(evil)
    assert "not a checkpoint" not in str(err.value) and "refused" in str(err.value)


def test_feature_maps_page_shows_each_in_full_on_one_line(files):
    garbage, evil = files
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("app/feature_maps.py").run()
    at.selectbox(key="f_ck").set_value("a checkpoint file on this machine…").run()
    shown = {}
    for path in (garbage, evil):
        at.text_input(key="f_ck_path").input(str(path)).run()
        assert not at.exception
        errs = [e.value for e in at.error]
        assert len(errs) == 1 and "\n" not in errs[0], errs
        shown[path.name] = errs[0]
    assert "garbage.pth: not a checkpoint" in shown["garbage.pth"] and "run code" not in shown["garbage.pth"]
    assert "evil.pth: unsafe pickle: loading it would run code" in shown["evil.pth"]
    assert "refused" in shown["evil.pth"] and "not a checkpoint" not in shown["evil.pth"]
    assert not any(s.endswith(("…", "...")) or "Re-running" in s for s in shown.values())  # not cut, not torch's text
