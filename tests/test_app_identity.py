"""The model's identity follows the edit (issue 12): form edits derive a name from the origin, a pasted or
uploaded official YAML takes its own name and family, and downloads, saves and the diff base follow."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analysis.complexity import analyze
from app.logic import config_edit as ce
from app.logic.identity import derived_name, text_identity
from hrnet_core import load_config

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")
OFFICIAL = ROOT.parent / "shared" / "official"
SEG_W48 = OFFICIAL / "seg" / "seg_hrnet_w48_train_512x1024_sgd_lr1e-2_wd5e-4_bs_12_epoch484.yaml"
TIMEOUT = 180


pytestmark = pytest.mark.usefixtures("app_dirs")  # runs and saved configs in tmp_path


def _w32():
    return ce.load_preset("pose_hrnet_w32_256x192")


def _edit(cfg, **values):
    form = ce.form_values(cfg)
    form.update(values)
    return ce.config_from_form(cfg, form)


# ---- pure logic ---------------------------------------------------------------------------------------


def test_derived_name_rewrites_spelled_tokens_and_appends_the_rest():
    w32 = _w32()
    assert derived_name(w32, w32) == "pose_hrnet_w32_256x192"
    wide = _edit(w32, width=48)
    assert derived_name(w32, wide) == "pose_hrnet_w48_256x192"
    # W32 with width 48 is the zoo's W48 model, which now carries its name
    assert replace(wide, name="pose_hrnet_w48_256x192") == ce.load_preset("pose_hrnet_w48_256x192")
    assert derived_name(w32, _edit(w32, input_h=384, input_w=288)) == "pose_hrnet_w32_384x288"
    assert derived_name(w32, w32.with_fusion("final_only")) == "pose_hrnet_w32_256x192+final_only"
    assert derived_name(w32, _edit(w32, head_outputs=16, width=40)) == "pose_hrnet_w40_256x192+out16"
    det = ce.load_preset("det_hrnetv2p_w32")
    assert derived_name(det, _edit(det, head_kind="v2")) == "det_hrnetv2p_w32+head_v2"
    higher = ce.load_preset("higherhrnet_w32_512")
    assert derived_name(higher, higher.with_input((640, 640))) == "higherhrnet_w32_640"
    seg = ce.load_preset("seg_hrnetv2_w18_small_v1")  # no 'wNN_HxW' token for the input: appended
    assert derived_name(seg, seg.with_input((512, 512))).endswith("+512x512")


def test_text_identity_official_pasted_uploaded_and_project_schema():
    text = SEG_W48.read_text()
    cfg = ce.parse_yaml(text, name="stale_name")
    who = text_identity(text, "YAML", cfg)
    assert who.official and who.name == "seg_hrnet_w48_512x1024" and cfg.family == "seg"
    assert text_identity(text, "YAML", cfg, file_name=SEG_W48.name).name == SEG_W48.stem
    project = ce.dump_config(_w32())
    assert text_identity(project, "YAML", ce.parse_yaml(project)).name == "pose_hrnet_w32_256x192"
    unnamed = "\n".join(line for line in project.splitlines() if not line.startswith("name:"))
    assert text_identity(unnamed, "YAML", ce.parse_yaml(unnamed)).name is None


# ---- the Build page ------------------------------------------------------------------------------------


def _start() -> AppTest:
    return AppTest.from_file(APP, default_timeout=TIMEOUT).run()


def _caption_names(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown)


def test_width_edit_renames_the_model_its_download_and_save_name():
    at = _start()
    at.number_input(key="b_width").set_value(48).run()
    assert not at.exception and not at.error
    cfg = at.session_state.cfg
    assert cfg.name == "pose_hrnet_w48_256x192" and "w32" not in cfg.name
    assert {m.label: m.value for m in at.metric}["Params"] == f"{analyze(cfg).params / 1e6:.2f}M" == "63.60M"
    assert "**pose_hrnet_w48_256x192**" in _caption_names(at)
    assert "name: pose_hrnet_w48_256x192" in at.text_area(key="yaml_text").value
    assert at.text_input(key="b_save_name").value == "pose_hrnet_w48_256x192"
    at.button(key="b_fp_final_only").click().run()
    assert at.session_state.cfg.name == "pose_hrnet_w48_256x192+final_only"
    at.number_input(key="b_width").set_value(32).run()
    at.button(key="b_fp_all").click().run()
    assert at.session_state.cfg == _w32()  # back to the origin: its own name again


def test_pasted_official_seg_yaml_takes_its_own_name_family_and_diff_base():
    at = _start()
    at.text_area(key="yaml_text").input(SEG_W48.read_text()).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    cfg = at.session_state.cfg
    assert cfg.name == "seg_hrnet_w48_512x1024" and cfg.family == "seg"
    caption = _caption_names(at)
    assert "**seg_hrnet_w48_512x1024** · seg" in caption and "pose_hrnet_w32" not in caption
    assert at.session_state.base_cfg == cfg  # the diff compares against the pasted file, not the pose preset
    picker = at.selectbox(key="b_preset")  # no preset is picked: the placeholder names the pasted origin
    assert picker.value is None and "seg_hrnet_w48_512x1024" in picker.placeholder
    at.switch_page("app/architecture.py").run()
    at.switch_page("app/build.py").run()
    assert at.selectbox(key="b_preset").value is None and at.session_state.cfg == cfg
    assert "(no difference)" in [c.value for c in at.caption] and not at.code
    at.number_input(key="b_head_out").set_value(21).run()
    assert at.session_state.cfg.name == "seg_hrnet_w48_512x1024+out21"
    diff = next(c.value for c in at.code if c.language == "diff")
    assert "--- seg_hrnet_w48_512x1024" in diff and "+++ seg_hrnet_w48_512x1024+out21" in diff
    at.selectbox(key="b_preset").set_value("pose_hrnet_w32_256x192").run()  # a preset again from the placeholder
    assert at.session_state.cfg == _w32() and at.selectbox(key="b_preset").value == "pose_hrnet_w32_256x192"


def test_save_renames_the_model_and_it_stays_picked(tmp_path):
    at = _start()
    text = SEG_W48.read_text()
    at.text_area(key="yaml_text").input(text).run()
    at.session_state["b_save_name"] = "my_seg"
    at.button(key="b_save").click().run()
    assert not at.error, [e.value for e in at.error]
    saved = tmp_path / "configs" / "my_seg.yaml"
    assert load_config(saved).name == "my_seg" == at.session_state.cfg.name
    assert at.selectbox(key="b_preset").value == "saved: my_seg"
    assert at.session_state.base_name == "saved: my_seg"
    at.switch_page("app/architecture.py").run()
    at.switch_page("app/build.py").run()
    assert at.session_state.cfg.name == "my_seg" and at.selectbox(key="b_preset").value == "saved: my_seg"
