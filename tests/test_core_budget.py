"""Whole-model budgets (hrnet_core.budget): exact arithmetic, fast refusals naming what to reduce."""

from __future__ import annotations

import time

import pytest
from conftest import PRESETS as CONFIGS

import hrnet_core as hc
from analysis.complexity import analyze
from hrnet_core import budget


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_arithmetic_counts_match_the_built_model(path):
    cfg = hc.load_config(path)
    model = hc.build_on_meta(cfg)
    assert hc.count_params(cfg) == sum(p.numel() for p in model.parameters())
    backbone_convs = sum(1 for name, m in model.named_modules()
                         if isinstance(m, hc.model.nn.Conv2d) and name in _backbone_names(model))
    assert budget.conv_layers(cfg) == backbone_convs
    exact = 4 * analyze(cfg).activations  # float32 bytes
    assert 0.5 * exact <= budget.activation_estimate(cfg) <= 2 * exact


def _backbone_names(model) -> set[str]:
    head = {id(m) for m in model.head_module.modules()}
    return {name for name, m in model.named_modules() if id(m) not in head}


@pytest.mark.parametrize("raw, words", [
    ({"width": 32, "modules": [32, 32, 32], "blocks": 64}, "convolution layers exceed"),
    ({"width": 190}, "parameters exceed"),
])
def test_models_within_every_field_bound_but_too_big_are_refused_fast(raw, words):
    cfg = hc.load_config(raw)
    for check in (hc.build_model, hc.count_params, hc.build_on_meta):
        start = time.process_time()
        try:
            check(cfg)
        except hc.ConfigError as err:
            assert err.field == "model" and "reduce" in err.message
            assert words in err.message or check is not hc.build_model
        else:
            assert check is not hc.build_model
        assert time.process_time() - start < 1


def test_activation_budget_names_batch_and_input():
    cfg = hc.load_config({"width": 32})
    assert budget.check_activations(cfg, 1) == budget.activation_estimate(cfg)
    with pytest.raises(hc.ConfigError, match="reduce the batch, the input size"):
        budget.check_activations(cfg, 4096)
    with pytest.raises(hc.ConfigError, match="reduce the batch"):
        budget.check_activations(cfg.with_input((8192, 8192)), 1)
    for bad in (0, 10**23, True, 1.0):
        with pytest.raises(hc.ConfigError, match="batch"):
            budget.check_activations(cfg, bad)
