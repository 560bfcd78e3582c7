"""Two ablation runs on one figure: each variant's validation curve per epoch, mean over its seeds with the
seeds' range as a band, run A solid and run B dashed, one colour per variant name (so ``all`` of a 4-epoch run
sits beside ``all`` of a 20-epoch one). Read from the run folders' ``metrics.jsonl`` (``report.load_metrics``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.ablation.report import load_metrics

CURVES = {"AP": ("Validation AP per epoch", "OKS AP (%)", 100.0), "PCK@0.1": ("PCK@0.1 per epoch", "PCK@0.1 (%)", 100.0),
          "train_loss": ("Training loss per epoch", "loss (weighted heatmap MSE)", 1.0)}


def run_curves(run_dir: str | Path, key: str = "AP") -> pd.DataFrame:
    """``variant, epoch, mean, low, high, seeds`` of ``key`` over the run's seeds (AP and PCK in %), one row per
    variant and epoch that has a value. Raises ``KeyError`` for a metric not in ``CURVES`` and
    ``RunFolderError`` for an unreadable run."""
    scale = CURVES[key][2]
    metrics = load_metrics(run_dir)
    if metrics.empty or key not in metrics:
        return pd.DataFrame(columns=["variant", "epoch", "mean", "low", "high", "seeds"])
    rows = metrics[metrics[key].notna()]
    grouped = rows.groupby(["variant", "epoch"], sort=False)[key]
    out = grouped.agg(["mean", "min", "max", "count"]).reset_index()
    out = out.rename(columns={"min": "low", "max": "high", "count": "seeds"})
    for col in ("mean", "low", "high"):
        out[col] = scale * out[col]
    return out


def overlay_figure(run_a: str | Path, run_b: str | Path, key: str = "AP"):
    """The plotly figure of ``run_curves`` of both runs (run A solid with markers, run B dashed), titled by the
    two run folders' names."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    title, ytitle, _ = CURVES[key]
    a, b = Path(run_a), Path(run_b)
    curves = [(a.name, run_curves(a, key), "solid"), (b.name, run_curves(b, key), "dash")]
    names = list(dict.fromkeys(v for _, df, _ in curves for v in df["variant"]))
    colour = {v: qualitative.Plotly[i % 10] for i, v in enumerate(names)}
    fig = go.Figure()
    for run, df, dash in curves:
        for variant, g in df.groupby("variant", sort=False):
            fig.add_trace(go.Scatter(x=list(g["epoch"]) + list(g["epoch"])[::-1], y=list(g["high"]) + list(g["low"])[::-1],
                                     fill="toself", fillcolor=colour[variant], opacity=0.12, line={"width": 0},
                                     hoverinfo="skip", showlegend=False, legendgroup=f"{run}/{variant}"))
            fig.add_trace(go.Scatter(x=g["epoch"], y=g["mean"], mode="lines+markers", name=f"{run}: {variant}",
                                     line={"color": colour[variant], "dash": dash}, legendgroup=f"{run}/{variant}",
                                     customdata=g["seeds"], hovertemplate="epoch %{x}: %{y:.2f} (mean of %{customdata} seeds)"))
    fig.update_layout(title=f"{title}: {a.name} (solid) vs {b.name} (dashed), mean over seeds, band = seeds' range",
                      xaxis_title="epoch", yaxis_title=ytitle, height=440, legend={"font": {"size": 10}})
    if key == "train_loss":
        fig.update_yaxes(type="log")
    return fig


__all__ = ["CURVES", "overlay_figure", "run_curves"]
