"""The ablation report's figures: per-epoch curves tick at whole epochs, about ten ticks whatever the schedule."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.ablation.report import figures

KEYS = ("AP", "PCK@0.1", "LR-swap")


def _frames(epochs: int):
    metrics = pd.DataFrame([{"variant": v, "seed": 0, "epoch": e, "train_loss": 1.0 / e, "AP": 0.1 * f + e / 1e3,
                             "PCK@0.1": 0.5, "LR-swap": 0.1} for f, v in ((1, "final_only"), (8, "all"))
                            for e in range(1, epochs + 1)])
    summary = pd.DataFrame([{"variant": v, "fusions": f, "gflops": 0.01 * f, **{f"{k}_mean": 0.5 for k in KEYS},
                             **{f"{k}_std": 0.01 for k in KEYS}} for f, v in ((1, "final_only"), (8, "all"))])
    return metrics, summary


@pytest.mark.parametrize(("epochs", "dtick"), [(2, 1), (14, 2), (210, 21)])
def test_epoch_axes_tick_whole_epochs(epochs, dtick):
    figs = figures(*_frames(epochs))
    loss, ap = figs["train_loss"], figs["val_ap"]
    for fig in (loss, ap):
        assert fig.layout.xaxis.dtick == dtick and fig.layout.xaxis.tick0 == 1
        assert fig.layout.xaxis.title.text == "epoch"
    assert len(loss.data) == 2 and list(loss.data[0].x) == list(range(1, epochs + 1))
