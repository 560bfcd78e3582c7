"""``space report``: compare trained design spaces (Radosavovic et al. 2019, "On Network Design Spaces for Visual
Recognition": distribution estimates instead of a few best models).

Each space folder gives its samples (``samples.jsonl``) and results (``results.jsonl``, written by the training
step; ``analysis.space.space_folder``). A sample's **error is 1 - AP** (COCO keypoint AP as a fraction). Failed
samples are counted and listed, never plotted; samples with no result yet are counted as pending.

``summary.json``:

- ``spaces``: per space its folder, counts (samples, done, failed, pending), the failed ids with their errors and
  the best sample;
- ``edf``: per space the error EDF points (``error``, ``cdf``) and the complexity-normalized EDFs by ``params`` and
  by ``gflops`` (``bins``, ``range``: one range and bin count for every space, so the curves compare;
  ``analysis.space.population_stats``), null where the populations' complexities do not overlap;
- ``ks``: ``scipy.stats.ks_2samp`` between the first two spaces' errors (``statistic``, ``p_value``), null with
  fewer than two spaces with done samples;
- ``pareto``: per space (and ``all`` spaces together, when there are several) the ids on the front of error vs
  ``params``, ``gflops``, ``activations`` and, where every done sample has it, ``latency_ms``;
- ``knob_effect``: per space and sampled key, error vs knob value: ``scipy.stats.spearmanr`` rho and p, and the
  mean error per value when the knob takes few values (a choice knob's x is its position in the space file's list;
  a per-entry list knob gives one effect per entry, ``modules[1]``).

``report.html`` draws the EDFs, error vs each complexity with the Pareto fronts, and one knob panel per key
(plotly); ``report.md`` shows the same figures as PNG (and links the SVGs) in ``figures/``.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.space.figures import FigureSpec, Panel, Series, image_bytes, to_plotly
from analysis.space.knobs import ChoiceKnob
from analysis.space.population_stats import (
    common_bins,
    error_edf,
    ks_two_sample,
    normalized_edf,
    normalized_weights,
    pareto_front,
    spearman,
)
from analysis.space.space_file import Space, read_space
from analysis.space.space_folder import (
    REPORT_MARKER,
    SPACE_FILE,
    SpaceFolderError,
    is_space_folder,
    read_results,
    read_samples,
    write_files,
)

ERROR_NOTE = "error = 1 - AP, AP = COCO keypoint AP (OKS) as a fraction 0..1"
COMPLEXITY = {  # summary key -> (axis label, scale applied to the sample's value for plotting)
    "params": ("params (M)", 1e-6),
    "gflops": ("GFLOPs (paper: conv+linear MACs / 2**30)", 1.0),
    "activations": ("activations (M elements)", 1e-6),
    "latency_ms": ("batch-1 latency (ms)", 1.0),
}
NORMALIZE_BY = ("params", "gflops")
MAX_GROUPS = 12  # a knob with at most this many values gets its mean error per value


@dataclass(frozen=True)
class Population:
    """One space folder's trained population: ``done`` rows are samples with ``error`` (1 - ap) and their result."""

    label: str
    folder: Path
    space: Space
    samples: tuple[dict, ...]
    done: tuple[dict, ...]
    failed: tuple[dict, ...]

    @property
    def pending(self) -> int:
        """Samples with no result yet."""
        return len(self.samples) - len(self.done) - len(self.failed)


def load_population(folder: str | Path, label: str | None = None) -> Population:
    """The population of the space folder ``folder``. Raises ``SpaceFolderError`` (not a space folder, a bad line of
    its files) or ``SpaceError`` (its ``space.yaml``)."""
    folder = Path(folder)
    if not is_space_folder(folder):
        raise SpaceFolderError(f"{folder}: not a space folder (space sample --out makes one: {SPACE_FILE}, "
                               "samples.jsonl and its marker)")
    space = read_space(folder / SPACE_FILE)
    samples = read_samples(folder)
    results = read_results(folder, {s["id"] for s in samples})
    done, failed = [], []
    for s in samples:
        r = results.get(s["id"])
        if r is None:
            continue
        if r["status"] == "done":
            done.append({**s, "ap": float(r["ap"]), "error": 1.0 - float(r["ap"]), "epochs": r["epochs"],
                         "seconds": r["seconds"]})
        else:
            failed.append({"id": s["id"], "error": r.get("error") or "failed", "epochs": r["epochs"],
                           "seconds": r["seconds"]})
    return Population(label or space.name, folder, space, tuple(samples), tuple(done), tuple(failed))


def _unique_labels(pops: list[Population]) -> list[Population]:
    seen: dict[str, int] = {}
    out = []
    for p in pops:
        seen[p.label] = seen.get(p.label, 0) + 1
        out.append(p if seen[p.label] == 1 else Population(f"{p.label} ({p.folder})", p.folder, p.space, p.samples,
                                                           p.done, p.failed))
    return out


def edf_summary(pops: list[Population]) -> dict:
    """The ``edf`` entry of ``summary.json`` (module docstring)."""
    out = {}
    ranges = {c: common_bins([[s[c] for s in p.done] for p in pops if p.done]) for c in NORMALIZE_BY}
    for p in pops:
        errors = [s["error"] for s in p.done]
        e, f = error_edf(errors)
        entry = {"n": len(errors), "error": e, "cdf": f, "min": min(errors) if errors else None,
                 "mean": float(np.mean(errors)) if errors else None, "normalized": {}}
        for c in NORMALIZE_BY:
            binning = ranges[c]
            if binning is None or not p.done:
                entry["normalized"][c] = None
                continue
            bins, (lo, hi) = binning
            inside = [s for s in p.done if lo <= s[c] <= hi]
            w = normalized_weights([s[c] for s in inside], bins, (lo, hi))
            ne, nf = normalized_edf([s["error"] for s in inside], w)
            entry["normalized"][c] = {"bins": bins, "range": [lo, hi], "n": len(inside), "error": ne, "cdf": nf}
        out[p.label] = entry
    return out


def pareto_summary(pops: list[Population]) -> dict:
    """The ``pareto`` entry: ids on the front of error vs each complexity, per space and (several spaces) ``all``."""
    groups = [(p.label, list(p.done)) for p in pops]
    if len(pops) > 1:
        groups.append(("all", [s for p in pops for s in p.done]))
    out = {}
    for label, rows in groups:
        fronts = {}
        for c in COMPLEXITY:
            if rows and all(s.get(c) is not None for s in rows):
                fronts[c] = pareto_front([s["id"] for s in rows], [s[c] for s in rows], [s["error"] for s in rows])
        out[label] = fronts
    return out


def _short(value, limit: int = 18) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def knob_effects(p: Population) -> dict:
    """The ``knob_effect`` entry of one space: per key (or list entry), the x used, Spearman rho / p and groups."""
    out = {}
    for knob in p.space.knobs:
        values = [s["knobs"].get(knob.key) for s in p.done]
        errors = [s["error"] for s in p.done]
        if isinstance(knob, ChoiceKnob):
            xs = [knob.index(v) for v in values]
            entries = [(knob.key, xs, "choice index (order in the space file)",
                        [_short(v) for v in knob.values()])]
        elif getattr(knob, "per_entry", 0):
            entries = [(f"{knob.key}[{i}]", [v[i] if isinstance(v, list) and len(v) > i else None for v in values],
                        "value", None) for i in range(knob.per_entry)]
        else:
            entries = [(knob.key, values, "value", None)]
        for key, xs, xname, labels in entries:
            pairs = [(x, e) for x, e in zip(xs, errors) if isinstance(x, (int, float)) and not isinstance(x, bool)]
            eff = {"x": xname, **spearman([x for x, _ in pairs], [e for _, e in pairs])}
            distinct = sorted({x for x, _ in pairs})
            if len(distinct) <= MAX_GROUPS:
                eff["groups"] = [{"value": labels[int(v)] if labels else v, "x": v,
                                  "n": sum(1 for x, _ in pairs if x == v),
                                  "mean_error": float(np.mean([e for x, e in pairs if x == v])),
                                  "min_error": float(min(e for x, e in pairs if x == v))} for v in distinct]
            if labels:
                eff["choices"] = labels
            out[key] = eff
    return out


def build_summary(pops: list[Population]) -> dict:
    """``summary.json`` of the populations (module docstring)."""
    spaces = []
    for p in pops:
        best = min(p.done, key=lambda s: s["error"]) if p.done else None
        spaces.append({"name": p.label, "space": p.space.name, "folder": str(p.folder), "samples": len(p.samples),
                       "done": len(p.done), "failed": len(p.failed), "pending": p.pending,
                       "failed_ids": [{"id": f["id"], "error": f["error"]} for f in p.failed],
                       "best": {"id": best["id"], "error": best["error"], "ap": best["ap"]} if best else None})
    trained = [p for p in pops if p.done]
    if len(trained) >= 2:
        a, b = trained[0], trained[1]
        ks = {"spaces": [a.label, b.label], "n": [len(a.done), len(b.done)],
              **ks_two_sample([s["error"] for s in a.done], [s["error"] for s in b.done])}
    else:
        ks = None
    return {"error": ERROR_NOTE, "spaces": spaces, "edf": edf_summary(pops), "ks": ks,
            "ks_note": "scipy.stats.ks_2samp (two-sided) between the first two spaces with done samples"
            if ks else "needs two spaces with done samples",
            "pareto": pareto_summary(pops), "knob_effect": {p.label: knob_effects(p) for p in pops}}


# ---- figures -----------------------------------------------------------------------------------
def figure_specs(pops: list[Population], summary: dict) -> list[FigureSpec]:
    """The report's figures: EDFs, error vs complexity with the Pareto fronts, and one knob figure per space."""
    specs = []
    edf = summary["edf"]
    panels = []
    for title, pick in (("error EDF", None), *((f"error EDF normalized by {c}", c) for c in NORMALIZE_BY)):
        series = []
        for i, p in enumerate(pops):
            entry = edf[p.label] if pick is None else edf[p.label]["normalized"].get(pick)
            if entry and entry["error"]:
                series.append(Series(p.label, tuple(entry["error"]), tuple(entry["cdf"]), "step", i))
        if series:
            xlabel = "error" if pick is None else f"error | {pick}"
            panels.append(Panel(title, xlabel, "cumulative prob.", tuple(series)))
    if panels:
        specs.append(FigureSpec("edf", "Error EDFs (Radosavovic et al. 2019)", tuple(panels)))
    panels = []
    for c, (label, scale) in COMPLEXITY.items():
        series = []
        for i, p in enumerate(pops):
            front = set(summary["pareto"][p.label].get(c, []))
            if not front:
                continue
            rows = list(p.done)
            series.append(Series(p.label, tuple(s[c] * scale for s in rows), tuple(s["error"] for s in rows),
                                 "markers", i, tuple(s["id"] for s in rows)))
            line = sorted((s[c] * scale, s["error"], s["id"]) for s in rows if s["id"] in front)
            series.append(Series(f"{p.label} Pareto front", tuple(x for x, _, _ in line),
                                 tuple(y for _, y, _ in line), "step", i, tuple(t for _, _, t in line)))
        if series:
            panels.append(Panel(f"error vs {c}", label, "error", tuple(series)))
    if panels:
        specs.append(FigureSpec("complexity", "Error against complexity, with the Pareto fronts", tuple(panels)))
    for i, p in enumerate(pops):
        panels = []
        for key, eff in summary["knob_effect"][p.label].items():
            xs, es, ids = _knob_points(p, key, eff)
            if not xs:
                continue
            rho = "n/a" if eff["rho"] is None else f"{eff['rho']:+.2f}, p {eff['p_value']:.2g}"
            ticks = (tuple(range(len(eff["choices"]))), tuple(eff["choices"])) if eff.get("choices") else None
            panels.append(Panel(f"Spearman rho {rho}", key, "error",
                                (Series(p.label, tuple(xs), tuple(es), "markers", i, tuple(ids)),), ticks))
        if panels:
            specs.append(FigureSpec(f"knobs_{i + 1}", f"Error against each knob: {p.label}", tuple(panels)))
    return specs


def _knob_points(p: Population, key: str, eff: dict):
    base, _, entry = key.partition("[")
    knob = p.space.knob(base if entry else key)
    xs, es, ids = [], [], []
    for s in p.done:
        v = s["knobs"].get(knob.key)
        if entry:
            k = int(entry.rstrip("]"))
            v = v[k] if isinstance(v, list) and len(v) > k else None
        elif isinstance(knob, ChoiceKnob):
            v = knob.index(v)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            xs.append(v)
            es.append(s["error"])
            ids.append(s["id"])
    return xs, es, ids


# ---- writing -----------------------------------------------------------------------------------
def _fmt(v, spec: str = ".4f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _listing(ids: list, limit: int = 8) -> str:
    return ", ".join(ids[:limit]) + (f" ... ({len(ids) - limit} more)" if len(ids) > limit else "")


def _space_rows(summary: dict) -> list[list[str]]:
    return [[s["name"], s["folder"], str(s["samples"]), str(s["done"]), str(s["failed"]), str(s["pending"]),
             f"{_fmt(s['best']['error'])} ({s['best']['id']})" if s["best"] else "-",
             _fmt(summary["edf"][s["name"]]["mean"])] for s in summary["spaces"]]


SPACE_HEAD = ["space", "folder", "samples", "done", "failed", "pending", "best error (id)", "mean error"]
KNOB_HEAD = ["space", "knob", "x", "n", "Spearman rho", "p"]


def _knob_rows(summary: dict) -> list[list[str]]:
    return [[space, key, e["x"], str(e["n"]), _fmt(e["rho"], "+.3f"), _fmt(e["p_value"], ".3g")]
            for space, effects in summary["knob_effect"].items() for key, e in effects.items()]


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in r] for r in rows]
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |"
                                                                                    for r in esc])


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    return ("<table class='t'><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows) + "</table>")


def _ks_text(summary: dict) -> str:
    ks = summary["ks"]
    if not ks:
        return f"KS test: {summary['ks_note']}."
    return (f"KS test ({summary['ks_note']}): {ks['spaces'][0]} (n={ks['n'][0]}) vs {ks['spaces'][1]} "
            f"(n={ks['n'][1]}): D = {ks['statistic']:.3f}, p = {ks['p_value']:.3g}.")


def _pareto_lines(summary: dict) -> list[str]:
    return [f"- {label}, error vs {c}: {_listing(ids)}" for label, fronts in summary["pareto"].items()
            for c, ids in fronts.items()]


def _failed_lines(summary: dict) -> list[str]:
    return [f"- {s['name']}: {f['id']}: {f['error']}" for s in summary["spaces"] for f in s["failed_ids"]]


def write_report(folders: list[str | Path], out: str | Path) -> dict[str, Path]:
    """Read the space folders and write ``summary.json``, ``report.html``, ``report.md`` and ``figures/*.png|svg``
    into ``out`` (which the caller checked: ``space_folder.check_out_folder``). Returns ``name -> path``. Raises
    ``SpaceFolderError`` / ``SpaceError`` before writing anything."""
    pops = _unique_labels([load_population(f) for f in folders])
    summary = build_summary(pops)
    specs = figure_specs(pops, summary)
    files: dict[str, str | bytes] = {"summary.json": json.dumps(summary, indent=1)}
    images = {spec.name: image_bytes(spec) for spec in specs}
    for name, data in images.items():
        files[f"figures/{name}.png"] = data["png"]
        files[f"figures/{name}.svg"] = data["svg"]
    title = "Design-space report: " + ", ".join(p.label for p in pops)
    md = [f"# {title}", "", f"Error: {ERROR_NOTE}. Failed samples are counted and listed, not plotted.", "",
          _md_table(SPACE_HEAD, _space_rows(summary)), "", _ks_text(summary), "", "## Figures", ""]
    for spec in specs:
        md += [f"![{spec.title}](figures/{spec.name}.png)", "", f"{spec.title} ([SVG](figures/{spec.name}.svg))", ""]
    if not specs:
        md += ["No trained samples yet (results.jsonl of each space folder).", ""]
    md += ["## Pareto fronts (error vs complexity)", ""] + (_pareto_lines(summary) or ["- none yet"]) + [""]
    md += ["## Knob effects (Spearman rank correlation of error with the knob)", "",
           _md_table(KNOB_HEAD, _knob_rows(summary)), ""]
    failed = _failed_lines(summary)
    md += ["## Failed samples", ""] + (failed or ["- none"]) + [""]
    files["report.md"] = "\n".join(md)
    e = html.escape
    body = [f"<h1>{e(title)}</h1>", f"<p>Error: {e(ERROR_NOTE)}. Failed samples are counted and listed, not "
            "plotted.</p>", _html_table(SPACE_HEAD, _space_rows(summary)), f"<p>{e(_ks_text(summary))}</p>"]
    for i, spec in enumerate(specs):
        fig = to_plotly(spec).to_html(full_html=False, include_plotlyjs=i == 0, default_width="100%")
        body.append(f"<div class='fig'>{fig}</div>")
    body.append("<h2>Pareto fronts</h2><ul>" + "".join(f"<li>{e(x[2:])}</li>" for x in _pareto_lines(summary))
                + "</ul>")
    body.append("<h2>Knob effects</h2>" + _html_table(KNOB_HEAD, _knob_rows(summary)))
    body.append("<h2>Failed samples</h2><ul>" + ("".join(f"<li>{e(x[2:])}</li>" for x in failed) or "<li>none</li>")
                + "</ul>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table.t{border-collapse:collapse;margin:1em 0}table.t td,table.t th{border:1px solid #ccc;"
             "padding:4px 8px}table.t th{background:#f4f4f4}.fig{margin:1.5em 0}")
    files["report.html"] = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
                            f"<style>{style}</style></head><body>{''.join(body)}</body></html>")
    return write_files(Path(out), REPORT_MARKER, files)


__all__ = ["ERROR_NOTE", "Population", "build_summary", "edf_summary", "figure_specs", "knob_effects",
           "load_population", "pareto_summary", "write_report"]
