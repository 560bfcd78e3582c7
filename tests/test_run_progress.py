"""Progress reported from inside a forward pass, and a run stopped by its report (issue 12: Cancel)."""

from __future__ import annotations

import functools
import threading

import pytest
import torch

import hrnet_core as hc
from app.logic.config_edit import load_preset
from app.logic.run_progress import forward_progress, throttled


@functools.lru_cache(maxsize=1)
def _small():
    cfg = load_preset("pose_hrnet_w32_256x192").with_input((64, 64))
    return hc.build_model(cfg).eval()


def test_fractions_rise_to_one_and_hooks_go():
    model = _small()
    seen: list[float] = []
    with torch.inference_mode(), forward_progress(model, seen.append, min_interval_s=0.0):
        model(torch.zeros(1, 3, 64, 64))
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 50
    assert all(not m._forward_hooks for m in model.modules())


class Stop(BaseException):
    """What Streamlit raises in a script asked to stop (a BaseException, like StopException)."""


def test_an_exception_from_report_stops_the_forward_within_a_layer():
    model = _small()
    calls = []

    def report(fraction):
        calls.append(fraction)
        if len(calls) == 3:
            raise Stop

    with pytest.raises(Stop), torch.inference_mode(), forward_progress(model, report, min_interval_s=0.0):
        model(torch.zeros(1, 3, 64, 64))
    assert len(calls) == 3 and calls[-1] < 0.1
    assert all(not m._forward_hooks for m in model.modules())


def test_other_threads_are_not_reported():
    model = _small()
    seen: list[float] = []
    with forward_progress(model, seen.append, min_interval_s=0.0):
        t = threading.Thread(target=lambda: model(torch.zeros(1, 3, 64, 64)))
        with torch.inference_mode():
            t.start()
            t.join()
    assert seen == []


def test_throttled_forwards_at_most_every_interval_and_always_the_end():
    seen = []
    report = throttled(lambda f, text: seen.append((f, text)), min_interval_s=3600)
    for i in range(1, 11):
        report(i / 10, f"step {i}")
    assert seen == [(0.1, "step 1"), (1.0, "step 10")]
    every = []
    report = throttled(lambda f, text: every.append(f), min_interval_s=0.0)
    for i in range(1, 6):
        report(i / 5, "")
    assert every == [0.2, 0.4, 0.6, 0.8, 1.0]
