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


def test_a_checkpoint_of_another_config_offers_that_config(tmp_path, monkeypatch):
    """A refused checkpoint: one error line, no progress bar left, the header back on the current model, and the
    config its weights describe offered; taking it loads the checkpoint."""
    monkeypatch.setenv("HRNET_EXPLORER_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("HRNET_EXPLORER_USER_CONFIGS", str(tmp_path / "configs"))
    monkeypatch.setenv("HRNET_EXPLORER_CHECKPOINT_DIRS", str(tmp_path / "weights"))
    other = hc.load_config_text(TINY.replace("width: 8", "width: 16"))
    path = tmp_path / "weights" / "w16.safetensors"
    path.parent.mkdir()
    save_file({k: v.contiguous() for k, v in hc.build_model(other, init="default").state_dict().items()}, str(path))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180).run()
    at.text_area(key="yaml_text").input(TINY).run()
    at.switch_page("app/feature_maps.py").run()
    at.selectbox(key="f_ck").set_value("a checkpoint file on this machine…").run()
    at.text_input(key="f_ck_path").input(str(path)).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "w16.safetensors" in errors[0]
    assert not at.get("progress")  # the bar went with the failed load
    assert not any("w16.safetensors" in m.value for m in at.markdown)  # the header names no rejected file
    (offer,) = [i.value for i in at.info if i.value.startswith("Its weights are those of another model")]
    inferred, _ = hc.config_from_checkpoint(path)
    assert f"{hc.count_params(inferred) / 1e6:.2f}M params" in offer
    at.button(key="f_use_inferred").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state.cfg == inferred
    caption = next(c.value for c in at.caption if c.value.startswith("Device:"))
    assert f"from {path} (strict)" in caption


def test_quality_note_says_when_maps_are_noise():
    from app.logic.checkpoint_help import NOISE_AP, quality_note

    assert "0.0 %" in quality_note({"epoch": 2, "metrics": {"AP": 0.0}}) and "after 2 epochs" in \
        quality_note({"epoch": 2, "metrics": {"AP": 0.0}})
    assert quality_note({"metrics": {"AP": NOISE_AP}}) is None and quality_note({}) is None
