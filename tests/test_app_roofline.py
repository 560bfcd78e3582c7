"""The roofline chart on the Complexity page (AppTest): measured per branch, it plots every group of parts
(stem, layer1, transitions, each branch, fusions, head) against the measured roof, with the reading."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")
TINY = "width: 8\nmodules: [1, 1, 1]\nblocks: 1\nstage1: {blocks: 1, planes: 16}\ninput_size: [64, 64]\n"


pytestmark = pytest.mark.usefixtures("app_dirs")  # runs and saved configs in tmp_path


def _measured(fast: bool) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.text_area(key="yaml_text").input(TINY).run()
    at.switch_page("app/complexity.py").run()
    at.selectbox(key="c_prof_device").set_value("cpu")
    at.radio(key="c_prof_mode").set_value("branch")
    at.checkbox(key="c_prof_fast").check() if fast else None
    at.run()
    at.button(key="c_prof_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == []
    return at


def _values(arr) -> list:
    """A plotly array as a list (plotly 6 writes numeric arrays as base64 ``{"dtype", "bdata"}``)."""
    if isinstance(arr, dict) and "bdata" in arr:
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=np.dtype(arr["dtype"])).tolist()
    return list(arr)


def _roofline_figure(at: AppTest) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return next(s for s in specs if "roof" in json.dumps(s.get("layout", {}).get("title", "")))


@pytest.mark.parametrize("fast", [False, True])
def test_roofline_chart_after_measuring(fast):
    at = _measured(fast)
    fig = _roofline_figure(at)
    points = next(t for t in fig["data"] if "text" in t)
    assert {"stem", "layer1", "transitions", "fusions", "head", "branch 0 (1/4)", "branch 3 (1/32)"} <= set(points["text"])
    assert all(v > 0 for v in _values(points["y"])) and all(v > 0 for v in _values(points["x"]))
    roof = next(t for t in fig["data"] if t.get("mode") == "lines")
    ys = _values(roof["y"])
    assert max(ys) > 0 and ys == sorted(ys)  # bandwidth slope, then flat at the peak
    assert fig["layout"]["xaxis"]["type"] == "log"
    assert any("% of the measured peak" in m.value for m in at.markdown)
    assert any("GFLOP/s: best of" in c.value and "matmuls on cpu" in c.value for c in at.caption)
    table = next(df.value for df in at.dataframe if "pct_of_peak" in df.value.columns)
    assert (table["pct_of_peak"] > 0).all() and (table["op_calls"] > 0).all()
    profile = next(df.value for df in at.dataframe if "median_ms" in df.value.columns and "dtype" in df.value.columns)
    assert profile["dtype"].str.contains("fast path").all() == fast


def test_a_refused_profile_is_one_error_line_and_leaves_no_progress_bar():
    """A batch above the activation bound: the bound's one line, and no bar or Cancel left over from the run."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["preset"] = "seg_hrnetv2_w48"  # 1024x2048: batch 64 is far above the bound
    at.run()
    at.switch_page("app/complexity.py").run()
    at.multiselect(key="c_prof_batches").set_value([64]).run()
    at.button(key="c_prof_run").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("profile: ") and "exceed the bound" in errors[0], errors
    assert len(at.get("progress")) == 0 and "Cancel" not in [b.label for b in at.button]
