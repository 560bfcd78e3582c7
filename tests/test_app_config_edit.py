"""The Build page's pure logic: form values <-> config, YAML diff, saving without losing anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from analysis import settings
from app.logic import config_edit as ce
from hrnet_core import ConfigError, UserInputError, dump_config, load_config, load_config_text

OFFICIAL = Path(__file__).resolve().parents[1].parent / "shared" / "official"


@pytest.fixture()
def w32():
    return ce.load_preset("pose_hrnet_w32_256x192")


@pytest.mark.parametrize("name", sorted(ce.list_presets()))
def test_form_round_trip_every_preset(name):
    cfg = ce.load_preset(name)
    assert ce.config_from_form(cfg, ce.form_values(cfg)) == cfg


def test_form_edits_apply(w32):
    v = ce.form_values(w32)
    v["fusion"][1] = [False, True, False, True]
    v["modules"][2] = 4  # one more stage-4 module: it fuses by default
    v["blocks"][0][1] = 2
    v["head_outputs"] = 16
    v["input_h"], v["input_w"] = 384, 288
    cfg = ce.config_from_form(w32, v)
    assert cfg.stages[1].fuse == (False, True, False, True)
    assert cfg.stages[2].modules == 4 and cfg.stages[2].fuse == (True,) * 4
    assert cfg.stages[0].blocks == (4, 2)
    assert cfg.head.outputs == 16 and cfg.input_hw == (384, 288)
    assert cfg.num_fusions == 1 + 2 + 4


def test_head_kind_switch_into_and_out_of_higherhrnet(w32):
    v = ce.form_values(w32)
    v["head_kind"] = "higher"
    higher = ce.config_from_form(w32, v)
    # the released HigherHRNet-W32 head: what the preset (the official experiment) has
    assert higher.head == ce.load_preset("higherhrnet_w32_512").head
    back = ce.config_from_form(higher, ce.form_values(higher) | {"head_kind": "v1"})
    assert back == w32 and load_config_text(dump_config(back)) == back


def test_width_change_rederives_channels(w32):
    v = ce.form_values(w32)
    v["width"] = 48
    v["channels"][2][3] = 999  # ignored: a width change sets every branch to width * 2**k
    cfg = ce.config_from_form(w32, v)
    assert [list(s.channels) for s in cfg.stages] == [[48, 96], [48, 96, 192], [48, 96, 192, 384]]
    assert cfg.stages == ce.load_preset("pose_hrnet_w48_256x192").stages


def test_per_branch_channels_kept_when_width_unchanged(w32):
    v = ce.form_values(w32)
    v["channels"][1][2] = 100
    assert ce.config_from_form(w32, v).stages[1].channels == (32, 64, 100)


@pytest.mark.parametrize(("key", "value", "field"), [
    ("width", 0, "width"),
    ("head_outputs", -1, "head.outputs"),
    ("input_h", 250, "input_size"),
    ("input_w", "abc", "input_size.W"),
    ("head_kind", "cls", "head.kind"),
])
def test_form_errors_name_the_field(w32, key, value, field):
    v = ce.form_values(w32)
    v[key] = value
    with pytest.raises(ConfigError) as info:
        ce.config_from_form(w32, v)
    assert info.value.field == field and field in str(info.value)


def test_nested_form_error_names_stage_and_branch(w32):
    v = ce.form_values(w32)
    v["blocks"][2][3] = 0
    with pytest.raises(ConfigError, match=r"stages\[2\]\.blocks\[3\]"):
        ce.config_from_form(w32, v)


def test_resize_fusion():
    assert ce.resize_fusion([True, False, True], 2) == [True, False]
    assert ce.resize_fusion([False], 3) == [False, True, True]


def test_official_yaml_parses_like_its_preset():
    text = (OFFICIAL / "pose_coco" / "w32_256x192_adam_lr1e-3.yaml").read_text()
    cfg = ce.parse_yaml(text, name="w32")
    preset = ce.load_preset("pose_hrnet_w32_256x192")
    assert ce.yaml_diff(preset, cfg).count("\n+") <= 2  # at most the name differs
    assert cfg.stages == preset.stages and cfg.head == preset.head


def test_invalid_yaml_names_position():
    with pytest.raises(ConfigError, match=r"YAML: invalid YAML at line \d+, column \d+"):
        ce.parse_yaml("width: 32\nmodules: [1, 4\nblocks: 4\n")


def test_yaml_diff(w32):
    assert ce.yaml_diff(w32, w32) == ""
    diff = ce.yaml_diff(w32, w32.with_fusion("final_only"))
    assert "-fusion: all" in diff and "+fusion: final_only" in diff


def test_config_hash_tracks_content(w32):
    assert ce.config_hash(w32) == ce.config_hash(load_config(ce.list_presets()["pose_hrnet_w32_256x192"]))
    assert len(ce.config_hash(w32)) == 16
    assert ce.config_hash(w32) != ce.config_hash(w32.with_fusion("across_stage"))
    assert ce.config_hash(w32) != ce.config_hash(w32.with_input((384, 288)))


def test_save_never_overwrites_or_loses(tmp_path, w32):
    text = dump_config(w32)
    path = ce.save_config(text, "mine", tmp_path)
    assert path == tmp_path / "mine.yaml" and load_config(path) == w32
    with pytest.raises(UserInputError, match="already exists"):
        ce.save_config(dump_config(w32.with_fusion("none")), "mine", tmp_path)
    assert load_config(path) == w32  # untouched
    ce.save_config(dump_config(w32.with_fusion("none")), "mine", tmp_path, overwrite=True)
    assert load_config(path).num_fusions == 0
    history = list((tmp_path / ".history").glob("mine-*.yaml"))
    assert len(history) == 1 and load_config(history[0]) == w32  # the old version is kept
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert ce.list_saved(tmp_path) == {"mine": path}


def test_save_refuses_invalid_presets_and_bad_names(tmp_path, w32):
    with pytest.raises(ConfigError):
        ce.save_config("width: [", "broken", tmp_path)
    with pytest.raises(UserInputError, match="preset"):
        ce.save_config(dump_config(w32), "pose_hrnet_w32_256x192", tmp_path)
    with pytest.raises(UserInputError, match="presets"):
        ce.save_config(dump_config(w32), "other", ce.PRESET_DIR)
    with pytest.raises(UserInputError, match="name"):
        ce.save_config(dump_config(w32), "../escape", tmp_path)
    assert not list(tmp_path.iterdir())


def test_user_config_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.USER_CONFIGS_ENV, str(tmp_path / "cfgs"))
    assert settings.user_config_dir() == tmp_path / "cfgs"
    assert ce.list_saved() == {}
