"""The ablation report: ``report.md``, ``report.html`` (plotly), ``summary.csv``, ``summary.json``.

One summary row per variant: fusions, params and GFLOPs in the paper convention (from
``analysis.complexity.analytic``), training images/s, peak GPU memory, wall time and the final evaluation
(AP, AR, PCK, left/right swaps) as mean and standard deviation over the seeds. The paper's own
ablation table is read from ``../shared/model_zoo.md`` at report time and shown beside the measured
numbers, with a plain list of how this run's data and schedule differ from the paper's.

The run folder is read through ``analysis.ablation.run_folder`` (bounded and validated: a bad request or
metrics row refuses the report with one line naming the file, line and field). The four files are
written atomically, after checking that none of their places holds a folder or a link.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import hrnet_core as hc
from analysis.ablation.effects import Effect, effects_figure, effects_table, final_per_seed, fusion_effects
from analysis.ablation.evaluate import METRIC_FIELDS
from analysis.ablation.files import REPORT_NAMES, write_text_atomic
from analysis.ablation.joints import joint_figure, joint_table
from analysis.ablation.progress import read_progress
from analysis.ablation.run_folder import check_output_file, job_dir, read_env, read_metrics, read_request
from analysis.settings import shared_dir

SUMMARY_METRICS = ("AP", "AP50", "AP75", "AR", "PCK@0.05", "PCK@0.1", "LR-swap", "train_loss")
TABLE_METRICS = ("AP", "AR", "PCK@0.05", "PCK@0.1", "LR-swap")  # shown as percentages


@dataclass(frozen=True)
class ReportPaths:
    md: Path
    html: Path
    csv: Path
    json: Path

    def as_dict(self) -> dict[str, Path]:
        return {"md": self.md, "html": self.html, "csv": self.csv, "json": self.json}


# ---- reading a run -------------------------------------------------------------------------
def _request(run_dir: Path) -> dict:
    """The run's checked request, base config included (``run_folder.read_request``).
    Raises ``UserInputError``: no ``ablation.json``, or one line naming its bad field."""
    req = read_request(run_dir, require_base=True)
    if req is None:
        raise hc.UserInputError(f"{run_dir}: not an ablation run (no ablation.json)")
    req.setdefault("name", run_dir.name)
    return req


def load_metrics(run_dir: str | Path) -> pd.DataFrame:
    """Every ``metrics.jsonl`` row of the run with ``variant`` and ``seed`` columns (long format).
    Raises ``RunFolderError`` naming the file, line and field of a row that cannot be trusted."""
    run_dir = Path(run_dir)
    req = _request(run_dir)
    frames = []
    for v in req["variants"]:
        for s in req["seeds"]:
            rows = read_metrics(job_dir(run_dir, v["name"], s))
            if rows:
                df = pd.DataFrame(rows)
                df.insert(0, "seed", s)
                df.insert(0, "variant", v["name"])
                frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["variant", "seed", "epoch"])
    return pd.concat(frames, ignore_index=True)


def _complexity(req: dict) -> dict[str, tuple[int, float]]:
    """``variant -> (params, gflops_paper)`` from ``analysis.complexity.analytic``."""
    from analysis.ablation.variants import bits_schedule
    from analysis.complexity import analyze

    base = hc.load_config(req["base"])
    out = {}
    for v in req["variants"]:
        cfg = base.with_fusion(bits_schedule(v["schedule"], base, v["name"]))
        rep = analyze(cfg)
        out[v["name"]] = (int(rep.params), float(rep.gflops_paper))
    return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return float("nan"), float("nan")
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0


def load_summary(run_dir: str | Path, metrics: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per variant: ``variant, fusions, schedule, state, seeds_done, params, gflops,
    images_per_s, peak_mem_mib, wall_s, epochs`` and ``<metric>_mean`` / ``<metric>_std`` over seeds
    for AP, AP50, AP75, AR, PCK@0.05, PCK@0.1, LR-swap and the final train loss (fractions, not %).
    ``metrics``: the run's ``load_metrics`` when already at hand."""
    run_dir = Path(run_dir)
    req = _request(run_dir)
    progress = read_progress(run_dir)
    metrics = load_metrics(run_dir) if metrics is None else metrics
    cx = _complexity(req)
    rows = []
    for v in req["variants"]:
        name = v["name"]
        prog = progress[progress["variant"] == name]
        m = metrics[metrics["variant"] == name] if not metrics.empty else metrics
        finals, ips, mem, wall, errors = [], [], [], [], []
        for s in req["seeds"]:
            ms = m[m["seed"] == s] if not m.empty else m
            st = prog[prog["seed"] == s]
            if not st.empty and st.iloc[0]["state"] == "failed" and st.iloc[0]["error"]:
                errors.append(f"seed {s}: {st.iloc[0]['error']}")
            if ms.empty:
                continue
            evaluated = ms[ms["AP"].notna()] if "AP" in ms else ms.iloc[0:0]
            if not st.empty and st.iloc[0]["state"] == "done" and not evaluated.empty:
                final = evaluated.iloc[-1].to_dict()
                final["train_loss"] = ms.iloc[-1]["train_loss"]
                finals.append(final)
                wall.append(float(ms.iloc[-1]["wall_s"]))
            # Steady-state throughput: the first epoch (workers starting, cudnn autotuning) left out.
            steady = ms["images_per_s"].iloc[1:] if len(ms) > 1 else ms["images_per_s"]
            ips.append(float(steady.median()))
            if "peak_mem_mib" in ms and ms["peak_mem_mib"].notna().any():
                mem.append(float(ms["peak_mem_mib"].max()))
        states = prog["state"].tolist()
        state = "done" if states and all(x == "done" for x in states) else (
            "failed" if "failed" in states else ("running" if "running" in states else
                                                 ("stopped" if "stopped" in states else "queued")))
        row = {
            "variant": name,
            "fusions": v["fusions"],
            "schedule": v["schedule"],
            "state": state,
            "seeds_done": len(finals),
            "seeds": len(req["seeds"]),
            "params": cx[name][0],
            "gflops": cx[name][1],
            "images_per_s": float(np.mean(ips)) if ips else float("nan"),
            "peak_mem_mib": float(np.max(mem)) if mem else float("nan"),
            "wall_s": float(np.mean(wall)) if wall else float("nan"),
            "epochs": req["recipe"]["epochs"],
            "error": "; ".join(errors) or None,
        }
        for key in SUMMARY_METRICS:
            mean, std = _mean_std([f.get(key) for f in finals])
            row[f"{key}_mean"], row[f"{key}_std"] = mean, std
        rows.append(row)
    return pd.DataFrame(rows)


# ---- the paper's table ---------------------------------------------------------------------
def paper_table(path: Path | None = None) -> tuple[pd.DataFrame | None, str]:
    """The paper's fusion-ablation rows (``label, fusions, definition, AP``) from ``model_zoo.md``,
    and a note saying where they came from (or why they are missing)."""
    path = path or shared_dir() / "model_zoo.md"
    if not path.is_file():
        return None, f"{path} not found: the paper's table is not shown (it is read from ../shared at report time)."
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("#") and "ablation" in ln.lower()), None)
    if start is None:
        return None, f"{path} has no 'Paper ablations' section: the paper's table is not shown."
    heading = lines[start].lstrip("#").strip()
    rows = []
    in_table = False
    for ln in lines[start + 1:]:
        if ln.startswith("#"):
            break
        if ln.startswith("|"):
            cells = [c.strip() for c in ln.strip().strip("|").split("|")]
            m = re.search(r"(\d+)\s+fusions?", cells[0])
            if m and len(cells) >= 3:
                try:
                    ap = float(cells[-1])
                except ValueError:
                    continue
                rows.append({"label": cells[0], "fusions": int(m.group(1)), "definition": cells[1], "AP": ap})
                in_table = True
        elif in_table:
            break
    if not rows:
        return None, f"{path}: no fusion rows found under '{heading}'."
    return pd.DataFrame(rows), f"{heading} - from {path}"


# ---- differences from the paper ------------------------------------------------------------
def differences(req: dict, env: dict | None) -> list[str]:
    """Plain sentences on how this run's data, model, schedule and evaluation differ from the paper's."""
    from analysis.ablation.recipes import load_recipe

    r = req["recipe"]
    paper = load_recipe("paper").to_dict()
    data = req.get("data") or {}
    out = []
    if data.get("kind") == "builtin":
        out.append(
            f"Data: the built-in synthetic figures ({data.get('train_images')} training images with "
            f"{data.get('train_persons')} persons, {data.get('val_images')} validation images with "
            f"{data.get('val_persons')} persons), not COCO train2017 / val2017. Absolute AP is not comparable "
            "to the paper's; only the ordering and the gaps between variants are.")
    else:
        out.append(f"Data: the COCO-format folder {data.get('path')} ({data.get('train_persons')} training and "
                   f"{data.get('val_persons')} validation persons); the paper used COCO train2017 / val2017.")
    warm = f" after a {r['warmup_epochs']:g}-epoch linear warm-up" if r.get("warmup_epochs") else ""
    if r.get("lr_schedule") == "cosine":
        out.append(f"Schedule: {r['epochs']} epochs, the learning rate following a cosine from {r['lr']:g} to 0{warm}, "
                   f"against the paper's {paper['epochs']} epochs with steps at {paper['lr_steps']}.")
    elif r["epochs"] != paper["epochs"] or r["lr_steps"] != paper["lr_steps"]:
        out.append(f"Schedule: {r['epochs']} epochs with the learning rate divided by {1 / r['lr_factor']:g} after "
                   f"epochs {r['lr_steps']}, against the paper's {paper['epochs']} epochs with steps at "
                   f"{paper['lr_steps']}.")
    else:
        out.append(f"Schedule: the paper's ({r['epochs']} epochs, steps at {r['lr_steps']}).")
    world = int(req.get("world_size") or 1)
    out.append(f"Batch: {r['batch_size']} per process x {world} process(es) = {r['batch_size'] * world} per step; "
               f"the official run used {paper['batch_size']} per GPU on 4 GPUs (128 per step). Adam, learning "
               f"rate {r['lr']:g} (paper {paper['lr']:g}).")
    in_hw = r.get("input_size") or req["base"].get("input_size")
    if list(in_hw) != list(paper["input_size"]):
        out.append(f"Input: {in_hw[0]}x{in_hw[1]} instead of {paper['input_size'][0]}x{paper['input_size'][1]}.")
    if r.get("model"):
        out.append(f"Model: the base config {req.get('base_source') or req['base'].get('name')} shrunk by the "
                   f"recipe ({', '.join(f'{k} {v}' for k, v in r['model'].items())}), not HRNet-W32.")
    else:
        out.append(f"Model: {req['base'].get('name')} (the paper: HRNet-W32); both trained from scratch, as "
                   "in the paper's ablation.")
    dev = (env or {}).get("device") or req.get("device_label") or req.get("device")
    prec = (env or {}).get("precision") or req.get("precision")
    if prec:
        official = "; the official code trains in float32" if prec.get("amp") else ""
        out.append(f"Precision: {prec.get('label')} ({prec.get('reason')}){official}.")
    elif dev and "cuda" in str(dev) and r.get("bf16"):
        out.append(f"Precision: bf16 autocast on {dev}; the official code trains in float32.")
    else:
        out.append(f"Precision: float32 on {dev}.")
    out.append("Evaluation: ground-truth person boxes (the official code's USE_GT_BBOX); the paper's COCO val "
               "figures use person-detector boxes. "
               + ("Flip test on." if r.get("flip_test") else "No flip test (the paper's results use one).")
               + (f" Only the first {r['val_limit']} validation images." if r.get("val_limit") else ""))
    if r.get("train_limit"):
        out.append(f"Training set cut to the first {r['train_limit']} images of the folder.")
    n = len(req.get("seeds", []))
    out.append(f"Seeds: {n} per variant (mean and sample standard deviation shown); the paper reports one run.")
    return out


# ---- formatting ----------------------------------------------------------------------------
def _pct(mean: float, std: float, seeds: int) -> str:
    if mean is None or math.isnan(mean):
        return "-"
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if seeds > 1 else f"{100 * mean:.1f}"


def _num(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, fmt)


def run_paper_table(run_dir: str | Path) -> tuple[pd.DataFrame | None, str]:
    """``paper_table()`` for the run in ``run_dir``: the HRNet paper's fusion ablation only when the run's base is
    a classic HRNet (another network's run compares with nothing published: None and a note saying so)."""
    arch = _request(Path(run_dir))["base"].get("arch", "hrnet")
    if arch != "hrnet":
        return None, (f"the paper's fusion ablation (Sun et al. 2019) is HRNet-W32's: not shown beside a run of "
                      f"arch {arch}")
    return paper_table()


def display_table(summary: pd.DataFrame, paper: pd.DataFrame | None) -> pd.DataFrame:
    """The human table: percentages, M params, and the paper's AP for the same number of fusions."""
    paper_ap = dict(zip(paper["fusions"], paper["AP"])) if paper is not None else {}
    rows = []
    for _, r in summary.iterrows():
        n = int(r["seeds_done"]) or 1
        row = {
            "variant": r["variant"],
            "fusions": int(r["fusions"]),
            "params (M)": f"{r['params'] / 1e6:.2f}",
            "GFLOPs": f"{r['gflops']:.3f}",
        }
        for key in TABLE_METRICS:
            row[f"{key} (%)"] = _pct(r[f"{key}_mean"], r[f"{key}_std"], n)
        row["images/s"] = _num(r["images_per_s"], ".0f")
        row["peak GPU mem (MiB)"] = _num(r["peak_mem_mib"], ".0f")
        row["wall (s)"] = _num(r["wall_s"], ".1f")
        row["seeds"] = f"{int(r['seeds_done'])}/{int(r['seeds'])}"
        row["paper AP (%)"] = _num(paper_ap.get(int(r["fusions"])), ".1f")
        rows.append(row)
    return pd.DataFrame(rows)


def _md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        out.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return "\n".join(out)


def _first_env(run_dir: Path, req: dict) -> dict | None:
    """The first job's usable ``env.json`` fields (``run_folder.read_env``: a bad field is left out)."""
    for v in req["variants"]:
        for s in req["seeds"]:
            env = read_env(job_dir(run_dir, v["name"], s))
            if env:
                return env
    return None


# ---- figures -------------------------------------------------------------------------------
def figures(metrics: pd.DataFrame, summary: pd.DataFrame, joints: pd.DataFrame | None = None) -> dict:
    """The report's plotly figures by file stem: ``train_loss``, ``val_ap``, ``ap_vs_gflops``,
    ``final_metrics`` and, when ``joints`` (``run_joint_table``) has rows, ``per_joint_ap``."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    colours = {v: qualitative.Plotly[i % 10] for i, v in enumerate(summary["variant"])}
    label = {r["variant"]: f"{r['variant']} ({int(r['fusions'])} fusion{'' if int(r['fusions']) == 1 else 's'})"
             for _, r in summary.iterrows()}
    figs = {}
    last = int(metrics["epoch"].max()) if not metrics.empty and "epoch" in metrics else 1
    for key, stem, title, ytitle in (("train_loss", "train_loss", "Training loss per epoch", "loss (weighted heatmap MSE)"),
                                     ("AP", "val_ap", "Validation AP per epoch", "OKS AP (%)")):
        fig = go.Figure()
        if not metrics.empty and key in metrics:
            for (variant, seed), g in metrics.groupby(["variant", "seed"], sort=False):
                g = g[g[key].notna()]
                if g.empty:
                    continue
                y = 100 * g[key] if key == "AP" else g[key]
                fig.add_trace(go.Scatter(x=g["epoch"], y=y, mode="lines+markers", name=f"{label[variant]} seed {seed}",
                                         line={"color": colours[variant]}, legendgroup=variant))
        fig.update_layout(title=title, xaxis_title="epoch", yaxis_title=ytitle, height=420)
        fig.update_xaxes(tick0=1, dtick=max(1, math.ceil(last / 10)))  # whole epochs only, about ten ticks
        if key == "train_loss":
            fig.update_yaxes(type="log")
        figs[stem] = fig

    ok = summary[summary["AP_mean"].notna()]
    fig = go.Figure()
    for _, r in ok.iterrows():
        fig.add_trace(go.Scatter(x=[r["gflops"]], y=[100 * r["AP_mean"]], mode="markers+text", text=[label[r["variant"]]],
                                 textposition="top center", marker={"size": 12, "color": colours[r["variant"]]},
                                 error_y={"type": "data", "array": [100 * r["AP_std"]], "visible": True},
                                 name=label[r["variant"]]))
    fig.update_layout(title="AP against GFLOPs (paper convention)", xaxis_title="GFLOPs", yaxis_title="AP (%)",
                      height=420)
    if not ok.empty:  # room for the end points' labels, which plotly's own range cut at the plot's edges
        lo, hi = float(ok["gflops"].min()), float(ok["gflops"].max())
        pad = 0.2 * (hi - lo) if hi > lo else 0.1 * max(abs(hi), 1e-9)
        fig.update_xaxes(range=[lo - pad, hi + pad])
    figs["ap_vs_gflops"] = fig

    from plotly.subplots import make_subplots

    keys = ("AP", "PCK@0.1", "LR-swap")
    fig = make_subplots(rows=1, cols=len(keys), subplot_titles=[f"{k} (%)" for k in keys])
    final = final_per_seed(metrics)
    for c, key in enumerate(keys, 1):
        for _, r in ok.iterrows():
            v = r["variant"]
            fig.add_trace(go.Bar(x=[label[v]], y=[100 * r[f"{key}_mean"]], marker_color=colours[v], name=label[v],
                                 error_y={"type": "data", "array": [100 * r[f"{key}_std"]], "visible": True},
                                 legendgroup=v, showlegend=c == 1), row=1, col=c)
        if not final.empty and key in final:
            fig.add_trace(go.Scatter(x=[label[v] for v in final["variant"]], y=100 * final[key], mode="markers",
                                     marker={"color": "black", "size": 7}, name="one seed", legendgroup="seeds",
                                     showlegend=c == 1), row=1, col=c)
    fig.update_layout(title="Final metrics per variant (bars: mean over seeds, whiskers: std, dots: seeds)",
                      height=460)
    figs["final_metrics"] = fig
    if joints is not None and len(joints):
        figs["per_joint_ap"] = joint_figure(joints, label, colours)
    return figs


# ---- writing -------------------------------------------------------------------------------
def _json_clean(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return _json_clean(float(v))
    return v


def write_report(run_dir: str | Path) -> ReportPaths:
    """Write ``report.md``, ``report.html``, ``summary.csv`` and ``summary.json`` into ``run_dir``.

    Raises ``UserInputError`` (one line) before writing anything: no readable request, a metrics row
    that cannot be trusted, or a folder or link where one of the four files goes."""
    run_dir = Path(run_dir)
    for name in REPORT_NAMES:
        check_output_file(run_dir / name)
    req = _request(run_dir)
    metrics = load_metrics(run_dir)
    summary = load_summary(run_dir, metrics)
    paper, paper_note = run_paper_table(run_dir)
    env = _first_env(run_dir, req)
    table = display_table(summary, paper)
    diffs = differences(req, env)
    effects = run_effects(run_dir, req, metrics)
    joints = run_joint_table(run_dir, req, metrics)
    joints_pck = run_joint_table(run_dir, req, metrics, "PCK@0.1")
    paths = ReportPaths(run_dir / "report.md", run_dir / "report.html", run_dir / "summary.csv",
                        run_dir / "summary.json")

    write_text_atomic(paths.csv, summary.to_csv(index=False))
    records = [{k: _json_clean(v) for k, v in r.items()} for r in summary.to_dict(orient="records")]
    doc = {
        "run": req["name"],
        "recipe": req["recipe"]["name"],
        "data": req.get("data"),
        "device": (env or {}).get("device") or req.get("device_label"),
        "gpu": (env or {}).get("gpu"),
        "seeds": req["seeds"],
        "metrics_note": "AP/AR/PCK/LR-swap are fractions (0-1); gflops in the paper convention "
                        "(conv and linear multiply-adds / 2**30, batch 1)",
        "variants": records,
        "paper": paper.to_dict(orient="records") if paper is not None else None,
        "paper_note": paper_note,
        "differences": diffs,
        "precision": (env or {}).get("precision", {}).get("label") if env else None,
        "effects": [e.to_dict() for e in effects],
        "per_joint_note": JOINT_INTRO,
        "per_joint": {m: [{k: _json_clean(v) for k, v in r.items()} for r in t.to_dict(orient="records")]
                      for m, t in (("AP", joints), ("PCK@0.1", joints_pck))},
    }
    write_text_atomic(paths.json, json.dumps(doc, indent=1))

    title = f"Fusion ablation: {req['name']}"
    info = [
        f"- base config: {req.get('base_source') or '-'} ({req['base'].get('name')}), input "
        f"{'x'.join(map(str, req['recipe'].get('input_size') or req['base'].get('input_size')))}",
        f"- recipe: {req['recipe']['name']} - {req['recipe'].get('description', '')}",
        f"- data: {(req.get('data') or {}).get('kind')} ({(req.get('data') or {}).get('path')})",
        f"- device: {doc['device']}" + (f"; torch {env.get('torch')}, CUDA {env.get('cuda')}" if env else "")
        + (f"; precision: {doc['precision']}" if doc.get("precision") else ""),
        f"- seeds: {', '.join(map(str, req['seeds']))}; git commit {((env or {}).get('git') or {}).get('commit')}"
        + (" (with uncommitted changes)" if ((env or {}).get("git") or {}).get("dirty") else ""),
    ]
    failed = summary[summary["error"].notna()]
    md = [f"# {title}", "", *info, "",
          "## Measured", "",
          "AP, AR (OKS, COCOeval), PCK normalised by the larger box side, and LR-swap (left/right pairs predicted "
          "the wrong way round) on the validation set after the last epoch; mean ± std over seeds. GFLOPs: paper "
          "convention. images/s: training throughput (median epoch, first epoch excluded).", "",
          _md_table(table), ""]
    if not failed.empty:
        md += ["Failed:", ""] + [f"- {r['variant']}: {r['error']}" for _, r in failed.iterrows()] + [""]
    md += ["## Effect of fusion", "", EFFECT_INTRO, ""]
    if effects:
        md += [f"- {e.verdict}" for e in effects] + ["", _md_table(effects_table(effects)), ""]
    else:
        md += ["No pair of variants finished with a common seed yet.", ""]
    md += ["## Per joint", "", JOINT_INTRO, ""]
    if len(joints):
        md += ["OKS AP (%):", "", _md_table(joint_display(joints)), "", "PCK@0.1 (%):", "",
               _md_table(joint_display(joints_pck)), ""]
    else:
        md += [NO_JOINTS, ""]
    md += ["## The paper", ""]
    if paper is not None:
        md += [paper_note, "", _md_table(paper.rename(columns={"AP": "AP (%)"})), ""]
    else:
        md += [paper_note, ""]
    md += ["## How this run differs from the paper", ""] + [f"- {d}" for d in diffs] + [""]
    md += ["## Files", "", "`summary.csv`, `summary.json` (one row per variant), `report.html` (plots), and per "
           "job `<variant>/seed<k>/` with `metrics.jsonl`, `config.yaml`, `env.json`, `last.pth`.", ""]
    write_text_atomic(paths.md, "\n".join(md))

    figs = figures(metrics, summary, joints)
    parts = []
    for i, fig in enumerate(figs.values()):
        # plotly.js goes inline once, with the first figure on the page (the effect of fusion, when shown).
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0 and not effects), default_width="100%"))
    esc = html.escape
    body = [f"<h1>{esc(title)}</h1>", "<ul>" + "".join(f"<li>{esc(x[2:])}</li>" for x in info) + "</ul>",
            "<h2>Measured</h2>", table.to_html(index=False, classes="t", border=0, escape=True)]
    if not failed.empty:
        body.append("<p><b>Failed:</b></p><ul>" + "".join(f"<li>{esc(str(r['variant']))}: {esc(str(r['error']))}</li>"
                                                          for _, r in failed.iterrows()) + "</ul>")
    body.append("<h2>Effect of fusion</h2>")
    body.append(f"<p>{esc(EFFECT_INTRO)}</p>")
    if effects:
        body.append("<ul>" + "".join(f"<li>{esc(e.verdict)}</li>" for e in effects) + "</ul>")
        body.append(effects_table(effects).to_html(index=False, classes="t", border=0, escape=True))
        body.append("<div class='fig'>" + effects_figure(effects).to_html(full_html=False, include_plotlyjs=True,
                                                                          default_width="100%") + "</div>")
    else:
        body.append("<p>No pair of variants finished with a common seed yet.</p>")
    body.append("<h2>Per joint</h2>")
    body.append(f"<p>{esc(JOINT_INTRO)}</p>")
    if len(joints):
        for caption, t in (("OKS AP (%)", joints), ("PCK@0.1 (%)", joints_pck)):
            body.append(f"<p>{esc(caption)}</p>" + joint_display(t).to_html(index=False, classes="t", border=0))
    else:
        body.append(f"<p>{esc(NO_JOINTS)}</p>")
    body.append("<h2>The paper</h2>")
    body.append(f"<p>{esc(paper_note)}</p>")
    if paper is not None:
        body.append(paper.to_html(index=False, classes="t", border=0))
    body.append("<h2>How this run differs from the paper</h2><ul>" + "".join(f"<li>{esc(d)}</li>" for d in diffs) + "</ul>")
    body.append("<h2>Plots</h2>")
    body += [f"<div class='fig'>{p}</div>" for p in parts]
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table.t{border-collapse:collapse;margin:1em 0}table.t td,table.t th{border:1px solid #ccc;"
             "padding:4px 8px;text-align:right}table.t th{background:#f4f4f4}.fig{margin:1.5em 0}")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>")
    write_text_atomic(paths.html, page)
    return paths


EFFECT_INTRO = ("Per-seed paired differences (more fusions minus fewer; same seed, data order and augmentation), "
                "in percentage points, with their mean and a 95 % Student t interval (scipy.stats.t, n - 1 "
                "degrees of freedom). Lower LR-swap is better.")


def _done_jobs(run_dir: Path) -> set[tuple[str, int]]:
    """``(variant, seed)`` of the run's finished jobs."""
    progress = read_progress(run_dir)
    return {(r["variant"], int(r["seed"])) for _, r in progress.iterrows() if r["state"] == "done"}


def run_effects(run_dir: str | Path, req: dict | None = None, metrics: pd.DataFrame | None = None) -> list[Effect]:
    """The paired fusion effects of the run's finished jobs (``analysis.ablation.effects``)."""
    run_dir = Path(run_dir)
    req = req or _request(run_dir)
    metrics = load_metrics(run_dir) if metrics is None else metrics
    done = _done_jobs(run_dir)
    fusions = {v["name"]: int(v["fusions"]) for v in req["variants"]}
    return fusion_effects(final_per_seed(metrics, done), fusions)


JOINT_INTRO = ("Each joint scored alone after the last epoch: OKS AP with only that joint kept in the ground truth "
               "(persons without it ignored; predictions ranked by its heatmap maximum; pycocotools' COCOeval) and "
               "PCK@0.1. Mean over seeds; the last column is the variant with the most fusions minus the one "
               "with the fewest, in percentage points.")
NO_JOINTS = ("No finished job recorded per-joint figures (jobs trained before they were added record none; "
             "`hrnet-explorer report RUN --per-joint` adds them from each job's last.pth).")


def run_joint_table(run_dir: str | Path, req: dict | None = None, metrics: pd.DataFrame | None = None,
                    metric: str = "AP") -> pd.DataFrame:
    """``joints.joint_table`` of the run's finished jobs, variants from fewest to most fusions (% units)."""
    run_dir = Path(run_dir)
    req = req or _request(run_dir)
    metrics = load_metrics(run_dir) if metrics is None else metrics
    done = _done_jobs(run_dir)
    order = [v["name"] for v in sorted(req["variants"], key=lambda v: int(v["fusions"]))]
    return joint_table(final_per_seed(metrics, done), order, metric)


def joint_display(table: pd.DataFrame) -> pd.DataFrame:
    """``joint_table`` for reading: ``mean ± std`` cells (one decimal), the difference signed."""
    out = pd.DataFrame({"joint": table["joint"]})
    for col in table.columns[1:]:
        if col.endswith(" std"):
            continue
        if f"{col} std" in table:
            out[col] = [_pm(m, s) for m, s in zip(table[col], table[f"{col} std"])]
        else:
            out[col] = [f"{d:+.1f}" if pd.notna(d) else "-" for d in table[col]]
    return out


def _pm(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "-"
    return f"{mean:.1f}" if pd.isna(std) else f"{mean:.1f} ± {std:.1f}"


def report_text(run_dir: str | Path) -> str:
    """The measured table and the effect verdicts as Markdown (for the CLI)."""
    summary = load_summary(run_dir)
    paper, _ = run_paper_table(run_dir)
    text = _md_table(display_table(summary, paper))
    effects = run_effects(run_dir)
    if effects:
        text += "\n\nEffect of fusion:\n" + "\n".join(f"- {e.verdict}" for e in effects)
    return text


__all__ = ["EFFECT_INTRO", "METRIC_FIELDS", "ReportPaths", "differences", "load_metrics", "load_summary", "paper_table", "run_paper_table",
           "report_text", "run_effects", "write_report"]
