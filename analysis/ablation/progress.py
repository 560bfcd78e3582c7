"""Live progress of ablation runs, read from their folders (the UI polls these; nothing is locked).

A job whose ``status.json`` says ``running`` but whose process is gone (same host, pid not alive) is
shown as ``failed`` with the reason, so a killed worker is never mistaken for a live one. Also the
checkpoints the runs hold, with the config each was trained with (for the Feature maps page).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pandas as pd

from hrnet_core import HRNetConfig, load_config

from .files import WORKER_NAME, read_json

PROGRESS_COLUMNS = ("variant", "seed", "fusions", "state", "epoch", "epochs", "loss", "AP", "eta_s", "error",
                    "updated_at", "folder")
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".pth.tar", ".ckpt")
RUN_CONFIG_NAME = "model.yaml"  # the resolved config the runner writes beside last.pth
RUN_COLUMNS = ("name", "path", "state", "created", "recipe", "data", "variants", "seeds", "device", "jobs",
               "done", "failed", "running", "report")


def _alive(status: dict) -> bool:
    """False only when we know the writer is gone: same host and no such process."""
    pid, host = status.get("pid"), status.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _job_rows(run_dir: Path, request: dict) -> list[tuple[str, int, Path]]:
    if request.get("variants") and request.get("seeds") is not None:
        return [(v["name"], int(s), run_dir / v["name"] / f"seed{s}")
                for s in request["seeds"] for v in request["variants"]]
    out = []
    for st in sorted(run_dir.glob("*/seed*/status.json")):
        folder = st.parent
        try:
            seed = int(folder.name[4:])
        except ValueError:
            continue
        out.append((folder.parent.name, seed, folder))
    return out


def read_progress(run_dir: str | Path) -> pd.DataFrame:
    """One row per variant and seed of ``run_dir``: state (queued | running | done | failed), epoch,
    epochs, loss, AP (latest), eta_s, error. Empty frame when the folder holds no run."""
    run_dir = Path(run_dir)
    request = read_json(run_dir / "ablation.json")
    rows = []
    for variant, seed, folder in _job_rows(run_dir, request):
        st = read_json(folder / "status.json")
        state = st.get("state", "queued")
        error = st.get("error")
        if state == "running" and not _alive(st):
            state, error = "failed", f"worker process {st.get('pid')} is gone (killed?); continue with --resume"
        epochs = st.get("epochs") or request.get("recipe", {}).get("epochs")
        rows.append({
            "variant": variant,
            "seed": seed,
            "fusions": st.get("fusions"),
            "state": state,
            "epoch": int(st.get("epoch") or 0),
            "epochs": int(epochs) if epochs else None,
            "loss": st.get("loss"),
            "AP": st.get("AP"),
            "eta_s": st.get("eta_s") if state == "running" else (0.0 if state == "done" else None),
            "error": error,
            "updated_at": st.get("updated_at"),
            "folder": str(folder),
        })
    return pd.DataFrame(rows, columns=list(PROGRESS_COLUMNS))


def run_state(run_dir: str | Path, progress: pd.DataFrame | None = None) -> str:
    """Overall state: running (a live job), failed (any failed, or the app's worker failed before any job),
    stopped (the worker was stopped before any job), done (all done), queued (nothing started).
    ``progress``: the run's ``read_progress`` when already at hand."""
    df = read_progress(run_dir) if progress is None else progress
    run_status = read_json(Path(run_dir) / "status.json")
    if df.empty:
        # A worker that died before the run wrote its jobs (bad data path, crash at start) left its end here.
        worker = read_json(Path(run_dir) / WORKER_NAME)
        if worker.get("state") in ("failed", "stopped"):
            return worker["state"]
        return run_status.get("state", "queued")
    states = set(df["state"])
    if "running" in states:
        return "running"
    if run_status.get("state") == "running" and _alive(run_status) and "queued" in states:
        return "running"
    if "failed" in states:
        return "failed"
    if states == {"done"}:
        return "done"
    return "queued" if states == {"queued"} else "failed"


def _mtime(path: Path) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(path.stat().st_mtime))


def list_runs(root: str | Path = "runs") -> pd.DataFrame:
    """One row per run folder under ``root`` (newest first): name, state, recipe, data, variants,
    seeds, device, job counts and whether a report exists."""
    root = Path(root)
    rows = []
    if root.is_dir():
        # A folder the app has just launched (launch.json) shows up before its request is written.
        folders = {p.parent for pattern in ("*/ablation.json", "*/launch.json") for p in root.glob(pattern)}
        for run_dir in folders:
            req = read_json(run_dir / "ablation.json")
            df = read_progress(run_dir)
            counts = df["state"].value_counts().to_dict() if not df.empty else {}
            data = req.get("data", {})
            rows.append({
                "name": run_dir.name,
                "path": str(run_dir),
                "state": run_state(run_dir, df),
                "created": req.get("created") or _mtime(run_dir),
                "recipe": req.get("recipe", {}).get("name"),
                "data": data.get("kind") if isinstance(data, dict) else str(data),
                "variants": ",".join(v["name"] for v in req.get("variants", [])),
                "seeds": len(req.get("seeds", [])),
                "device": req.get("device_label") or req.get("device"),
                "jobs": len(df),
                "done": int(counts.get("done", 0)),
                "failed": int(counts.get("failed", 0)),
                "running": int(counts.get("running", 0)),
                "report": (run_dir / "report.md").is_file(),
            })
    df = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    return df.sort_values("created", ascending=False, na_position="last").reset_index(drop=True)


def progress_table(progress: pd.DataFrame) -> pd.DataFrame:
    """``read_progress`` as the app shows it: variant, seed, fusions, state, epoch, epochs, loss, AP,
    ``ETA`` (H:M:S) and ``progress`` (epoch / epochs, 0..1)."""
    df = progress[["variant", "seed", "fusions", "state", "epoch", "epochs", "loss", "AP"]].copy()
    df["ETA"] = progress["eta_s"].map(lambda s: "" if pd.isna(s) else time.strftime("%H:%M:%S", time.gmtime(float(s))))
    epochs = pd.to_numeric(df["epochs"], errors="coerce").replace(0, float("nan"))
    df["progress"] = (pd.to_numeric(df["epoch"], errors="coerce") / epochs).fillna(0.0).clip(0, 1)
    return df


def list_checkpoints(root: str | Path, limit: int = 200) -> dict[str, str]:
    """Checkpoint files under the runs folder ``root`` (at most ``limit``): ``run: <relative path>`` -> path."""
    root = Path(root)
    found: dict[str, str] = {}
    if not root.is_dir():
        return found
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name.endswith(CHECKPOINT_SUFFIXES):
            found[f"run: {path.relative_to(root)}"] = str(path)
            if len(found) >= limit:
                break
    return found


def checkpoint_config(checkpoint: str | Path) -> tuple[HRNetConfig | None, Path | None]:
    """``(config, its file)`` the ablation runner saved beside (or above) ``checkpoint``; ``(None, None)``."""
    checkpoint = Path(checkpoint)
    for folder in (checkpoint.parent, checkpoint.parent.parent):
        if (folder / RUN_CONFIG_NAME).is_file():
            return load_config(folder / RUN_CONFIG_NAME), folder / RUN_CONFIG_NAME
    return None, None


# ---- run checkpoints by run / variant / seed (the Feature maps page and ``features --run``) ----------------
RUN_CHECKPOINTS = ("best", "last")  # best.pth (by val AP) and last.pth, in that order of preference
RUN_CHECKPOINT_COLUMNS = ("run", "variant", "seed", "which", "path", "config", "run_dir")


def run_checkpoints(root: str | Path) -> pd.DataFrame:
    """Every ``best.pth`` / ``last.pth`` of the jobs under the runs folder ``root``
    (``<run>/<variant>/seed<k>/``): one row each with run, variant, seed (int), which (best | last),
    path, config (the job's ``model.yaml``, or None) and run_dir. Sorted by run, variant, seed, best first."""
    root = Path(root)
    rows = []
    if root.is_dir():
        for which in RUN_CHECKPOINTS:
            for path in root.glob(f"*/*/seed*/{which}.pth"):
                try:
                    seed = int(path.parent.name.removeprefix("seed"))
                except ValueError:
                    continue
                config = path.parent / RUN_CONFIG_NAME
                rows.append({"run": path.parents[2].name, "variant": path.parents[1].name, "seed": seed,
                             "which": which, "path": str(path), "config": str(config) if config.is_file() else None,
                             "run_dir": str(path.parents[2])})
    df = pd.DataFrame(rows, columns=list(RUN_CHECKPOINT_COLUMNS))
    order = df["which"].map({w: i for i, w in enumerate(RUN_CHECKPOINTS)})
    return (df.assign(_o=order).sort_values(["run", "variant", "seed", "_o"]).drop(columns="_o")
            .reset_index(drop=True))


def find_run_checkpoint(run_dir: str | Path, variant: str, seed: int, which: str = "best") -> Path:
    """``run_dir/<variant>/seed<seed>/<which>.pth``. ``which``: best, last, or auto (best when the job
    has one, else last). Raises ``CheckpointError`` naming what is missing and what the run has."""
    from hrnet_core import CheckpointError

    run_dir = Path(run_dir)
    if which not in (*RUN_CHECKPOINTS, "auto"):
        raise CheckpointError(f"--which: expected best, last or auto, got {which!r}")
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run folder")
    job = run_dir / variant / f"seed{seed}"
    if not job.is_dir():
        have = sorted(f"{p.parent.name}/{p.name}" for p in run_dir.glob("*/seed*") if p.is_dir())
        raise CheckpointError(f"{job}: no such job in {run_dir.name} (it has: {', '.join(have) or 'no jobs'})")
    names = RUN_CHECKPOINTS if which == "auto" else (which,)
    for name in names:
        if (job / f"{name}.pth").is_file():
            return job / f"{name}.pth"
    have = sorted(p.name for p in job.glob("*.pth"))
    raise CheckpointError(f"{job / (names[0] + '.pth')}: no such checkpoint (the job has: {', '.join(have) or 'none yet'})")


def checkpoint_run_dir(checkpoint: str | Path) -> Path | None:
    """The run folder of a run checkpoint (``<run>/<variant>/seed<k>/x.pth``, holding ``ablation.json``), or None."""
    run_dir = Path(checkpoint).resolve().parents[2] if len(Path(checkpoint).resolve().parents) > 2 else None
    return run_dir if run_dir is not None and (run_dir / "ablation.json").is_file() else None
