"""Published vs computed (``analysis.complexity.published``): every preset with a published figure shows it beside
ours in the source's convention, reproduces it or says why not; edited configs and a missing ``../shared`` say so
in one line; the Complexity page shows the table."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from conftest import NETWORK_PRESETS, PRESETS, ROOT
from streamlit.testing.v1 import AppTest

import hrnet_core as hc
from analysis.complexity import analyze
from analysis.complexity.published import (
    CODE_DIFFERS,
    COLUMNS,
    FAMILY_ROWS,
    HIGHERHRNET_README,
    MODEL_ZOO_ROWS,
    SEG_INPUT,
    published_vs_computed,
)

pytestmark = pytest.mark.usefixtures("app_dirs")  # the app test's runs and saved configs in tmp_path
ALL = PRESETS + NETWORK_PRESETS
WITH_FIGURES = sorted(set(MODEL_ZOO_ROWS) | set(HIGHERHRNET_README) | set(FAMILY_ROWS) | set(CODE_DIFFERS))


def _load(name: str):
    return hc.load_config(next(p for p in ALL if p.stem == name))


def test_every_named_preset_exists():
    assert set(WITH_FIGURES) <= {p.stem for p in ALL}


@pytest.mark.parametrize("name", WITH_FIGURES)
def test_each_published_figure_is_reproduced_or_explained(name):
    res = published_vs_computed(_load(name))
    table = res.table
    assert list(table.columns) == COLUMNS and set(table["quantity"]) >= {"params"} and len(table) == 2, res.note
    for row in table.itertuples():
        assert row.matches == (row.ours == row.published)
        if not row.matches:
            assert row.why, (name, row.quantity)  # every difference has its reason
    if name in CODE_DIFFERS:  # the README figure disagrees with its own code: shown, not hidden
        params = table[table["quantity"] == "params"].iloc[0]
        assert not params.matches and params.why == CODE_DIFFERS[name]
    else:
        assert table[table["quantity"] == "params"]["matches"].all() or name == "hrformer_small_256x192"


def test_the_conventions_that_differ_are_named():
    higher = published_vs_computed(_load("higherhrnet_w32_512")).table.set_index("quantity")
    rep = analyze(_load("higherhrnet_w32_512"))
    assert higher.loc["GFLOPs", "ours"] == f"{rep.conv_linear_macs / 1e9:.1f}" and "1e9" in higher.loc["GFLOPs", "convention"]
    assert f"{rep.gflops_paper:.2f}" in higher.loc["GFLOPs", "why"]  # ours in 2**30 beside it
    seg = published_vs_computed(_load("seg_hrnetv2_w18_small_v1")).table.set_index("quantity")
    assert seg.loc["GFLOPs", "input (H x W)"] == f"{SEG_INPUT[0]} x {SEG_INPUT[1]}" and "trains at" in seg.loc["GFLOPs", "why"]
    lite = published_vs_computed(_load("litehrnet_18_256x192")).table.set_index("quantity")
    assert "torchstat" in lite.loc["FLOPs", "convention"] and lite.loc["FLOPs", "matches"]


def test_higherhrnet_figures_equal_the_readme_table():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = dict((n, (p, g)) for n, p, g in
                re.findall(r"^\| `(higherhrnet_\w+)` \|[^|]*\| ([\d.]+M) \| ([\d.]+) \|", text, flags=re.M))
    assert rows == HIGHERHRNET_README


def test_edited_unknown_and_missing_shared(tmp_path):
    w32 = _load("pose_hrnet_w32_256x192")
    edited = published_vs_computed(w32.with_fusion("final_only"))
    assert edited.table.empty and "edited" in edited.note
    other = published_vs_computed(replace(w32, name="mine"))
    assert other.table.empty and "no published figures" in other.note
    missing = published_vs_computed(w32, shared=tmp_path / "nowhere")
    assert missing.table.empty and "not found" in missing.note
    assert not published_vs_computed(w32.with_input((384, 288))).table.empty  # any input: the preset's figures


def test_complexity_page_shows_the_table():
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180).run()
    at.switch_page("app/complexity.py").run()
    assert not at.exception
    table = next(df.value for df in at.dataframe if list(df.value.columns) == COLUMNS)
    assert set(table["quantity"]) == {"params", "GFLOPs"} and table["matches"].all()
