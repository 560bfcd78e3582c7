"""Every page of the Streamlit app through Streamlit's AppTest (no browser): the default path, invalid
input (error shown, last valid model kept), the comparison view, saving configs."""

from __future__ import annotations

import shutil

import pytest
from conftest import ROOT, diagrams
from streamlit.testing.v1 import AppTest

from analysis.complexity import analyze
from app.logic.compare import changed_mask, compare_totals
from app.logic.config_edit import load_preset
from hrnet_core import load_config

APP = str(ROOT / "streamlit_app.py")
OFFICIAL_W48 = ROOT.parent / "shared" / "official" / "pose_coco" / "w48_384x288_adam_lr1e-3.yaml"
TIMEOUT = 180


def shown_params(cfg) -> str:
    """The page's params metric for ``cfg``, derived from the analysis (not hard-coded)."""
    return f"{analyze(cfg).params / 1e6:.2f}M"


pytestmark = pytest.mark.usefixtures("app_dirs")  # runs and saved configs in tmp_path


def start(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if page:
        at.switch_page(page).run()
    return at


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def no_failure(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert errors(at) == []


# ---- Build -----------------------------------------------------------------------------------------


def test_default_is_pose_w32_with_numbers_and_diagram():
    at = start()
    no_failure(at)
    assert at.title[0].value == "Build"
    assert at.selectbox(key="b_preset").value == "pose_hrnet_w32_256x192"
    assert at.session_state.cfg == load_preset("pose_hrnet_w32_256x192")
    m = metrics(at)
    w32 = load_preset("pose_hrnet_w32_256x192")
    assert m["Params"] == shown_params(w32) and m["GFLOPs (paper)"] == f"{analyze(w32).gflops_paper:.2f}"
    assert m["Output"] == "1x17x64x48"
    drawn = diagrams(at)
    assert len(drawn) == 1 and "stage 4" in drawn[0]
    if shutil.which("dot"):  # laid out by the server: the browser gets an SVG image, not a graph to lay out
        assert drawn[0].lstrip().startswith("<?xml") and "<svg" in drawn[0] and not at.get("graphviz_chart")
    assert "width: 32" in at.text_area(key="yaml_text").value


def test_invalid_yaml_shows_error_and_keeps_last_valid_model():
    at = start()
    at.text_area(key="yaml_text").input("width: [32\nmodules: 3\n").run()
    assert not at.exception
    assert any(e.startswith("Invalid config") and "invalid YAML at line" in e for e in errors(at)), errors(at)
    assert "last valid model" in at.warning[0].value
    assert at.session_state.cfg == load_preset("pose_hrnet_w32_256x192")
    assert metrics(at)["Params"] == shown_params(load_preset("pose_hrnet_w32_256x192"))
    assert len(diagrams(at)) == 1  # the diagram of the last valid model stays

    at.text_area(key="yaml_text").input("width: 32\nblocks: 4\nhead: {kind: v1, outputs: 0}\n").run()
    assert any("head.outputs" in e for e in errors(at)), errors(at)  # the field is named
    assert at.session_state.cfg == load_preset("pose_hrnet_w32_256x192")

    at.text_area(key="yaml_text").input("width: 48\nblocks: 4\nfusion: across_stage\n").run()
    no_failure(at)
    assert at.session_state.cfg.num_fusions == 3
    assert at.number_input(key="b_width").value == 48  # the form follows the YAML
    assert metrics(at)["Fusions"] == "3 of 8"


def test_official_experiment_yaml_is_accepted():
    at = start()
    at.text_area(key="yaml_text").input(OFFICIAL_W48.read_text()).run()
    no_failure(at)
    cfg = at.session_state.cfg
    assert cfg.input_hw == (384, 288) and cfg.stages[0].channels == (48, 96)
    assert metrics(at)["Params"] == shown_params(load_config(OFFICIAL_W48))


def test_form_edits_fusion_grid_and_field_errors():
    at = start()
    at.pills(key="b_fuse_1").unselect("module0").run()  # stage 3, its first module (stage3.module0) stops fusing
    no_failure(at)
    assert at.session_state.cfg.num_fusions == 7
    assert "- [false, true, true, true]" in at.text_area(key="yaml_text").value
    diff = at.code[0].value
    assert "-fusion: all" in diff and "+- [false, true, true, true]" in diff

    at.button(key="b_fp_final_only").click().run()
    assert at.session_state.cfg.num_fusions == 1
    assert at.pills(key="b_fuse_2").value == ["module2"] and at.pills(key="b_fuse_1").value == []

    at.number_input(key="b_mod_1").set_value(2).run()
    assert at.session_state.cfg.stages[1].modules == 2
    assert at.pills(key="b_fuse_1").options == ["module0", "module1"] and at.pills(key="b_fuse_1").value == []
    at.pills(key="b_fuse_1").select("module0").run()  # the new module count: module0 fuses again, module1 not
    assert at.session_state.cfg.stages[1].fuse == (True, False)

    before = at.session_state.cfg
    at.number_input(key="b_in_h").set_value(250).run()
    assert [e for e in errors(at) if e.startswith("Input height = 250: input_size")], errors(at)  # beside the field
    assert at.session_state.cfg == before


def test_preset_switch_and_save(tmp_path):
    at = start()
    at.selectbox(key="b_preset").set_value("cls_hrnet_w18_small_v1").run()
    no_failure(at)
    assert at.session_state.cfg.family == "cls"
    assert metrics(at)["Params"] == "13.19M"  # model zoo: 13.2M

    at.text_input(key="b_save_name").input("my_small").run()
    at.button(key="b_save").click().run()
    saved = tmp_path / "configs" / "my_small.yaml"
    assert saved.is_file() and load_config(saved) == at.session_state.cfg
    assert "saved: my_small" in at.selectbox(key="b_preset").options
    assert at.session_state.cfg.name == "my_small"  # the model takes the name it was saved under
    written = saved.read_bytes()

    at.button(key="b_save").click().run()  # the same name again: refused, the file kept
    assert any("already exists" in e for e in errors(at)), errors(at)
    assert saved.read_bytes() == written and load_config(saved).name == "my_small"


# ---- other pages ---------------------------------------------------------------------------------------


def test_architecture_levels():
    at = start("app/architecture.py")
    no_failure(at)
    stage_dot = at.get("graphviz_chart")[0].proto.spec
    at.radio(key="a_level").set_value("module").run()
    no_failure(at)
    module_dot = at.get("graphviz_chart")[0].proto.spec
    assert module_dot != stage_dot and module_dot.count("->") > stage_dot.count("->")
    at.radio(key="a_level").set_value("block").run()
    at.selectbox(key="a_module").set_value("stage3.module1").run()
    at.radio(key="a_annotate").set_value("gflops").run()
    no_failure(at)
    assert "stage3" in at.get("graphviz_chart")[0].proto.spec
    assert {b.label for b in at.get("download_button")} >= {"Download SVG", "Download PNG", "Download DOT"}


def test_complexity_totals_and_charts():
    at = start("app/complexity.py")
    no_failure(at)
    m = metrics(at)
    w32 = load_preset("pose_hrnet_w32_256x192")
    assert m["Params"] == shown_params(w32) and m["GFLOPs · paper"] == f"{analyze(w32).gflops_paper:.3f}"
    assert len(at.get("plotly_chart")) >= 3  # by stage, branch, component (+ comparison)
    assert any("aten::add" in c.value for c in at.caption)  # fvcore's uncounted operators are reported


def _totals_table(at: AppTest):
    for df in at.dataframe:
        if list(df.value.columns) == ["A", "B", "Δ", "Δ %"]:
            return df.value
    raise AssertionError("no comparison table")


def test_complexity_comparison_highlights_differences():
    at = start("app/complexity.py")
    totals = _totals_table(at)  # default B: the current config with only the final fusion
    assert totals.loc["fusing modules", "A"] == 8 and totals.loc["fusing modules", "B"] == 1
    assert totals.loc["params", "Δ"] < 0 and totals.loc["GFLOPs (paper, conv+linear MACs / 2^30)", "Δ"] < 0
    assert totals.loc["modules", "Δ"] == 0

    at.selectbox(key="c_compare").set_value("pose_hrnet_w48_256x192").run()
    no_failure(at)
    totals = _totals_table(at)
    w48 = analyze(load_preset("pose_hrnet_w48_256x192"))
    assert totals.loc["params", "B"] == w48.params
    assert totals.loc["GFLOPs (paper, conv+linear MACs / 2^30)", "B"] == pytest.approx(w48.gflops_paper)

    at.selectbox(key="c_compare").set_value("current, fusion: all").run()
    assert (_totals_table(at)["Δ"] == 0).all()


def test_changed_mask_marks_only_differences():
    a = load_preset("pose_hrnet_w32_256x192")
    from analysis.complexity import analyze

    b = a.with_fusion("final_only")
    df = compare_totals(analyze(a), analyze(b), a, b, "A", "B")
    mask = changed_mask(df, ["A", "B"])
    assert mask.loc["params"].all() and mask.loc["fusing modules"].all()
    assert not mask.loc["modules"].any()
    # Memory in MiB, the app's one unit for it (not a count of elements).
    from analysis.complexity import activation_memory_mib
    from app.logic.compare import ACTIVATIONS_ROW

    assert df.loc[ACTIVATIONS_ROW, "A"] == pytest.approx(activation_memory_mib(analyze(a)))
    assert df.loc[ACTIVATIONS_ROW, "A"] == pytest.approx(analyze(a).activations * 4 / 2**20)


def test_feature_maps_default_astronaut():
    at = start("app/feature_maps.py")
    no_failure(at)
    assert at.selectbox(key="f_image").value == "astronaut"
    caption = next(c.value for c in at.caption if c.value.startswith("Device:"))
    import torch

    assert ("cuda" if torch.cuda.is_available() else "cpu") in caption  # CUDA by default when present
    assert len(at.get("image")) >= 6  # input, head, module panels, overlays
    stats = next(df.value for df in at.dataframe if "sparsity" in df.value.columns)
    assert set(stats["resolution"]) == {"1/4", "1/8", "1/16", "1/32"}
    import json

    axes = {json.loads(c.proto.spec)["layout"]["title"]["text"].split(" per ")[0]: json.loads(c.proto.spec)["layout"]
            ["yaxis"] for c in at.get("plotly_chart")}
    # the log axis is labelled at its decades only, and both axes carry their unit
    assert axes["energy"]["type"] == "log" and axes["energy"]["dtick"] == 1
    assert axes["energy"]["title"]["text"] == "energy (mean L2 per position)"
    assert axes["sparsity"]["title"]["text"] == "sparsity (fraction of zeros)"


def test_feature_maps_bad_checkpoint_path_is_an_inline_error():
    at = start("app/feature_maps.py")
    at.selectbox(key="f_ck").set_value("a checkpoint file on this machine…").run()
    at.text_input(key="f_ck_path").input("/nonexistent/w32.pth").run()
    assert not at.exception
    assert any("/nonexistent/w32.pth" in e and "no such" in e for e in errors(at)), errors(at)


def test_system_page():
    at = start("app/system.py")
    no_failure(at)
    assert metrics(at)["Device in use"] in ("cpu",) or metrics(at)["Device in use"].startswith("cuda (")
    items = next(df.value for df in at.dataframe if "item" in df.value.columns)
    assert {"torch", "CUDA (torch build)", "CUDA available"} <= set(items["item"])


def test_complexity_profile_on_demand():
    at = start()
    tiny = "width: 8\nmodules: [1, 1, 1]\nblocks: 1\nstage1: {blocks: 1, planes: 16}\ninput_size: [64, 64]\n"
    at.text_area(key="yaml_text").input(tiny).run()
    no_failure(at)
    at.switch_page("app/complexity.py").run()
    at.button(key="c_prof_run").click().run()
    no_failure(at)
    import torch

    expected = "cuda (" if torch.cuda.is_available() else "cpu"  # the GPU by default when there is one
    assert metrics(at)["Device"].startswith(expected)
    assert metrics(at)["Forward, batch 1"].endswith(" ms")
    profile = next(df.value for df in at.dataframe if "median_ms" in df.value.columns)
    assert {"stem", "total"} <= set(profile["part"]) and (profile["median_ms"] > 0).all()


def test_higherhrnet_preset_on_every_page():
    """A HigherHRNet preset (two predictions, a transposed conv) through Build, Architecture (every level),
    Complexity and Feature maps."""
    name = "higherhrnet_w32_512"
    cfg = load_preset(name)
    at = start()
    at.selectbox(key="b_preset").set_value(name).run()
    no_failure(at)
    assert at.session_state.cfg == cfg
    m = metrics(at)
    assert m["Params"] == shown_params(cfg) and m["GFLOPs (paper)"] == f"{analyze(cfg).gflops_paper:.2f}"
    assert m["Output"] == "1x34x128x128, 1x17x256x256"
    assert "kind: higher" in at.text_area(key="yaml_text").value
    at.switch_page("app/architecture.py").run()
    no_failure(at)
    assert "deconv_layers.0" in at.get("graphviz_chart")[0].proto.spec
    for level in ("module", "block"):
        at.radio(key="a_level").set_value(level).run()
        no_failure(at)
    at.switch_page("app/complexity.py").run()
    no_failure(at)
    assert metrics(at)["Params"] == shown_params(cfg)
    at.switch_page("app/feature_maps.py").run()
    no_failure(at)
    assert any("higher" in md.value and "1x17x256x256" in md.value for md in at.markdown)
    assert len(at.get("image")) >= 6
