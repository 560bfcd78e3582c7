"""Per-joint figures for jobs trained before they were recorded: ``hrnet-explorer report RUN --per-joint``.

A finished job's ``last.pth`` holds the weights of its last epoch, the epoch whose ``metrics.jsonl`` row the
report reads. Each finished job whose last row lacks ``joints.JOINT_FIELDS`` is evaluated once more on the
run's own validation set (``runner.prepare_data``: the same built-in data or COCO folder) with
``evaluate(per_joint=True)`` in float32 on the CPU, and only those fields are added to that row; every other
field of every row is kept as it was (``metrics.jsonl`` rewritten atomically, under the run's lock, so no
ablation writes the folder meanwhile). The row's whole-person AP was measured during training, perhaps under
bf16 autocast: the log prints both APs, which agree to about a point.
"""

from __future__ import annotations

from pathlib import Path

import torch

import hrnet_core as hc
from analysis.ablation.coco_data import KeypointDataset, load_coco_api
from analysis.ablation.evaluate import evaluate
from analysis.ablation.files import MAX_JSONL_BYTES, MAX_JSONL_LINES, load_json_lines, write_jsonl
from analysis.ablation.joints import JOINT_FIELDS
from analysis.ablation.progress import read_progress
from analysis.ablation.run_folder import METRICS_NAME, job_dir
from analysis.ablation.runner import load_request, prepare_data, run_lock
from analysis.ablation.train import make_context


def jobs_without_joints(run_dir: str | Path) -> list[tuple[str, int]]:
    """``(variant, seed)`` of the run's finished jobs whose last metrics row has no per-joint figures."""
    run_dir = Path(run_dir)
    progress = read_progress(run_dir)
    out = []
    for _, r in progress[progress["state"] == "done"].iterrows():
        rows = _raw_rows(job_dir(run_dir, r["variant"], int(r["seed"])))
        if rows and not any(rows[-1].get(f) is not None for f in JOINT_FIELDS):
            out.append((r["variant"], int(r["seed"])))
    return out


def _raw_rows(folder: Path) -> list[dict]:
    """Every row of ``metrics.jsonl`` whole (every field, not only the checked ones)."""
    return [v for _, v in load_json_lines(folder / METRICS_NAME, MAX_JSONL_BYTES, MAX_JSONL_LINES)
            if isinstance(v, dict)]


def add_per_joint(run_dir: str | Path, log=print) -> list[tuple[str, int]]:
    """Add the per-joint AP and PCK to the last row of every finished job that lacks them; returns those jobs.

    Raises ``UserInputError`` (one line): not an ablation run, a run another process is writing
    (``RunLockedError``), a job's checkpoint that does not load strictly into its ``model.yaml``."""
    run_dir = Path(run_dir)
    req = load_request(run_dir)
    todo = jobs_without_joints(run_dir)
    if not todo:
        return []
    with run_lock(run_dir):
        ctx = make_context("cpu")
        data = prepare_data(req, ctx, log)
        coco = load_coco_api(data.val_ann_file)
        for variant, seed in todo:
            folder = job_dir(run_dir, variant, seed)
            cfg = hc.load_config(folder / "model.yaml")
            model = hc.build_model(cfg, init="default")
            hc.load_checkpoint(model, folder / "last.pth")  # strict: raises CheckpointError on a mismatch
            val = KeypointDataset(data.val_records, cfg.input_hw, req.recipe.sigma)
            with torch.inference_mode():
                m = evaluate(model, val, coco, torch.device("cpu"), req.recipe.eval_batch_size, req.recipe.flip_test,
                             per_joint=True)
            rows = _raw_rows(folder)
            recorded = rows[-1].get("AP")
            rows[-1].update({k: m[k] for k in JOINT_FIELDS})
            write_jsonl(folder / METRICS_NAME, rows)
            was = f"{100 * recorded:.1f}" if isinstance(recorded, (int, float)) else "-"
            log(f"  {variant} seed{seed}: per-joint figures added (AP now {100 * m['AP']:.1f}, recorded {was})")
    return todo
