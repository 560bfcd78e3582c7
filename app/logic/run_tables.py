"""The ablation runs as the app's tables show them (no Streamlit: testable without a browser)."""

from __future__ import annotations

import pandas as pd

from analysis.ablation.progress import format_eta


def progress_table(progress: pd.DataFrame) -> pd.DataFrame:
    """``read_progress`` as the app shows it: variant, seed, fusions, state, phase, epoch, epochs,
    ``step`` ("step/steps" while running), loss, ``img/s`` (only when some job reports it), AP,
    ``ETA`` (``format_eta``; "estimating" while a running job has none yet) and ``progress``
    (complete epochs plus the current one's steps, over epochs: 0..1)."""
    df = progress[["variant", "seed", "fusions", "state", "phase", "epoch", "epochs"]].copy()
    running = progress["state"] == "running"
    step = pd.to_numeric(progress["step"], errors="coerce")
    steps = pd.to_numeric(progress["steps"], errors="coerce").replace(0, float("nan"))
    df["step"] = [f"{int(a)}/{int(b)}" if run and not (pd.isna(a) or pd.isna(b)) else ""
                  for run, a, b in zip(running, step, steps)]
    df["loss"] = progress["loss"]
    if progress["images_per_s"].notna().any():
        df["img/s"] = pd.to_numeric(progress["images_per_s"], errors="coerce").round(1)
    df["AP"] = progress["AP"]
    df["ETA"] = [("estimating" if pd.isna(s) else format_eta(s)) if run else ""
                 for run, s in zip(running, progress["eta_s"])]
    epochs = pd.to_numeric(df["epochs"], errors="coerce").replace(0, float("nan"))
    within = (step / steps).where(running, 0.0).fillna(0.0)
    df["progress"] = ((pd.to_numeric(df["epoch"], errors="coerce") + within) / epochs).fillna(0.0).clip(0, 1)
    return df
