"""The model in the page's URL (issue 12): every edit is written to ``st.query_params``, and a new session
opened on that URL (reload, new tab, copied link) restores the model, its name and its origin."""

from __future__ import annotations

import base64
import time
import zlib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.logic import config_edit as ce
from app.logic.url_state import (
    MAX_TEXT_BYTES,
    UrlStateError,
    decode_state,
    encode_state,
    pack,
    unpack,
)
from hrnet_core import dump_config

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")
SEG_W48 = ROOT.parent / "shared" / "official" / "seg" / "seg_hrnet_w48_train_512x1024_sgd_lr1e-2_wd5e-4_bs_12_epoch484.yaml"
TIMEOUT = 180


pytestmark = pytest.mark.usefixtures("app_dirs")  # runs and saved configs in tmp_path


# ---- pure logic ---------------------------------------------------------------------------------------


def test_pack_round_trips_and_an_edit_link_is_compact():
    w32 = ce.load_preset("pose_hrnet_w32_256x192")
    text = dump_config(w32)
    assert unpack(pack(text)) == text
    assert encode_state("pose_hrnet_w32_256x192", w32, w32) == {"preset": "pose_hrnet_w32_256x192"}
    params = encode_state("pose_hrnet_w32_256x192", w32, w32.with_fusion("final_only"))
    assert set(params) == {"preset", "cfg"} and len(params["cfg"]) < 600
    state = decode_state(params)
    assert state.preset == "pose_hrnet_w32_256x192" and ce.parse_yaml(state.cfg_text) == w32.with_fusion("final_only")
    unnamed = encode_state(None, w32, w32, "uploaded file a.yaml")
    assert set(unnamed) == {"origin", "from"} and ce.parse_yaml(decode_state(unnamed).origin_text) == w32


@pytest.mark.parametrize("token, words", [
    ("not base64 at all!!", "not a model link"),
    (base64.urlsafe_b64encode(b"plain bytes, not zlib").decode(), "not a model link"),
    (pack("width: 32\n" * 50)[:-10], "cut short"),
    (pack("width: 32\n" * 50)[:-8], "cut short"),
    (base64.urlsafe_b64encode(zlib.compress(b"a" * (MAX_TEXT_BYTES * 40), 9)).decode(), "unpacks to more than"),
    ("A" * 20_000, "longer than"),
])
def test_hostile_tokens_give_one_line_errors_quickly(token, words):
    start = time.process_time()
    with pytest.raises(UrlStateError, match=words) as err:
        unpack(token, "cfg")
    assert "URL parameter cfg" in str(err.value) and "\n" not in str(err.value)
    assert time.process_time() - start < 1.0


# ---- the app ---------------------------------------------------------------------------------------------


def _reopen(at: AppTest) -> AppTest:
    """A new session on ``at``'s URL: what a reload, a new tab or a copied link gives."""
    fresh = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in at.query_params.items():
        fresh.query_params[key] = value
    return fresh.run()


def test_reload_restores_a_form_edit_its_name_and_origin():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert dict(at.query_params) == {"preset": "pose_hrnet_w32_256x192"}  # the origin alone: no edit
    at.number_input(key="b_width").set_value(48).run()
    at.pills(key="b_fuse_1").unselect("module0").run()
    edited = at.session_state.cfg
    assert "cfg" in at.query_params
    again = _reopen(at)
    assert not again.exception and not again.error, [e.value for e in again.error]
    assert again.session_state.cfg == edited and edited.name == "pose_hrnet_w48_256x192+fuse7"
    assert again.number_input(key="b_width").value == 48
    assert again.pills(key="b_fuse_1").value == ["module1", "module2", "module3"]
    assert again.selectbox(key="b_preset").value == "pose_hrnet_w32_256x192"
    assert again.session_state.base_cfg == ce.load_preset("pose_hrnet_w32_256x192")  # diff base kept
    assert {m.label: m.value for m in again.metric}["Params"] == {m.label: m.value for m in at.metric}["Params"]


def test_reload_restores_a_pasted_official_yaml_and_another_preset():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.text_area(key="yaml_text").input(SEG_W48.read_text()).run()
    again = _reopen(at)
    assert not again.error, [e.value for e in again.error]
    assert again.session_state.cfg == at.session_state.cfg
    assert again.session_state.cfg.name == "seg_hrnet_w48_512x1024"
    assert again.session_state.base_cfg == at.session_state.cfg and "cfg" not in again.query_params

    at.selectbox(key="b_preset").set_value("cls_hrnet_w18_small_v1").run()
    again = _reopen(at)
    assert again.session_state.cfg == ce.load_preset("cls_hrnet_w18_small_v1")
    assert again.selectbox(key="b_preset").value == "cls_hrnet_w18_small_v1"


def test_a_broken_link_names_the_parameter_and_leaves_the_default():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["preset"] = "pose_hrnet_w32_256x192"
    at.query_params["cfg"] = pack("width: [32\n")
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [e.value for e in at.error if e.value.startswith("link: ")] != []
    assert "URL parameter cfg" in at.error[0].value
    assert at.session_state.cfg == ce.load_preset("pose_hrnet_w32_256x192")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["preset"] = "no_such_model"
    at.run()
    assert "no preset or saved config 'no_such_model'" in at.error[0].value
