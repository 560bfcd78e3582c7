"""The design-space report's figures, described once (``FigureSpec``: panels of series) and drawn twice: with
plotly for ``report.html`` (interactive: hover shows each sample's id) and with matplotlib for the PNG and SVG
files of ``report.md`` (a paper's appendix; no browser needed, unlike plotly's image export). Colours and the
compact style follow pycls' sweep plots (facebookresearch/pycls ``pycls/sweep/plotting.py``)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

# pycls' default colour cycle (``set_colors``), as hex.
COLORS = ("#0072bd", "#d95319", "#edb120", "#7e2f8e", "#77ac30", "#4dbeee", "#a2142f", "#4d4d4d", "#999999",
          "#ff0000")
MAX_COLS = 3
PNG_DPI = 200


@dataclass(frozen=True)
class Series:
    """One curve or point cloud: ``mode`` ``step`` (a right-continuous staircase: EDFs, Pareto fronts),
    ``markers`` or ``lines``; ``color`` an index into ``COLORS``; ``text`` one hover label per point (sample ids)."""

    label: str
    x: tuple
    y: tuple
    mode: str = "markers"
    color: int = 0
    text: tuple | None = None


@dataclass(frozen=True)
class Panel:
    """One set of axes: ``xticks`` ``(positions, labels)`` for a categorical x (a choice knob), ``xlog`` a log x."""

    title: str
    xlabel: str
    ylabel: str
    series: tuple[Series, ...]
    xticks: tuple | None = None
    xlog: bool = False


@dataclass(frozen=True)
class FigureSpec:
    """A figure: ``name`` (the file stem: ``figures/<name>.png`` / ``.svg``), ``title`` and its panels, laid out
    ``MAX_COLS`` to a row."""

    name: str
    title: str
    panels: tuple[Panel, ...] = field(default=())

    def grid(self) -> tuple[int, int]:
        """``(rows, cols)`` of the layout."""
        cols = min(MAX_COLS, max(1, len(self.panels)))
        return math.ceil(len(self.panels) / cols), cols


def to_plotly(spec: FigureSpec):
    """``spec`` as a ``plotly.graph_objects.Figure`` (one legend entry per series label)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows, cols = spec.grid()
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[p.title for p in spec.panels])
    shown = set()
    for i, panel in enumerate(spec.panels):
        r, c = i // cols + 1, i % cols + 1
        for s in panel.series:
            colour = COLORS[s.color % len(COLORS)]
            kw = {"mode": "markers", "marker": {"color": colour, "size": 6, "opacity": 0.75}} if s.mode == "markers" \
                else {"mode": "lines", "line": {"color": colour, "shape": "hv" if s.mode == "step" else "linear"}}
            fig.add_trace(go.Scatter(x=list(s.x), y=list(s.y), name=s.label, legendgroup=s.label,
                                     showlegend=s.label not in shown, text=list(s.text) if s.text else None,
                                     hovertemplate="%{text}<br>x=%{x}<br>y=%{y}<extra>" + s.label + "</extra>"
                                     if s.text else None, **kw), row=r, col=c)
            shown.add(s.label)
        fig.update_xaxes(title_text=panel.xlabel, type="log" if panel.xlog else None, row=r, col=c)
        if panel.xticks:
            fig.update_xaxes(tickmode="array", tickvals=list(panel.xticks[0]), ticktext=list(panel.xticks[1]),
                             row=r, col=c)
        fig.update_yaxes(title_text=panel.ylabel, row=r, col=c)
    fig.update_layout(title=spec.title, height=360 * rows + 60, margin={"t": 90})
    return fig


def to_matplotlib(spec: FigureSpec):
    """``spec`` as a matplotlib ``Figure`` (no pyplot, no global state)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    rows, cols = spec.grid()
    fig = Figure(figsize=(3.6 * cols, 2.9 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    handles = {}
    for ax, panel in zip(axes, spec.panels):
        for s in panel.series:
            colour = COLORS[s.color % len(COLORS)]
            if s.mode == "markers":
                h = ax.scatter(s.x, s.y, s=12, alpha=0.7, color=colour, linewidths=0, label=s.label)
            elif s.mode == "step":
                (h,) = ax.step(s.x, s.y, where="post", color=colour, linewidth=1.25, alpha=0.9, label=s.label)
            else:
                (h,) = ax.plot(s.x, s.y, color=colour, linewidth=1.25, label=s.label)
            handles.setdefault(s.label, h)
        ax.set_title(panel.title, fontsize=9)
        ax.set_xlabel(panel.xlabel, fontsize=8)
        ax.set_ylabel(panel.ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.4)
        if panel.xlog:
            ax.set_xscale("log")
        if all(isinstance(v, int) for s in panel.series for v in s.x):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if panel.xticks:
            ax.set_xticks(list(panel.xticks[0]), list(panel.xticks[1]), rotation=30, ha="right")
    for ax in axes[len(spec.panels):]:
        ax.axis("off")
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=min(4, len(handles)),
                   fontsize=8, frameon=False)
    fig.suptitle(spec.title, fontsize=10)
    return fig


def image_bytes(spec: FigureSpec) -> dict[str, bytes]:
    """``{"png": ..., "svg": ...}``: the matplotlib drawing of ``spec`` (PNG at ``PNG_DPI``; SVG without a date and
    with fixed element ids, so the same data give the same file)."""
    import matplotlib

    fig = to_matplotlib(spec)
    out = {}
    with matplotlib.rc_context({"svg.hashsalt": "hrnet-explorer", "svg.fonttype": "none"}):
        for fmt, meta in (("png", {"Software": None}), ("svg", {"Date": None})):
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=PNG_DPI, metadata=meta)
            out[fmt] = buf.getvalue()
    return out


__all__ = ["COLORS", "FigureSpec", "Panel", "Series", "image_bytes", "to_matplotlib", "to_plotly"]
