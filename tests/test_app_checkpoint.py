"""The app's feature-maps page loads a safetensors checkpoint (official names) strictly."""

from __future__ import annotations

from conftest import ROOT
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

import hrnet_core as hc

TINY = "width: 8\nmodules: [1, 1, 1]\nblocks: 1\nstage1: {blocks: 1, planes: 16}\ninput_size: [64, 64]\n"


def test_feature_maps_page_loads_a_safetensors_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("HRNET_EXPLORER_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("HRNET_EXPLORER_USER_CONFIGS", str(tmp_path / "configs"))
    model = hc.build_model(hc.load_config_text(TINY), init="default")
    monkeypatch.setenv("HRNET_EXPLORER_CHECKPOINT_DIRS", str(tmp_path / "weights"))  # the app reads only there
    path = tmp_path / "weights" / "tiny.safetensors"
    path.parent.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180).run()
    at.text_area(key="yaml_text").input(TINY).run()
    at.switch_page("app/feature_maps.py").run()
    at.selectbox(key="f_ck").set_value("a checkpoint file on this machine…").run()
    at.text_input(key="f_ck_path").input(str(path)).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    caption = next(c.value for c in at.caption if c.value.startswith("Device:"))
    assert f"loaded {len(model.state_dict())} tensors from {path} (strict)" in caption
