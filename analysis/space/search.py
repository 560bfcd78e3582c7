"""``space search``: directed search of a design space with Optuna (TPE, or NSGA-II for several objectives), each
trial trained like a ``space train`` sample, its study in ``DIR/study.db`` (SQLite: resumable, and several workers
may run the same command on one study).

The space file maps onto Optuna's distributions (``suggest``): an int knob -> ``suggest_int`` (``step``; ``log`` for
``log_uniform``; ``power2`` over the exponents), a float knob -> ``suggest_float`` (``log`` for ``log_uniform``), a
choice -> ``suggest_categorical`` over the choices' positions; a ``normal`` knob is searched uniformly over its range
(the sampler models the objective itself; the prior only shaped random sampling). A knob that draws one value per
list entry suggests each entry. A config that does not parse or breaks a constraint is pruned before training.

Objectives: ``ap`` (maximized: COCO keypoint AP of the last epoch), ``latency_ms`` (batch-1, fast path), ``params``,
``gflops``, ``activations`` (minimized). With the single objective ``ap`` the trial reports every evaluated epoch's
AP and Optuna's median pruner stops a trial that falls behind; Optuna prunes only single-objective studies.

Every finished trial ends up as a line in ``samples.jsonl`` and one in ``results.jsonl`` (pruned and failed trials:
``status: failed`` with the reason), so ``space report`` reads a searched folder as it reads a sampled one.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import hrnet_core as hc
from analysis.ablation.recipes import Recipe
from analysis.space.base_mapping import sample_id, set_path
from analysis.space.complexity_counts import complexity_counts
from analysis.space.knobs import ChoiceKnob, FloatKnob
from analysis.space.space_file import Space, SpaceError
from analysis.space.space_folder import (
    RESULTS_FILE,
    SAMPLES_FILE,
    SPACE_FILE,
    SPACE_MARKER,
    check_space_out,
    read_results,
    read_samples,
    write_files,
)

OBJECTIVES = {"ap": "maximize", "latency_ms": "minimize", "params": "minimize", "gflops": "minimize",
              "activations": "minimize"}
SAMPLERS = ("tpe", "nsga2")
MAX_TRIALS = 100_000
STUDY_FILE = "study.db"


def parse_objectives(text: str) -> tuple[str, ...]:
    """``ap,latency_ms`` -> ``("ap", "latency_ms")``; ``SpaceError`` naming ``--objectives`` for an unknown or repeated
    objective."""
    names = tuple(s.strip() for s in str(text).split(",") if s.strip())
    bad = [n for n in names if n not in OBJECTIVES]
    if not names or bad or len(set(names)) != len(names):
        raise SpaceError("--objectives", f"give distinct objectives among {', '.join(OBJECTIVES)}; got {text!r}")
    return names


def _suggest_one(trial, name: str, knob):
    if isinstance(knob, FloatKnob):
        return trial.suggest_float(name, knob.low, knob.high, log=knob.dist == "log_uniform")
    if knob.dist == "power2":
        lo, hi = int(math.log2(knob.low)), int(math.log2(knob.high))
        return 2 ** trial.suggest_int(f"{name}.log2", lo, hi)
    step = knob.step if knob.dist != "log_uniform" else 1  # Optuna takes log or step, not both
    value = trial.suggest_int(name, knob.low, knob.high, step=step, log=knob.dist == "log_uniform")
    return int(min(knob.high, max(knob.low, round(value / knob.step) * knob.step)))


def suggest(trial, space: Space) -> dict:
    """The value of every knob of ``space`` for Optuna ``trial`` (module docstring), keyed as the space file writes
    the keys."""
    out = {}
    for knob in space.knobs:
        if isinstance(knob, ChoiceKnob):
            out[knob.key] = knob.values()[trial.suggest_categorical(knob.key, list(range(len(knob.choices))))]
        elif knob.per_entry:
            out[knob.key] = [_suggest_one(trial, f"{knob.key}[{i}]", knob) for i in range(knob.per_entry)]
        else:
            out[knob.key] = _suggest_one(trial, knob.key, knob)
    return out


def _append(path: Path, row: dict) -> None:
    """One JSON line appended in a single write (O_APPEND: lines of several workers do not interleave)."""
    data = (json.dumps(row, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _folder(space: Space, out: str | Path) -> Path:
    """``out`` as this space's search folder: made (marker, ``space.yaml``) when new; an earlier search folder of the
    same space is taken as it is (resume, or another worker)."""
    path = Path(out)
    if (path / SPACE_MARKER).is_file() and (path / STUDY_FILE).is_file():
        return path
    folder = check_space_out(path)  # new, empty or made by this tool, else one line, nothing written
    write_files(folder, SPACE_MARKER, {SPACE_FILE: space.to_yaml()})
    return folder


def search_space(space: Space, out: str | Path, trials: int, objectives: tuple[str, ...], recipe: Recipe,
                 data: str = "builtin", device: str = "cpu", sampler: str | None = None, seed: int | None = None,
                 log=print) -> dict:
    """Run ``trials`` more trials of the Optuna study of ``space`` in folder ``out`` (module docstring); returns
    ``{"trials", "complete", "pruned", "failed", "best"}`` (``best``: the best trials' ids and values).

    Raises ``SpaceError`` for a bad ``trials`` / ``sampler`` / objective and ``SpaceFolderError`` for a folder this
    tool did not make."""
    import optuna

    from analysis.ablation.train import make_context
    from analysis.space.train import JOBS_DIR, result_row, run_sample_job

    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        raise SpaceError("--trials", f"must be an integer in 1..{MAX_TRIALS}, got {trials!r}")
    sampler = sampler or ("tpe" if len(objectives) == 1 else "nsga2")
    if sampler not in SAMPLERS:
        raise SpaceError("--sampler", f"expected one of {', '.join(SAMPLERS)}, got {sampler!r}")
    folder = _folder(space, out)
    seed = space.seed if seed is None else seed
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    make_sampler = optuna.samplers.TPESampler if sampler == "tpe" else optuna.samplers.NSGAIISampler
    single = len(objectives) == 1
    study = optuna.create_study(
        study_name=space.name, storage=f"sqlite:///{folder / STUDY_FILE}", load_if_exists=True,
        directions=[OBJECTIVES[o] for o in objectives], sampler=make_sampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2) if single and objectives == ("ap",) else None)
    ctx = make_context(device)
    prunes, cache = single and objectives == ("ap",), {}
    samples_path, results_path = folder / SAMPLES_FILE, folder / RESULTS_FILE
    known = {s["id"] for s in read_samples(folder)} if samples_path.is_file() else set()
    earlier = read_results(folder, known) if results_path.is_file() else {}  # id -> result (resume, other workers)
    log(f"space search {space.name}: {trials} trials more on {len(study.trials)} so far ({sampler}, objectives "
        f"{', '.join(f'{o} ({OBJECTIVES[o]})' for o in objectives)}); recipe {recipe.name} ({recipe.epochs} "
        f"epochs) on {ctx.device}; study {folder / STUDY_FILE}")
    latency = None
    if "latency_ms" in objectives or space.bound("latency_ms") is not None:
        from analysis.space.latency import latency_meter

        latency = latency_meter(device)

    def objective(trial):
        knobs = suggest(trial, space)
        mapping = space.base_mapping()
        for knob in space.knobs:
            set_path(mapping, knob.path, knobs[knob.key])
        try:
            cfg = hc.load_config(mapping)
            counts = complexity_counts(cfg)
        except hc.ConfigError as err:
            raise optuna.TrialPruned(f"config: {err}") from None
        for b in space.constraints:
            if b.metric != "latency_ms" and b.failure(counts[b.metric]):
                raise optuna.TrialPruned(f"constraint {b.metric}")
        sid, canon = sample_id(cfg)
        row = {"id": sid, "config": {"name": f"{space.name}-{sid}", **canon}, "knobs": knobs, **counts}
        if latency is not None:
            row["latency_ms"] = float(latency(cfg))
            bound = space.bound("latency_ms")
            if bound is not None and bound.failure(row["latency_ms"]):
                raise optuna.TrialPruned("constraint latency_ms")
        trial.set_user_attr("id", sid)
        if sid not in known:
            _append(samples_path, row)
            known.add(sid)
        if sid in earlier:  # the sampler proposed a config trained before: its result, not a second training
            return _values(earlier[sid], row)
        pruned = {}

        def report(epoch: int, ap: float) -> None:  # the job's epoch metrics -> Optuna's pruner
            trial.report(ap, epoch)
            if trial.should_prune():
                pruned["epoch"] = epoch
                raise optuna.TrialPruned(f"epoch {epoch}: AP {ap:.3f} below the median of earlier trials")

        t0 = time.monotonic()
        job_folder = folder / JOBS_DIR / f"trial{trial.number}-{sid}" / "seed0"
        run_sample_job(row, job_folder, recipe, data, ctx, cache, log, report if prunes else None)
        result = result_row(sid, job_folder, recipe.epochs, time.monotonic() - t0)
        if pruned:
            result = {**result, "status": "failed", "error": f"pruned by Optuna at epoch {pruned['epoch']}"}
        _append(results_path, result)
        earlier[sid] = result
        return _values(result, row)

    def _values(result: dict, row: dict):
        if result["status"] != "done":
            if str(result.get("error", "")).startswith("pruned"):
                raise optuna.TrialPruned(result["error"])
            raise RuntimeError(result.get("error", "the job failed"))
        values = {"ap": result["ap"], **{k: row[k] for k in ("params", "gflops", "activations", "latency_ms")
                                         if k in row}}
        return values[objectives[0]] if single else tuple(values[o] for o in objectives)

    study.optimize(objective, n_trials=trials, catch=(RuntimeError,), gc_after_trial=True)
    states = [t.state for t in study.trials]
    best = [{"id": t.user_attrs.get("id"), "number": t.number, "values": t.values} for t in study.best_trials]
    counts = {"trials": len(states), "complete": states.count(optuna.trial.TrialState.COMPLETE),
              "pruned": states.count(optuna.trial.TrialState.PRUNED), "failed": states.count(optuna.trial.TrialState.FAIL),
              "best": best}
    log(f"space search {space.name}: {counts['trials']} trials ({counts['complete']} complete, {counts['pruned']} "
        f"pruned, {counts['failed']} failed); best: " + "; ".join(f"{b['id']} {b['values']}" for b in best[:5]))
    return counts


__all__ = ["MAX_TRIALS", "OBJECTIVES", "SAMPLERS", "STUDY_FILE", "parse_objectives", "search_space", "suggest"]
