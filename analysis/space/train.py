"""``space train``: train every sample of a space folder with one ablation recipe, one job per sample through the
job engine's local executor, appending ``results.jsonl`` as samples finish (Radosavovic et al. 2019, section 3:
each sample of a design space trained with the same recipe, its error recorded).

One sample = one ``analysis.ablation.train.Job`` in ``DIR/jobs/<id>/seed0/`` (the ablation's job folder contract:
``status.json``, ``metrics.jsonl``, atomic ``last.pth``, so a killed study resumes from the last epoch). Same
recipe, data, seed (0) and precision policy as an ablation. The recipe's ``model:`` size overrides apply to
every sample except where the sample drew the same key (``recipe_overrides``): a sampled width is not reset to the
smoke recipe's 8. A sample that fails is recorded (``status: failed`` with its error), the others go on; a
rerun trains only the samples without a result.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import hrnet_core as hc
from analysis.ablation.coco_data import load_keypoint_data
from analysis.ablation.evaluate import METRIC_FIELDS
from analysis.ablation.executors import SerialExecutor
from analysis.ablation.files import read_json, write_text_atomic
from analysis.ablation.recipes import Recipe, apply_model_overrides
from analysis.ablation.synth import builtin_dataset
from analysis.ablation.threads import job_threads
from analysis.ablation.train import Job, make_context
from analysis.space.space_folder import RESULTS_FILE, SpaceFolderError, is_space_folder, read_results, read_samples
from hrnet_core.concise_yaml import to_concise_dict

JOBS_DIR = "jobs"
# Recipe size override -> the sampled keys (a dotted key's parts) that set the same thing: HRNet's shorthand keys
# and the other networks' backbone keys.
OVERRIDDEN_BY = {
    "width": ("width", "stages", "channels", "num_channels"),
    "blocks": ("blocks", "stages", "num_blocks"),
    "stem": ("stem", "stem_channels"),
    "stage1_blocks": ("stage1",),
    "stage1_planes": ("stage1",),
}


@dataclass(frozen=True)
class SampleVariant:
    """What the executor logs of a job: the sample's id as the variant name, its fusions and schedule bits."""

    name: str
    fusions: int
    bits: str


def recipe_overrides(recipe: Recipe, sampled_keys) -> tuple[dict, tuple[str, ...]]:
    """``(kept, dropped)``: the recipe's ``model:`` overrides that still apply to a sample that drew
    ``sampled_keys`` (dotted), and the names of those a sampled key wins over."""
    parts = {p for key in sampled_keys for p in str(key).split(".")}
    kept, dropped = {}, []
    for key, value in (recipe.model or {}).items():
        if parts & set(OVERRIDDEN_BY.get(key, (key,))):
            dropped.append(key)
        else:
            kept[key] = value
    return kept, tuple(dropped)


def sample_config(sample: dict, recipe: Recipe):
    """The config a sample trains: its concise config with the recipe's remaining size overrides and the recipe's
    input size unless it drew ``input_size``. Raises ``ConfigError`` when the result is not buildable."""
    cfg = hc.load_config(sample["config"])
    kept, _ = recipe_overrides(recipe, sample.get("knobs", {}))
    cfg = apply_model_overrides(cfg, kept) if kept else cfg
    if recipe.input_size and "input_size" not in sample.get("knobs", {}):
        cfg = cfg.with_input(recipe.input_size)
    cfg = hc.load_config(to_concise_dict(cfg))  # re-validated (e.g. the input size against the fusions)
    return replace(cfg, name=sample["id"])


def _fusion_bits(cfg) -> tuple[int, str]:
    try:
        schedule = cfg.fusion_schedule
    except hc.UserInputError:  # a network whose modules always fuse (HRFormer)
        return 0, "-"
    return sum(map(sum, schedule)), "/".join("".join(str(int(f)) for f in row) for row in schedule)


def _append(folder: Path, row: dict) -> None:
    """One line more in ``results.jsonl``, flushed to disk before the next sample starts."""
    with open(folder / RESULTS_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def result_row(sample_id: str, job_folder: Path, epochs: int, seconds: float) -> dict:
    """The ``results.jsonl`` row of a trained job: ``status`` from its ``status.json``; for a done job ``ap`` (COCO
    keypoint AP, a fraction) and the other metrics of its last epoch; for a failed one its error line."""
    status = read_json(job_folder / "status.json")
    row = {"id": sample_id, "epochs": epochs, "seconds": round(seconds, 3)}
    if status.get("state") != "done":
        return {**row, "status": "failed", "error": str(status.get("error") or "the job did not finish")}
    last = {}
    metrics = job_folder / "metrics.jsonl"
    for line in metrics.read_text(encoding="utf-8").splitlines() if metrics.is_file() else ():
        if line.strip():
            last = json.loads(line)
    ap = last.get("AP")
    if not isinstance(ap, (int, float)):
        return {**row, "status": "failed", "error": "no validation AP in its metrics.jsonl"}
    extra = {k: last[k] for k in METRIC_FIELDS if k != "AP" and isinstance(last.get(k), (int, float))}
    return {**row, "status": "done", "ap": float(ap), **extra, "epochs": int(last.get("epoch", epochs))}


def _data(recipe: Recipe, data_arg: str, input_hw, cache: dict, log):
    key = tuple(input_hw)
    if key not in cache:
        if data_arg == "builtin":
            b = recipe.builtin
            root, kind = builtin_dataset(b.seed, b.train, b.val, b.image_size, log=log, scene=b.scene), "builtin"
        else:
            root, kind = Path(data_arg), "coco"
        cache[key] = load_keypoint_data(root, kind, key, recipe.val_limit, recipe.train_limit)
    return cache[key]


def run_sample_job(sample: dict, job_folder: Path, recipe: Recipe, data: str, ctx, cache: dict, log,
                   on_epoch_ap=None) -> None:
    """Train one sample (a ``samples.jsonl`` row) in ``job_folder`` through the job engine's local executor: its
    config (``sample_config``) written beside the checkpoints as ``model.yaml``. ``on_epoch_ap(epoch, ap)`` is
    called after every epoch that evaluated (Optuna's pruning; an exception it raises ends the job, recorded as
    failed). Raises ``UserInputError`` for a sample the recipe cannot build; a training failure is recorded in the
    job's ``status.json`` (``result_row`` reads it)."""
    cfg = sample_config(sample, recipe)
    job_folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(job_folder / "model.yaml", hc.dump_config(cfg))  # the checkpoint's own config
    fusions, bits = _fusion_bits(cfg)
    threads = job_threads(recipe.cpu_threads, 1) if ctx.device.type == "cpu" else None  # one job: every core
    job = Job(job_folder, sample["id"], 0, cfg, recipe, fusions=fusions, threads=threads)

    def epoch_end(job: Job, epoch: int) -> None:
        rows = [json.loads(x) for x in (job.folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
                if x.strip()]
        ap = rows[-1].get("AP") if rows and rows[-1].get("epoch") == epoch else None
        if isinstance(ap, (int, float)):
            on_epoch_ap(epoch, float(ap))

    executor = SerialExecutor(_data(recipe, data, cfg.input_hw, cache, log), ctx,
                              on_epoch_end=epoch_end if on_epoch_ap else None, log=log)
    executor.run_all([(SampleVariant(sample["id"], fusions, bits), job)], job_folder / "run_status.json", log)


def train_space(folder: str | Path, recipe: Recipe, data: str = "builtin", device: str = "cpu", log=print) -> dict:
    """Train every sample of space folder ``folder`` that has no result yet (module docstring); returns
    ``{"done", "failed", "skipped", "seconds"}`` counts of this call. Raises ``SpaceFolderError`` for a folder that
    is not a space folder (nothing is written into it)."""
    folder = Path(folder)
    if not is_space_folder(folder):
        raise SpaceFolderError(f"{folder}: not a space folder (no samples.jsonl from 'space sample')")
    samples = read_samples(folder)
    results = read_results(folder, {s["id"] for s in samples})
    todo = [s for s in samples if s["id"] not in results]
    sampled = sorted({k for s in samples for k in s.get("knobs", {})})
    _, dropped = recipe_overrides(recipe, sampled)
    ctx = make_context(device)
    wins = (f"sampled keys win over the recipe's model overrides {', '.join(dropped)}" if dropped
            else "no sampled key overlaps the recipe's model overrides")
    kept = [k for k in (recipe.model or {}) if k not in dropped]
    log(f"space train {folder.name}: {len(samples)} samples, {len(results)} with a result, {len(todo)} to train; "
        f"recipe {recipe.name} ({recipe.epochs} epochs) on {ctx.device}; {wins}"
        + (f"; the recipe's {', '.join(kept)} still apply" if kept else ""))
    cache: dict = {}
    counts = {"done": 0, "failed": 0, "skipped": len(results)}
    start = time.monotonic()
    for i, sample in enumerate(todo):
        job_folder = folder / JOBS_DIR / sample["id"] / "seed0"
        t0 = time.monotonic()
        try:
            run_sample_job(sample, job_folder, recipe, data, ctx, cache, log)
            row = result_row(sample["id"], job_folder, recipe.epochs, time.monotonic() - t0)
        except hc.UserInputError as err:  # a sample the recipe cannot train: recorded, the study goes on
            row = {"id": sample["id"], "status": "failed", "error": " ".join(str(err).split()),
                   "epochs": 0, "seconds": round(time.monotonic() - t0, 3)}
        _append(folder, row)
        counts[row["status"]] += 1
        elapsed = time.monotonic() - start
        left = len(todo) - i - 1
        eta = elapsed / (i + 1) * left
        what = f"AP {100 * row['ap']:.1f} %" if row["status"] == "done" else f"failed: {row['error']}"
        log(f"sample {i + 1}/{len(todo)} {sample['id']}: {what} in {row['seconds']:.1f} s; study: "
            f"{counts['done']} done, {counts['failed']} failed, {left} left, ETA {eta:.0f} s")
    counts["seconds"] = round(time.monotonic() - start, 3)
    return counts


__all__ = ["JOBS_DIR", "OVERRIDDEN_BY", "SampleVariant", "recipe_overrides", "result_row", "run_sample_job",
           "sample_config", "train_space"]
