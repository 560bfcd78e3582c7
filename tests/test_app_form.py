"""The Build form's completeness (issue 12): stem, stage 1, block type per stage, upsampling mode and
align_corners; head outputs hidden where the head has none; every error fresh, naming its field."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analysis.complexity import analyze
from app.logic import config_edit as ce
from app.logic.form_extra import apply_extra, extra_values, head_uses_outputs
from hrnet_core import ConfigError

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")


pytestmark = pytest.mark.usefixtures("app_dirs")  # runs and saved configs in tmp_path


def test_apply_extra_round_trips_and_names_fields():
    w32 = ce.load_preset("pose_hrnet_w32_256x192")
    assert apply_extra(w32, extra_values(w32)) == w32
    cfg = apply_extra(w32, {"stem_channels": 32, "stage1_block": "BASIC", "stage1_blocks": 2, "stage1_planes": 48,
                            "stage_block": ["BOTTLENECK", "BASIC", "BASIC"], "upsample_mode": "bilinear",
                            "align_corners": True})
    assert cfg.stem.channels == 32 and (cfg.stage1.block, cfg.stage1.blocks, cfg.stage1.planes) == ("BASIC", 2, 48)
    assert cfg.stages[0].block == "BOTTLENECK" and cfg.upsample.align_corners
    assert apply_extra(w32, {"upsample_mode": "nearest", "align_corners": True}).upsample.align_corners is False
    with pytest.raises(ConfigError, match="stage1.blocks"):
        apply_extra(w32, {"stage1_blocks": 0})
    with pytest.raises(ConfigError, match="stage1.block"):
        apply_extra(w32, {"stage1_block": "RESNEXT"})
    assert not head_uses_outputs(ce.load_preset("det_hrnetv2p_w32"))
    assert head_uses_outputs(w32) and head_uses_outputs(ce.load_preset("seg_hrnetv2_w48"))


def _start() -> AppTest:
    return AppTest.from_file(APP, default_timeout=180).run()


def _params(at: AppTest) -> str:
    return {m.label: m.value for m in at.metric}["Params"]


def test_stem_stage1_block_and_upsampling_controls_change_the_model():
    at = _start()
    at.number_input(key="b_stem").set_value(32).run()
    assert not at.error and at.session_state.cfg.stem.channels == 32
    assert at.session_state.cfg.name == "pose_hrnet_w32_256x192+stem32"
    at.number_input(key="b_s1_blocks").set_value(2).run()
    at.selectbox(key="b_s1_block").set_value("BASIC").run()
    cfg = at.session_state.cfg
    assert (cfg.stage1.block, cfg.stage1.blocks) == ("BASIC", 2)
    assert _params(at) == f"{analyze(cfg).params / 1e6:.2f}M"
    at.selectbox(key="b_unit_2").set_value("BOTTLENECK").run()
    assert at.session_state.cfg.stages[2].block == "BOTTLENECK" and not at.error
    assert not [w for w in at.checkbox if w.key == "b_align"]  # nearest: align_corners does not apply
    at.selectbox(key="b_up_mode").set_value("bilinear").run()
    assert at.session_state.cfg.upsample.mode == "bilinear"
    at.checkbox(key="b_align").check().run()
    assert at.session_state.cfg.upsample.align_corners is True and not at.error


def test_v2p_head_hides_outputs_and_errors_do_not_go_stale():
    at = _start()
    from streamlit.proto.NumberInput_pb2 import NumberInput

    ints = [w for w in at.number_input if w.key and w.key.startswith("b_")]
    assert ints and all(w.proto.data_type == NumberInput.INT for w in ints)  # counts show as 4, not 4.00
    at.selectbox(key="b_preset").set_value("det_hrnetv2p_w32").run()
    assert not [w for w in at.number_input if w.key == "b_head_out"]
    assert any("feature pyramid" in c.value for c in at.caption)
    at.number_input(key="b_width").set_value(8000).run()
    first = [e.value for e in at.error]
    assert first and first[0].startswith("Width (branch 1 channels) = 8000: ")
    at.number_input(key="b_width").set_value(0).run()
    now = [e.value for e in at.error]
    assert len(now) == 1 and "width: must be a positive integer, got 0" in now[0] and now != first
    at.number_input(key="b_width").set_value(-5).run()  # what was typed, not a clamped 0
    assert [e.value for e in at.error] == ["Width (branch 1 channels) = -5: width: must be a positive integer, got -5"]
    at.number_input(key="b_width").set_value(32).run()
    assert not at.error  # a valid value clears it
