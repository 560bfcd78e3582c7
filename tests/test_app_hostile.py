"""Hostile input in the app (AppTest): each an inline error, and the session stays usable afterwards."""

from __future__ import annotations

import gc
import os
import time

import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

import hrnet_core as hc
from app import paths_policy as pp

APP = str(ROOT / "streamlit_app.py")
BOMB = "\n".join(['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'] + [
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]) + "\nwidth: 32\nname: *a8\n"


pytestmark = pytest.mark.usefixtures("app_dirs")  # runs and saved configs in tmp_path


def _errors(at) -> list[str]:
    return [e.value for e in at.error]


def _still_usable(at) -> None:
    at.text_area(key="yaml_text").input("width: 48\nblocks: 4\nfusion: across_stage\n").run()
    assert not at.exception and _errors(at) == []
    assert at.session_state.cfg.num_fusions == 3 and at.session_state.cfg.stages[0].channels == (48, 96)


@pytest.mark.parametrize("text, words", [
    ('width: 32\nname: "hr\\ud800net"\n', "surrogate"),
    (BOMB, "anchors and aliases"),
])
def test_surrogate_name_and_alias_bomb_are_inline_errors(text, words):
    at = AppTest.from_file(APP, default_timeout=180).run()
    before = at.session_state.cfg
    start = time.perf_counter()
    at.text_area(key="yaml_text").input(text).run()
    assert time.perf_counter() - start < 60
    assert not at.exception
    assert any(e.startswith("Invalid config") and words in e for e in _errors(at)), _errors(at)
    assert at.session_state.cfg == before
    _still_usable(at)


def test_path_traversal_is_an_inline_error_and_no_oracle(tmp_path):
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("app/feature_maps.py").run()
    at.selectbox(key="f_ck").set_value("a checkpoint file on this machine…").run()
    shown = []
    for path in ("../../../../etc/shadow", "/proc/self/environ", "/etc/passwd", "/etc/no-such-file"):
        at.text_input(key="f_ck_path").input(path).run()
        assert not at.exception
        errs = _errors(at)
        assert len(errs) == 1, errs
        shown.append(errs[0].replace(path, "<path>"))
    assert "'..' is not allowed" in shown[0]
    assert shown[1] == shown[2] == shown[3]  # an existing and a missing file outside the folders: same words
    at.switch_page("app/build.py").run()
    _still_usable(at)


def test_server_paths_are_limited_to_the_allowed_folders(tmp_path):
    runs = tmp_path / "runs"
    (runs / "r").mkdir(parents=True)
    ck = runs / "r" / "last.pth"
    ck.write_bytes(b"x")
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "w.pth").write_bytes(b"x")
    (runs / "link.pth").symlink_to(other / "w.pth")
    roots = pp.allowed_roots(runs, env={})
    assert pp.server_checkpoint(str(ck), roots) == ck.resolve()
    assert pp.server_checkpoint("r/last.pth", roots) == ck.resolve()
    for bad in (str(other / "w.pth"), str(runs / "link.pth"), f"{runs}/r/../../elsewhere/w.pth", "/proc/self/environ",
                "", "a\x00b"):
        with pytest.raises(hc.CheckpointError):
            pp.server_checkpoint(bad, roots)
    roots = pp.allowed_roots(runs, env={pp.CHECKPOINT_DIRS_ENV: str(other)})
    assert pp.server_checkpoint(str(other / "w.pth"), roots) == (other / "w.pth").resolve()


def test_uploads_end_with_their_session_or_their_age(tmp_path):
    lease = pp.stash_upload(b"weights", ".pth", folder=tmp_path)
    path = lease.path
    assert path.read_bytes() == b"weights" and path.parent == tmp_path
    del lease
    gc.collect()
    assert not path.exists()  # the session (holding the lease) is gone
    old = pp.stash_upload(b"old", ".pth.tar", folder=tmp_path)
    os.utime(old.path, (time.time() - 2 * pp.UPLOAD_MAX_AGE_S,) * 2)
    fresh = pp.stash_upload(b"new", "../../x", folder=tmp_path)
    assert not old.path.exists() and fresh.path.suffix == ".pth" and fresh.path.parent == tmp_path
