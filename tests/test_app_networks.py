"""Every app page takes every network (Lite-HRNet, HRFormer: ``hrnet_core.networks``), through Streamlit's AppTest.

For every preset in ``configs/networks/`` (globbed, so a new preset is picked up): the Build page loads it with the
numbers the library computes (``analyze_network``, computed here), its knob form edits the model through the
network's own parser, a bad value is one error line naming the field and the value typed, and every other page
loads with it without an exception. Also: the YAML editor takes a network's YAML and an mmpose ``.py`` config's
text, and the form's pure logic (``app.logic.network_form``) round-trips every preset.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import yaml
from conftest import NETWORK_PRESETS, ROOT, SHARED, diagrams
from streamlit.testing.v1 import AppTest

from analysis.complexity.network_counts import analyze_network
from app.logic import config_edit as ce
from app.logic import network_form as nf
from app.logic.networks import unavailable
from hrnet_core import ConfigError, dump_config, load_config, load_config_text

APP = str(ROOT / "streamlit_app.py")
TIMEOUT = 180
MMPOSE = SHARED / "official" / "mmpose"
PAGES = {"app/architecture.py": "Architecture", "app/complexity.py": "Complexity",
         "app/feature_maps.py": "Feature maps", "app/ablation.py": "Ablation", "app/system.py": "System"}
# The feature of a page that may not take a network yet (one line then), and what the page shows where it does.
PAGE_FEATURES = {"app/architecture.py": ("diagram", "graphviz_chart"), "app/feature_maps.py": ("feature maps", "image"),
                 "app/complexity.py": ("latency profile", "button")}

pytestmark = pytest.mark.usefixtures("app_dirs")  # runs and saved configs in tmp_path


def _start(preset: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.selectbox(key="b_preset").set_value(preset).run()
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _exact_params(at: AppTest) -> int:
    """The Params metric's exact count (its help text, ``1,130,769``)."""
    (metric,) = [m for m in at.metric if m.label == "Params"]
    return int(metric.proto.help.replace(",", ""))


def _no_failure(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == []


def _edited(cfg, key: str | None = None, value=None, **entries):
    """``cfg`` with backbone entry ``key`` set to ``value`` (and each of ``entries``, ``__`` for ``.``), by the
    library alone (``spec.dump`` / ``spec.parse``); ``ConfigError`` where the network refuses it."""
    mapping = copy.deepcopy(cfg.spec.dump(cfg.backbone))
    mapping.pop("type")
    changes = {k.replace("__", "."): v for k, v in entries.items()} | ({key: value} if key else {})
    for dotted, v in changes.items():
        *parents, last = dotted.split(".")
        node = mapping
        for part in parents:
            node = node[part]
        node[last] = v
    return replace(cfg, backbone=cfg.spec.parse(mapping, "backbone"))


def _scaled(value, factor: int):
    """Every whole number in ``value`` (a number or nested lists) times ``factor``; flags and names as they are."""
    if isinstance(value, list):
        return [_scaled(v, factor) for v in value]
    return value * factor if isinstance(value, int) and not isinstance(value, bool) else value


def _knob_values(cfg) -> list[tuple[str, object]]:
    mapping = cfg.spec.dump(cfg.backbone)
    out = []
    for knob in cfg.spec.knobs:
        node = mapping
        for part in knob.key.split("."):
            node = node[part]
        out.append((knob.key, node))
    return out


def _an_edit(cfg):
    """``(knob key, new value, edited config)``: a width (a knob whose key names channels) doubled where the
    network takes that alone, else the first knob whose doubled value it takes and whose params change."""
    base = analyze_network(cfg).params
    knobs = sorted(_knob_values(cfg), key=lambda kv: "channels" not in kv[0])  # widths first, stable
    for key, value in knobs:
        new = _scaled(value, 2)
        if new == value:
            continue
        try:
            edited = _edited(cfg, key, new)
        except ConfigError:
            continue
        if analyze_network(edited).params != base:
            return key, new, edited
    raise AssertionError(f"{cfg.name}: no knob of {cfg.arch} takes a doubled value")


def _a_bad_value(cfg, key: str, value):
    """``value`` with its whole numbers set to 0, checked to be refused by the network itself."""
    bad = _scaled(value, 0)
    with pytest.raises(ConfigError):
        _edited(cfg, key, bad)
    return bad


def _field(at: AppTest, label: str):
    """The one form field labelled ``label`` (a knob's key), whatever its widget."""
    hits = [w for kind in ("text_input", "number_input", "checkbox") for w in getattr(at, kind) if w.label == label]
    assert len(hits) == 1, (label, len(hits))
    return hits[0]


def _type(widget, value) -> str:
    """Type ``value`` into ``widget`` (a list as one YAML flow value); returns the text typed."""
    if widget.type == "text_input":
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
        widget.input(text)
        return text
    widget.set_value(value)
    return repr(value)


# ---- the Build page ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", NETWORK_PRESETS, ids=[p.stem for p in NETWORK_PRESETS])
def test_build_page_loads_edits_and_refuses_a_network_preset(path):
    cfg = load_config(path)
    rep = analyze_network(cfg)
    at = _start(path.stem)
    _no_failure(at)
    assert {p.stem for p in NETWORK_PRESETS} <= set(at.selectbox(key="b_preset").options)
    assert at.session_state.cfg == cfg
    m = _metrics(at)
    assert _exact_params(at) == rep.params and m["Params"] == f"{rep.params / 1e6:.2f}M"
    assert m["GFLOPs (paper)"] == f"{rep.conv_linear_macs / 2**30:.2f}"  # Conv2d + Linear MACs / 2^30
    if rep.attention_macs:
        assert m["Attention GMACs"] == f"{rep.attention_macs / 2**30:.2f}"
    else:
        assert "Attention GMACs" not in m
    assert load_config_text(at.text_area(key="yaml_text").value, name=cfg.name) == cfg
    line = unavailable(cfg, "diagram")
    assert (line in [i.value for i in at.info]) if line else diagrams(at)
    for knob in cfg.spec.knobs:  # the form: one field per knob of the registered network
        _field(at, knob.key)

    key, new, edited = _an_edit(cfg)
    _type(_field(at, key), new)
    at.run()
    _no_failure(at)
    want = analyze_network(edited).params
    assert _exact_params(at) == want != rep.params
    assert at.session_state.cfg.backbone == edited.backbone
    assert load_config_text(at.text_area(key="yaml_text").value).backbone == edited.backbone  # the YAML follows

    typed = _type(_field(at, key), _a_bad_value(cfg, key, new))
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and f"backbone.{key} = " in errors[0] and typed in errors[0], errors
    assert _exact_params(at) == want  # the last valid model's numbers stay, and say so
    assert at.session_state.cfg.backbone == edited.backbone
    assert any("last valid model" in w.value for w in at.warning)


@pytest.mark.parametrize("path", NETWORK_PRESETS, ids=[p.stem for p in NETWORK_PRESETS])
def test_every_page_loads_with_a_network_preset(path):
    cfg = load_config(path)
    at = _start(path.stem)
    for page, title in PAGES.items():
        at.switch_page(page).run()
        _no_failure(at)
        assert at.title[0].value == title
        assert any(f"**{cfg.name}**" in md.value for md in at.sidebar.markdown)  # the sidebar describes it
        if page in PAGE_FEATURES:
            feature, element = PAGE_FEATURES[page]
            line = unavailable(cfg, feature)
            if line:  # one clear line instead of the feature
                assert [i.value for i in at.info].count(line) == 1
            elif element == "button":  # the profile runs on demand
                assert at.button(key="c_prof_run").label.startswith("Measure on")
            else:
                assert at.get(element), (page, element)
        if page == "app/complexity.py":
            assert _metrics(at)["Params"] == f"{analyze_network(cfg).params / 1e6:.2f}M"


# ---- the YAML editor: a network's YAML and mmpose .py text -----------------------------------------------------------


def test_yaml_editor_takes_network_yaml_and_mmpose_text():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    lite = load_config(ROOT / "configs" / "networks" / "litehrnet_18_256x192.yaml")
    wide = _edited(lite, "extra.stem.stem_channels", 16)
    at.text_area(key="yaml_text").input(dump_config(wide)).run()
    _no_failure(at)
    assert at.session_state.cfg == wide
    assert _exact_params(at) == analyze_network(wide).params

    py = MMPOSE / "td-hm_hrformer-small_8xb32-210e_coco-256x192.py"
    at.text_area(key="yaml_text").input(py.read_text(encoding="utf-8")).run()
    _no_failure(at)
    want = load_config(py)
    assert at.session_state.cfg.backbone == want.backbone and at.session_state.cfg.arch == "hrformer"
    assert _exact_params(at) == analyze_network(want).params
    assert at.session_state.base_origin == "pasted mmpose config"

    at.text_area(key="yaml_text").input("model = dict(type='TopdownPoseEstimator')\nimport os\n").run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "line 2" in errors[0] and "nothing was executed" in errors[0], errors
    assert at.session_state.cfg.backbone == want.backbone


def test_parse_yaml_reads_mmpose_text_without_executing_it():
    for py in sorted(MMPOSE.glob("*.py")):
        text = py.read_text(encoding="utf-8")
        assert ce.is_mmpose_text(text)
        assert ce.parse_yaml(text, source=py.name, name=py.stem) == load_config(py)
    assert not ce.is_mmpose_text(dump_config(load_config(NETWORK_PRESETS[0])))
    with pytest.raises(ConfigError, match=r"^x\.py line 1: .*nothing was executed"):
        ce.parse_yaml("__import__('os').system('true')\nmodel = dict()\n", source="x.py", mmpose=True)
    with pytest.raises(ConfigError, match=r"^x\.py: .*not an mmpose model config"):
        ce.parse_yaml("codec = dict()\n", source="x.py")


# ---- the form's pure logic ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", NETWORK_PRESETS, ids=[p.stem for p in NETWORK_PRESETS])
def test_network_form_round_trips_and_names_the_field(path):
    cfg = load_config(path)
    values = nf.widget_values(cfg)
    assert nf.apply_form(cfg, values) == cfg
    assert [f.key for f in nf.knob_fields(cfg)] == [k.key for k in cfg.spec.knobs]
    values[nf.HEAD_OUTPUTS] = 0
    with pytest.raises(nf.FieldError, match=r"^head\.outputs = 0: must be a positive integer") as err:
        nf.apply_form(cfg, values, nf.HEAD_OUTPUTS)
    assert err.value.widget == nf.HEAD_OUTPUTS


def test_coupled_knobs_apply_once_they_agree():
    """HRFormer: each stage's branch 0 continues the last stage's, so a width is edited stage after stage; the
    fields keep what was typed until the model is valid again."""
    cfg = load_config(ROOT / "configs" / "networks" / "hrformer_small_256x192.yaml")
    values = nf.widget_values(cfg)
    keys = [nf.widget_key(cfg, f"extra.stage{s}.num_channels") for s in (2, 3, 4)]
    for s, key in enumerate(keys):
        values[key] = yaml.safe_dump([48, 64, 128, 256][: s + 2], default_flow_style=True).strip()
        if key != keys[-1]:
            with pytest.raises(nf.FieldError, match=rf"^backbone\.extra\.stage{s + 2}\.num_channels = .*"
                                                     rf"backbone\.extra\.stage{s + 3}\.num_channels\[0\]"):
                nf.apply_form(cfg, values, key)
    out = nf.apply_form(cfg, values, keys[-1])
    assert [out.backbone.stage4.num_channels, out.backbone.stage2.num_channels] == [(48, 64, 128, 256), (48, 64)]
    assert out == _edited(cfg, extra__stage2__num_channels=[48, 64], extra__stage3__num_channels=[48, 64, 128],
                          extra__stage4__num_channels=[48, 64, 128, 256])
