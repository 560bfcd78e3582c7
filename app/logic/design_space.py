"""The Design space page's logic (no Streamlit): the space text and its form fields, sampling with progress, the
population's scatter, opening a sample's config, saving a population as a space folder, the EDFs of two trained
spaces.

A population is a ``Population``: the samples of ``analysis.space.sample_space`` (each ``id``, ``config``,
``knobs``, ``params``, ``conv_linear_macs``, ``gflops``, ``activations``, maybe ``latency_ms``) and, for a space
folder with results (``results.jsonl``, written by the training step), each done sample's ``ap``. Without AP the
scatter's axes are complexity measures; ``ap`` becomes an axis as soon as one sample has it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import hrnet_core as hc
from analysis.space import SampleRun, Space, SpaceError, parse_space, sample_space
from analysis.space.figures import FigureSpec, Panel, Series, to_plotly
from analysis.space.population_stats import error_edf, ks_two_sample
from analysis.space.report import load_population
from analysis.space.space_folder import (
    RESULTS_FILE,
    SAMPLES_FILE,
    SPACE_FILE,
    SPACE_MARKER,
    check_space_out,
    is_space_folder,
    write_files,
)
from hrnet_core.safe_yaml import load_yaml

SOURCE = "space"  # how the editor's text is named in its error lines: "space: sample.width.int: ..."
MAX_APP_SAMPLES = 5000  # more is the command line's job (hrnet-explorer space sample)
PROGRESS_STEPS = 8
DEFAULT_SPACE = """\
# Around HRNet-W32 (pose), at input 128x96.
# Each key of `sample` draws one value of the
# base's concise config: {int: [lo, hi]},
# {float: [lo, hi]} (dist: uniform,
# log_uniform, power2, normal), {choice: [..]}.
name: w32_small
base: pose_hrnet_w32_256x192
samples: 24
seed: 0
sample:
  width: {int: [8, 32], step: 2}
  blocks: {int: [1, 2]}
  modules: {choice: [[1, 1, 1], [1, 2, 1], [1, 4, 3]]}
  fusion: {choice: [all, none, final_only]}
  input_size: {choice: [[128, 96]]}
"""
AXES = {  # sample field -> (axis label, scale)
    "params": ("params (M)", 1e-6),
    "gflops": ("GFLOPs", 1.0),  # the paper's: Conv2d + Linear multiply-adds / 2**30, batch 1
    "activations": ("activations (M)", 1e-6),
    "latency_ms": ("latency (ms, batch 1)", 1.0),
    "ap": ("AP (COCO, 0..1)", 1.0),
}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


# ---- the space text ------------------------------------------------------------------------------


def read_space_text(text: str) -> Space:
    """The space the editor's ``text`` describes (``analysis.space.parse_space``; a relative ``base`` path is read
    from the project). Raises ``ConfigError`` / ``SpaceError``: one line naming the field (``space: samples: ...``),
    also for more than ``MAX_APP_SAMPLES`` samples."""
    data = load_yaml(text, SOURCE)
    space = parse_space(data, SOURCE, default_name="space")
    if space.samples > MAX_APP_SAMPLES:
        raise SpaceError(f"{SOURCE}: samples", f"{space.samples:,} is more than the app samples (at most "
                         f"{MAX_APP_SAMPLES:,}); use `hrnet-explorer space sample SPACE.yaml --out DIR` for more")
    return space


def top_value(text: str, key: str):
    """The top-level ``key`` of the space ``text`` (None when it is absent or the text is no YAML mapping)."""
    try:
        data = load_yaml(text, SOURCE)
    except hc.ConfigError:
        return None
    return data.get(key) if isinstance(data, dict) else None


def set_top_value(text: str, key: str, value) -> str:
    """``text`` with its top-level ``key: value`` line replaced (comments and layout kept), or the line added after
    the other top-level scalars when there is none."""
    line = f"{key}: {json.dumps(value)}"
    pattern = re.compile(rf"^{re.escape(key)}\s*:.*$", re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(line, text, count=1)
    anchor = re.search(r"^sample\s*:", text, re.MULTILINE)
    if anchor:
        return text[:anchor.start()] + line + "\n" + text[anchor.start():]
    return text + ("" if text.endswith("\n") or not text else "\n") + line + "\n"


# ---- sampling -------------------------------------------------------------------------------------


def chunk_sizes(n: int, steps: int = PROGRESS_STEPS) -> list[int]:
    """The growing sample counts that ``sample_with_progress`` asks for, ending at ``n``: the same seed draws the
    same sequence, so each is a prefix of the next (``steps`` at most, about evenly spaced)."""
    steps = max(1, min(steps, n))
    return sorted({math.ceil(n * (i + 1) / steps) for i in range(steps)})


def sample_with_progress(space: Space, on_progress: Callable[[int, int], None] | None = None) -> SampleRun:
    """``sample_space(space)`` with progress: ``sample_space`` takes no progress callback for the analytic counts,
    so it is asked for growing prefixes of the same deterministic draw sequence (``chunk_sizes``) and
    ``on_progress(accepted, n)`` is called after each. The last call is ``sample_space(space)`` itself, so the
    result (samples, draws, rejections) is exactly the command line's. Raises ``SpaceError`` as it does."""
    n = space.samples
    run = None
    for k in chunk_sizes(n):
        try:
            run = sample_space(space, n=k)
        except SpaceError:
            if k == n:
                raise
            continue  # a prefix has a smaller draw limit: the full count decides
        if on_progress:
            on_progress(len(run.samples), n)
    return run


# ---- populations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Population:
    """A sampled space: ``name``, the space ``text`` it was sampled from, ``samples`` (rows as ``samples.jsonl``,
    with ``ap`` where a result says so), ``draws``, ``rejected`` (a line) and ``source`` (``sampled here`` or the
    folder it was read from)."""

    name: str
    text: str
    samples: tuple[dict, ...]
    draws: int | None
    rejected: str
    source: str

    def sample(self, sid: str) -> dict:
        """The sample of id ``sid``. Raises ``KeyError``."""
        for s in self.samples:
            if s["id"] == sid:
                return s
        raise KeyError(sid)

    @property
    def ids(self) -> list[str]:
        """The samples' ids in sampling order."""
        return [s["id"] for s in self.samples]

    @property
    def trained(self) -> int:
        """How many samples have an AP."""
        return sum(1 for s in self.samples if s.get("ap") is not None)


def sampled_population(space: Space, text: str, run: SampleRun) -> Population:
    """The ``Population`` of a ``sample_space`` run of ``space`` (sampled from the editor's ``text``)."""
    return Population(space.name, text, run.samples, run.draws, run.rejection_text(), "sampled here")


def folder_population(folder: str | Path) -> Population:
    """The population of the space folder ``folder`` (``analysis.space.report.load_population``), each done
    sample with its ``ap``. Raises ``SpaceFolderError`` / ``SpaceError`` for a folder that cannot be read."""
    pop = load_population(folder)
    ap = {s["id"]: s["ap"] for s in pop.done}
    rows = tuple({**s, "ap": ap[s["id"]]} if s["id"] in ap else dict(s) for s in pop.samples)
    text = (Path(folder) / SPACE_FILE).read_text(encoding="utf-8")
    return Population(pop.space.name, text, rows, None, "", str(folder))


def space_folders(root: str | Path) -> list[Path]:
    """The space folders (``space sample --out``) directly under ``root``, by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and is_space_folder(p)), key=lambda p: p.name)


def trained_folders(root: str | Path) -> list[Path]:
    """The space folders under ``root`` that hold results (``results.jsonl``)."""
    return [p for p in space_folders(root) if (p / RESULTS_FILE).is_file()]


def save_population(pop: Population, root: str | Path, name: str) -> Path:
    """Write ``pop`` as the space folder ``root/name`` (``space.yaml``, ``samples.jsonl``, the marker) the way
    ``space sample --out`` does, via ``analysis.space.space_folder``. Raises ``SpaceFolderError`` for a folder the
    tool may not write into (or one with results), ``SpaceError`` for a bad name. Returns the folder."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SpaceError("folder name", f"must be 1-64 letters, digits, _ . - (starting with a letter or digit), "
                         f"got {name!r}")
    space = read_space_text(pop.text)
    out = check_space_out(Path(root) / name)
    rows = "".join(json.dumps({k: v for k, v in s.items() if k != "ap"}, separators=(",", ":")) + "\n"
                   for s in pop.samples)
    write_files(out, SPACE_MARKER, {SPACE_FILE: space.to_yaml(len(pop.samples)), SAMPLES_FILE: rows})
    return out


def sample_config(pop: Population, sid: str):
    """The parsed config of sample ``sid`` (``hrnet_core.load_config`` of its concise mapping)."""
    return hc.load_config(pop.sample(sid)["config"])


# ---- the scatter ----------------------------------------------------------------------------------


def axis_options(pop: Population) -> dict[str, str]:
    """Field -> label of the scatter's possible axes: the complexity counts every sample has (``latency_ms`` where
    measured) and ``ap`` where at least one sample has a result."""
    out = {}
    for key, (label, _) in AXES.items():
        have = [s.get(key) is not None for s in pop.samples]
        if pop.samples and (any(have) if key == "ap" else all(have)):
            out[key] = label
    return out


def knob_keys(pop: Population) -> list[str]:
    """The sampled keys, in the space file's order."""
    return list(pop.samples[0]["knobs"]) if pop.samples else []


def value_text(value) -> str:
    """A knob value as the hover and the colour legend show it: ``16``, ``all``, ``[1,2,1]``."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True)
class Scatter:
    """The scatter's data: per point ``ids``, ``x``, ``y`` (scaled: ``AXES``), ``colour`` (a number per point) and
    ``hover`` (the id and the knob values); ``colour_ticks`` ``(codes, labels)`` for a knob whose values are no
    single numbers (None for a numeric one). Samples without a value on an axis (no AP yet) are left out."""

    ids: tuple[str, ...]
    x: tuple[float, ...]
    y: tuple[float, ...]
    colour: tuple[float, ...]
    hover: tuple[str, ...]
    x_label: str
    y_label: str
    colour_label: str
    colour_ticks: tuple | None


def scatter_data(pop: Population, x: str, y: str, colour: str) -> Scatter:
    """The ``Scatter`` of ``pop``: ``x`` and ``y`` fields of ``AXES``, coloured by knob ``colour``."""
    rows = [s for s in pop.samples if s.get(x) is not None and s.get(y) is not None]
    values = [s["knobs"].get(colour) for s in rows]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if numeric:
        codes, ticks = [float(v) for v in values], None
    else:
        labels = sorted({value_text(v) for v in values})
        codes = [float(labels.index(value_text(v))) for v in values]
        ticks = (tuple(range(len(labels))), tuple(labels))
    hover = tuple("<br>".join([f"<b>{s['id']}</b>"] + [f"{k}: {value_text(v)}" for k, v in s["knobs"].items()])
                  for s in rows)
    return Scatter(ids=tuple(s["id"] for s in rows), x=tuple(s[x] * AXES[x][1] for s in rows),
                   y=tuple(s[y] * AXES[y][1] for s in rows), colour=tuple(codes), hover=hover,
                   x_label=AXES[x][0], y_label=AXES[y][0], colour_label=colour, colour_ticks=ticks)


def scatter_figure(data: Scatter, log: bool = False):
    """The population as one plotly marker trace (``customdata``: each point's id, for hover and selection);
    ``log``: logarithmic axes (AP stays linear)."""
    import plotly.graph_objects as go

    colorbar = {"title": {"text": data.colour_label}}
    if data.colour_ticks:
        colorbar.update(tickvals=list(data.colour_ticks[0]), ticktext=list(data.colour_ticks[1]))
    marker = {"size": 10, "color": list(data.colour), "colorscale": "Viridis", "showscale": True,
              "colorbar": colorbar, "line": {"width": 0.5, "color": "#333"}, "opacity": 0.85}
    fig = go.Figure(go.Scatter(x=list(data.x), y=list(data.y), mode="markers", name="samples", marker=marker,
                               customdata=[[i] for i in data.ids], text=list(data.hover),
                               hovertemplate="%{text}<br>x: %{x:.4g}<br>y: %{y:.4g}<extra></extra>"))
    for update, label, values in ((fig.update_xaxes, data.x_label, data.x), (fig.update_yaxes, data.y_label, data.y)):
        if log and not label.startswith("AP") and values and min(values) > 0:
            ticks = log_ticks(min(values), max(values))  # 1, 2, 5, 10, 20: not plotly's bare "2" for 20
            update(type="log", **({"tickvals": ticks, "ticktext": [f"{t:g}" for t in ticks]} if len(ticks) >= 2 else {}))
    fig.update_layout(xaxis_title=data.x_label, yaxis_title=data.y_label, height=460,
                      margin={"t": 30, "l": 60, "r": 20, "b": 50}, clickmode="event+select")
    return fig


def log_ticks(lo: float, hi: float) -> list[float]:
    """Tick values for a log axis over ``[lo, hi]`` (both > 0): 1-2-5 per decade, or 1-1.5-2-3-5-7 where that
    gives fewer than four ticks inside."""
    out = []
    for mantissas in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7)):
        out = [m * 10.0**k for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
               for m in mantissas]
        out = [float(f"{t:.6g}") for t in out if lo / 1.15 <= t <= hi * 1.15]
        if len(out) >= 4:
            break
    return out


def selected_id(points) -> str | None:
    """The sample id of the first point of a chart selection (``customdata``), or None."""
    for p in points or ():
        data = p.get("customdata") if isinstance(p, dict) else None
        if isinstance(data, list) and data and isinstance(data[0], str):
            return data[0]
        if isinstance(data, str):
            return data
    return None


# ---- EDFs of two trained spaces -------------------------------------------------------------------


@dataclass(frozen=True)
class EdfComparison:
    """The error EDFs (error = 1 - AP) of two trained space folders and ``scipy.stats.ks_2samp`` between them
    (``ks``: ``statistic``, ``p_value``; None when either has no done sample)."""

    labels: tuple[str, str]
    done: tuple[int, int]
    figure: object
    ks: dict | None


def edf_comparison(a: str | Path, b: str | Path) -> EdfComparison:
    """The ``EdfComparison`` of the space folders ``a`` and ``b`` (``analysis.space.report``'s populations and
    ``population_stats``' EDF and KS). Raises ``SpaceFolderError`` / ``SpaceError`` for a folder that cannot be
    read."""
    pops = [load_population(a), load_population(b)]
    labels = [p.label for p in pops]
    if labels[0] == labels[1]:
        labels = [f"{p.label} ({Path(p.folder).name})" for p in pops]
    series = []
    for i, (p, label) in enumerate(zip(pops, labels)):
        e, f = error_edf([s["error"] for s in p.done])
        series.append(Series(label, tuple(e), tuple(f), mode="step", color=i))
    spec = FigureSpec("edf", "Error EDF (error = 1 - AP)", (Panel("", "error (1 - AP)", "cumulative fraction",
                                                                   tuple(series)),))
    fig = to_plotly(spec)
    fig.update_layout(height=380, margin={"t": 60})
    errors = [[s["error"] for s in p.done] for p in pops]
    ks = ks_two_sample(*errors) if all(errors) else None
    return EdfComparison((labels[0], labels[1]), (len(errors[0]), len(errors[1])), fig, ks)


__all__ = ["AXES", "DEFAULT_SPACE", "MAX_APP_SAMPLES", "EdfComparison", "Population", "Scatter", "axis_options",
           "chunk_sizes", "edf_comparison", "folder_population", "knob_keys", "log_ticks", "read_space_text",
           "sample_config", "sample_with_progress", "sampled_population", "save_population", "scatter_data",
           "scatter_figure", "selected_id", "set_top_value", "space_folders", "top_value", "trained_folders",
           "value_text"]
