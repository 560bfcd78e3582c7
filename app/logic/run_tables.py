"""The ablation runs as the app's tables show them (no Streamlit: testable without a browser)."""

from __future__ import annotations

import pandas as pd

from analysis.ablation.progress import format_eta


def progress_table(progress: pd.DataFrame) -> pd.DataFrame:
    """``read_progress`` as the app shows it: variant, seed, fusions, state, phase, epoch, epochs,
    ``step`` ("step/steps" while running), loss, ``img/s`` (only when some job reports it), ``AP (%)``,
    ``ETA`` (``format_eta``; "estimating" while a running job has none yet) and ``progress``
    (complete epochs plus the current one's steps, over epochs: 0..1). A figure a job has not reported yet
    (a queued job's loss, the AP before the first evaluation) is an empty cell, never "None"."""
    df = progress[["variant", "seed", "fusions", "state", "phase", "epoch", "epochs"]].copy()
    running = progress["state"] == "running"
    step = pd.to_numeric(progress["step"], errors="coerce")
    steps = pd.to_numeric(progress["steps"], errors="coerce").replace(0, float("nan"))
    df["step"] = [f"{int(a)}/{int(b)}" if run and not (pd.isna(a) or pd.isna(b)) else ""
                  for run, a, b in zip(running, step, steps)]
    df["loss"] = _cells(progress["loss"], "{:.4g}")
    if progress["images_per_s"].notna().any():
        df["img/s"] = _cells(progress["images_per_s"], "{:.1f}")
    df["AP (%)"] = _cells(100 * pd.to_numeric(progress["AP"], errors="coerce"), "{:.1f}")
    df["ETA"] = [("estimating" if pd.isna(s) else format_eta(s)) if run else ""
                 for run, s in zip(running, progress["eta_s"])]
    epochs = pd.to_numeric(df["epochs"], errors="coerce").replace(0, float("nan"))
    within = (step / steps).where(running, 0.0).fillna(0.0)
    df["progress"] = ((pd.to_numeric(df["epoch"], errors="coerce") + within) / epochs).fillna(0.0).clip(0, 1)
    df["epochs"] = _cells(df["epochs"], "{:.0f}")
    return df


def _cells(values: pd.Series, fmt: str) -> list[str]:
    """Numbers as text in ``fmt``; a missing one (None, NaN) as an empty cell."""
    return ["" if pd.isna(v) else fmt.format(float(v)) for v in pd.to_numeric(values, errors="coerce")]


def runs_table(runs: pd.DataFrame) -> pd.DataFrame:
    """``list_runs`` as the app's table shows it: no ``path`` column, and nothing shown as "None" (a run
    the app launched a moment ago has no recipe, data or device recorded yet: those cells stay empty)."""
    df = runs.drop(columns=["path"]).copy()
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].map(lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else v)
    return df


def latest_log_line(text: str) -> str:
    """The last non-empty line of a worker's log (what it is doing while no progress is recorded), at most
    160 characters; "" for an empty log."""
    lines = [x.strip() for x in (text or "").splitlines() if x.strip()]
    return lines[-1][:160] if lines else ""
