"""The Design space page through Streamlit's AppTest (no browser): it loads with the example space, sampling draws
a scatter of every sample (the chart's own figure spec is read back), a bad value is one error line naming the
field, a sample opens on the Build page with its config and params, and space folders with results give AP axes
and the error EDFs. Also the page's pure logic (``app.logic.design_space``)."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

import hrnet_core as hc
from analysis.space import sample_space
from app.logic import design_space as ds

APP = str(ROOT / "streamlit_app.py")
TIMEOUT = 120
PAGE = "app/design_space.py"

pytestmark = pytest.mark.usefixtures("app_dirs")  # runs (space folders) in tmp_path


def _start() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(PAGE).run()
    return at


def _no_failure(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == []


def _scatter_spec(at: AppTest) -> dict:
    (chart,) = [c for c in at.get("plotly_chart") if c.proto.id and "ds_scatter" in c.proto.id]
    return json.loads(chart.proto.spec)


def _expected():
    """The example space's samples, by the library alone."""
    return sample_space(ds.read_space_text(ds.DEFAULT_SPACE)).samples


def test_page_loads_with_the_example_space():
    at = _start()
    _no_failure(at)
    assert at.title[0].value == "Design space"
    assert at.text_area(key="ds_yaml").value == ds.DEFAULT_SPACE
    assert at.number_input(key="ds_samples").value == 24 and at.number_input(key="ds_seed").value == 0
    assert not at.get("plotly_chart")  # nothing sampled yet, no folder
    assert any("EDFs need trained samples" in c.value for c in at.caption)


def test_sampling_draws_every_sample_and_opens_one_on_build():
    expected = _expected()
    at = _start()
    at.button(key="ds_run").click().run()
    _no_failure(at)
    (trace,) = _scatter_spec(at)["data"]
    assert len(trace["x"]) == len(expected) == 24
    assert [c[0] for c in trace["customdata"]] == [s["id"] for s in expected]
    assert trace["x"] == pytest.approx([s["params"] / 1e6 for s in expected])
    assert trace["y"] == pytest.approx([s["gflops"] for s in expected])  # no AP: GFLOPs vs params
    assert f"width: {expected[0]['knobs']['width']}" in trace["text"][0]
    assert at.session_state.ds_pop.ids == [s["id"] for s in expected]

    sample = expected[5]
    at.selectbox(key="ds_open_id").set_value(sample["id"]).run()
    at.button(key="ds_open").click().run()
    _no_failure(at)
    assert at.title[0].value == "Build"
    cfg = hc.load_config(sample["config"])
    assert at.session_state.cfg == cfg
    (params,) = [m for m in at.metric if m.label == "Params"]
    assert params.proto.help == f"{hc.count_params(cfg):,}"
    assert params.value == f"{hc.count_params(cfg) / 1e6:.2f}M"
    assert at.number_input(key="b_width").value == sample["knobs"]["width"]  # the form shows the sample too
    assert at.session_state.base_origin == f"design space w32_small, sample {sample['id']}"


def test_form_fields_edit_the_text():
    at = _start()
    at.number_input(key="ds_samples").set_value(7).run()
    at.number_input(key="ds_seed").set_value(3).run()
    text = at.text_area(key="ds_yaml").value
    assert "samples: 7\n" in text and "seed: 3\n" in text and text.startswith("# Around HRNet-W32")
    at.button(key="ds_run").click().run()
    _no_failure(at)
    (trace,) = _scatter_spec(at)["data"]
    assert len(trace["x"]) == 7


def test_bad_value_is_one_error_line_naming_the_field():
    at = _start()
    at.text_area(key="ds_yaml").input(ds.DEFAULT_SPACE.replace("[8, 32]", "[64, 8]")).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Invalid space — space: sample.width.int: low 64 is above high 8"]
    assert at.button(key="ds_run").disabled


def _trained_folder(root, name: str, seed: int, ap_of) -> list[dict]:
    """A space folder of the example space (seed ``seed``, 12 samples) with a result per sample."""
    text = ds.set_top_value(ds.set_top_value(ds.DEFAULT_SPACE, "samples", 12), "seed", seed)
    space = ds.read_space_text(text)
    pop = ds.sampled_population(space, text, ds.sample_with_progress(space))
    folder = ds.save_population(pop, root, name)
    rows = [{"id": s["id"], "status": "done", "ap": ap_of(s), "epochs": 1, "seconds": 1.0} for s in pop.samples]
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return list(pop.samples)


def test_trained_folders_give_ap_axes_and_edfs(app_dirs):
    runs = app_dirs / "runs"
    a = _trained_folder(runs, "space_a", 0, lambda s: 0.5 + 0.3 * s["gflops"] / (1 + s["gflops"]))
    _trained_folder(runs, "space_b", 1, lambda s: 0.3)
    at = _start()
    _no_failure(at)
    assert at.selectbox(key="ds_source").value == "folder space_a"
    (trace,) = _scatter_spec(at)["data"]
    assert trace["y"] == pytest.approx([0.5 + 0.3 * s["gflops"] / (1 + s["gflops"]) for s in a])  # AP on y once there are results
    edf = next(c for c in at.get("plotly_chart") if "ds_edf" in c.proto.id)
    curves = json.loads(edf.proto.spec)["data"]
    assert [len(c["x"]) for c in curves] == [12, 12]
    assert any("KS statistic" in c.value for c in at.caption)


# ---- the logic alone ------------------------------------------------------------------------------


def test_progress_chunks_end_at_the_full_run():
    space = ds.read_space_text(ds.DEFAULT_SPACE)
    seen = []
    run = ds.sample_with_progress(space, lambda done, total: seen.append((done, total)))
    assert seen[-1] == (24, 24) and [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) > 1
    assert run == sample_space(space)
    assert ds.chunk_sizes(24) == [3, 6, 9, 12, 15, 18, 21, 24] and ds.chunk_sizes(1) == [1]


def test_set_top_value_keeps_comments_and_adds_a_missing_key():
    text = "# keep me\nname: x\nbase: pose_hrnet_w32_256x192\nsample:\n  width: {int: [8, 16]}\n"
    out = ds.set_top_value(text, "seed", 4)
    assert out.startswith("# keep me\n") and "seed: 4\nsample:" in out
    assert ds.top_value(ds.set_top_value(out, "seed", 9), "seed") == 9
    assert ds.read_space_text(out).seed == 4


def test_log_ticks_read_as_plain_numbers():
    assert ds.log_ticks(0.6, 16.0) == [1.0, 2.0, 5.0, 10.0]
    assert ds.log_ticks(0.27, 1.1) == [0.3, 0.5, 0.7, 1.0]


def test_too_many_samples_for_the_app_names_the_field():
    with pytest.raises(hc.ConfigError, match=r"^space: samples: 5,001 is more than the app samples"):
        ds.read_space_text(ds.set_top_value(ds.DEFAULT_SPACE, "samples", ds.MAX_APP_SAMPLES + 1))
