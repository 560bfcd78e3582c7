"""Tables and units (issue 12): thousands separators, units in headers, scientific notation for small values,
empty cells for missing values, text wide enough; metrics that would be cut are counted and listed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from app.logic.tables import display_frame, table_spec

ROOT = Path(__file__).resolve().parents[1]


def test_spec_kinds_units_and_widths():
    df = pd.DataFrame({"name": ["stage3.1.fuse_layers.0.1.0", None], "params": [136445952, 12],
                       "energy": [9e-9, 0.5], "median_ms": [12.5, 3.25], "module": [None, None],
                       "output_shape": [(1, 32, 64, 48), None], "live": [True, False],
                       "branch": pd.array([None, 2], dtype="Int64"), "params_share": [0.99996, 4e-5]})
    spec = {s.name: s for s in table_spec(df)}
    assert spec["params"].kind == "int" and spec["params"].label == "params"
    assert spec["energy"].kind == "small" and spec["energy"].label == "energy (mean L2 per position)"
    assert spec["median_ms"].kind == "float" and spec["median_ms"].label == "median_ms (ms)"
    # a share is a fraction of a total: percent even when one row is tiny (not scientific notation)
    assert spec["params_share"].kind == "share" and spec["params_share"].label == "params_share (%)"
    assert spec["name"].width == "large" and spec["params"].width is None and spec["live"].kind == "bool"
    shown = display_frame(df)
    assert list(shown["name"]) == ["stage3.1.fuse_layers.0.1.0", ""] and list(shown["module"]) == ["", ""]
    assert list(shown["output_shape"]) == ["(1, 32, 64, 48)", ""] and list(shown["branch"]) == ["", "2"]
    assert shown["params_share"].tolist() == [99.996, 0.004]
    assert shown["params"].tolist() == [136445952, 12]  # numbers stay numbers: the column format shows 136,445,952


def _config(at: AppTest, index: int = 0) -> dict:
    import json

    return json.loads(at.dataframe[index].proto.columns)


def test_build_table_and_long_outputs():
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180).run()
    config = _config(at)
    assert config["channels"]["type_config"]["format"] == "localized"
    assert config["size_hw"]["label"] == "size_hw (px)"
    at.selectbox(key="b_preset").set_value("det_hrnetv2p_w32").run()
    metric = {m.label: m.value for m in at.metric}["Output"]
    assert metric == "5 maps"
    assert any(c.value.startswith("Output maps (N x C x H x W): 1x256x") for c in at.caption)


def test_complexity_breakdown_shows_empty_cells_not_none():
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180).run()
    at.switch_page("app/complexity.py").run()
    assert not at.exception
    breakdown = next(d.value for d in at.dataframe if "output_shape" in d.value.columns)
    assert "" in set(breakdown["module"]) and "2" in set(breakdown["module"])  # the stem has no module: empty
    assert not any(v in ("None", "<NA>", "nan") for v in breakdown["module"])
    assert breakdown["output_shape"].iloc[0] == "(1, 64, 128, 96)"


def test_complexity_shares_read_in_percent():
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180).run()
    at.switch_page("app/complexity.py").run()
    index, frame = next((i, d.value) for i, d in enumerate(at.dataframe) if "params_share" in d.value.columns)
    config = _config(at, index)
    assert config["params_share"]["type_config"]["format"] == "%.2f"
    assert config["params_share"]["label"] == "params_share (%)"
    assert abs(frame["params_share"].sum() - 100) < 1e-6  # percentages, as the header says
