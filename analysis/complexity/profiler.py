"""Measured latency and memory of an HRNet, part by part, on the current device.

``profile(cfg)`` runs the real model piece by piece — stem, layer1, each transition, each stage (``mode=
"stage"``), or each branch's residual units and each fusion of every module (``mode="branch"``), then the
head — and times every piece: CUDA events with warm-up on a GPU (under ``hrnet_core.device``'s bf16
autocast and channels_last), ``time.perf_counter`` on the CPU (float32). Pieces run in forward order on
the real intermediate tensors, so their sum is one forward pass (``tests/test_complexity_profiler.py``
checks the pieces reproduce ``model(x)``).

Memory: on CUDA, ``peak_mib`` is ``torch.cuda.max_memory_allocated`` while the piece runs (weights and live
tensors included) and ``workspace_mib`` the part of it above what was allocated when the piece started;
the CPU allocator keeps no such statistics, so both are NaN there. ``activation_mib`` (every device) is the
analytic footprint of the tensors the piece writes (``analysis.complexity.analytic``), at the dtype it runs in.
Why HRNet is slower than its FLOPs suggest shows in ``gmacs_per_s``: the high-resolution branches and the
fusions move many bytes per multiply-add.

``engine="onnxruntime"`` (CPU only) exports every piece as its own ONNX graph (``analysis.export.ort_engine``) on
the real intermediate tensors and times the chain of onnxruntime sessions the same way; ``dtype`` then
reads ``float32, onnxruntime <version>``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial

import pandas as pd
import torch

import hrnet_core as hc
from analysis.complexity.analytic import analyze
from analysis.complexity.report import AnalysisError, check_batch
from hrnet_core.budget import check_activations
from hrnet_core.device import autocast, device_label, prepare, prepare_input, resolve_device
from hrnet_core.errors import quote

MODES = ("stage", "branch")
PROFILE_COLUMNS = (
    "part", "stage", "module", "branch", "component", "batch", "median_ms", "min_ms", "share", "gmacs",
    "gmacs_per_s", "activation_mib", "peak_mib", "workspace_mib", "device", "dtype", "iters",
)


@dataclass(frozen=True)
class Part:
    """One timed piece: a function from the running state (tensor or list of branch tensors) to the next."""

    name: str
    stage: str
    module: int | None
    branch: int | None
    component: str
    fn: Callable


def _run_modules(modules, xs):
    for mod in modules:
        xs = mod(xs)
    return xs


def _run_branch(mod, k, xs):
    out = list(xs)
    out[k] = mod.branches[k](xs[k])
    return out


def model_parts(model: hc.HRNet, mode: str = "stage") -> list[Part]:
    """The pieces of ``model`` in forward order for ``mode`` (``stage`` or ``branch``)."""
    if mode not in MODES:
        raise AnalysisError(f"profile mode: unknown {quote(mode)}; expected one of {', '.join(MODES)}")
    parts = [
        Part("stem", "stem", None, None, "stem", model.forward_stem),
        Part("layer1", "stage1", None, 0, "layer1", lambda x: [model.layer1(x)]),
    ]
    for s, sname in enumerate(model.stage_names):
        parts.append(Part(f"transition{s + 1}", sname, None, None, "transition", getattr(model, f"transition{s + 1}")))
        modules = getattr(model, sname)
        if mode == "stage":
            parts.append(Part(sname, sname, None, None, "modules", partial(_run_modules, modules)))
            continue
        for m, mod in enumerate(modules):
            for k in range(len(mod.branches)):
                parts.append(Part(f"{sname}.{m}.branch{k}", sname, m, k, "branch_blocks", partial(_run_branch, mod, k)))
            parts.append(Part(f"{sname}.{m}.fusion", sname, m, None, "fusion", mod.fuse_branches))
    parts.append(Part("head", "head", None, None, "head", model.head_module))
    return parts


def onnxruntime_parts(parts: Sequence[Part], x: torch.Tensor, owner: torch.nn.Module) -> list[Part]:
    """``parts`` with each ``fn`` exported on its real input (from running the parts before it in PyTorch)
    and run in onnxruntime; same names, same chaining."""
    from analysis.export.ort_engine import OrtFunction

    out = []
    state = x
    for p in parts:
        fn = OrtFunction(p.fn, state, owner=owner)
        out.append(replace(p, fn=fn))
        with torch.inference_mode():
            state = p.fn(state)
    return out


def run_parts(parts: Sequence[Part], x):
    for p in parts:
        x = p.fn(x)
    return x


def _part_key(row, mode: str) -> str:
    stage, comp = row["stage"], row["component"]
    if comp in ("stem", "layer1", "head"):
        return comp
    if comp == "transition":
        return f"transition{int(stage[len('stage'):]) - 1}"
    if mode == "stage":
        return stage
    if comp == "fusion":
        return f"{stage}.{int(row['module'])}.fusion"
    return f"{stage}.{int(row['module'])}.branch{int(row['branch'])}"


def _analytic_by_part(cfg, input_hw, mode) -> dict[str, tuple[int, int]]:
    """Part name -> (macs, activation elements) per sample, from the analytic breakdown."""
    df = analyze(cfg, input_hw).breakdown
    keys = [_part_key(r, mode) for r in df[["stage", "component", "module", "branch"]].to_dict("records")]
    g = df.assign(part=keys).groupby("part", sort=False)[["macs", "activations"]].sum()
    return {p: (int(r.macs), int(r.activations)) for p, r in g.iterrows()}


def _time(parts, x, device, warmup, iters, tick: Callable[[int], None]) -> tuple[list[list[float]], list[float]]:
    """Per-part and per-iteration times in ms. ``tick(n)`` reports ``n`` more parts run: after each part on the
    CPU, outside its own two stamps (so a progress bar's drawing is in no part's time); after each iteration on
    CUDA, once the events are read (a host call between two events would time the GPU waiting)."""
    cuda = device.type == "cuda"
    per_part: list[list[float]] = [[] for _ in parts]
    totals: list[float] = []
    for it in range(warmup + iters):
        if cuda:
            events = [torch.cuda.Event(enable_timing=True) for _ in range(len(parts) + 1)]
            events[0].record()
        durations = []
        state = x
        for i, p in enumerate(parts):
            if cuda:
                state = p.fn(state)
                events[i + 1].record()
            else:
                start = time.perf_counter()
                state = p.fn(state)
                durations.append((time.perf_counter() - start) * 1e3)
                tick(1)
        if cuda:
            torch.cuda.synchronize(device)
            durations = [events[i].elapsed_time(events[i + 1]) for i in range(len(parts))]
            tick(len(parts))
        if it >= warmup:
            for i, d in enumerate(durations):
                per_part[i].append(d)
            totals.append(sum(durations))
        del state
    return per_part, totals


def _memory(parts, x, device) -> list[tuple[float, float]]:
    """(peak MiB, workspace MiB) per part on CUDA; NaN on CPU."""
    if device.type != "cuda":
        return [(float("nan"), float("nan"))] * len(parts)
    out = []
    state = x
    for p in parts:
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        state = p.fn(state)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        out.append((peak / 2**20, (peak - base) / 2**20))
    return out


def profile(
    cfg,
    device: str = "auto",
    batch_sizes: Sequence[int] = (1,),
    mode: str = "stage",
    warmup: int | None = None,
    iters: int | None = None,
    input_hw: tuple[int, int] | None = None,
    model: torch.nn.Module | None = None,
    seed: int = 0,
    engine: str = "torch",
    fast: bool = False,
    progress: Callable[[float, str], None] | None = None,
) -> pd.DataFrame:
    """Median latency (ms) and memory of each piece of ``cfg``'s model for each batch size.

    ``device``: ``auto`` (CUDA when available), ``cpu`` or ``cuda``. Defaults: 10 warm-up and 50 timed
    iterations on CUDA, 2 and 5 on the CPU. ``model`` (optional) is a built model with the weights to use.
    One row per piece and batch size, plus a ``total`` row per batch size (median of the per-iteration
    sums). Columns: ``PROFILE_COLUMNS`` (times in ms, memory in MiB, ``gmacs`` in 1e9 multiply-adds).
    ``engine``: ``torch`` or ``onnxruntime`` (CPU; module docstring). ``fast``: time the inference fast path
    (``hrnet_core.fast_path.fast_model``: BatchNorm folded, channels_last) instead of the official structure.
    ``progress(fraction, what)``, if given, is called as the parts run (``fraction`` 0..1 of all the parts'
    runs over every batch size and iteration; ``what`` names the batch); its drawing time is in no part's
    time, and an exception it raises stops the profile there (a page's Cancel).
    Raises ``AnalysisError`` for a bad device, batch size, mode, ``warmup`` or ``iters``, ``EngineError``
    for onnxruntime off the CPU.
    """
    from analysis.export.ort_engine import check_engine, onnxruntime_version

    cfg = hc.load_config(cfg)
    network = not isinstance(cfg, hc.HRNetConfig)
    if network and engine != "torch":
        raise AnalysisError(f"profile: by part in onnxruntime is HRNet's (its parts are exported one by one); for "
                            f"arch {cfg.arch} use --engine torch, or bench/latency.py --config FILE for the whole "
                            "forward in onnxruntime")
    if network and mode not in MODES:
        raise AnalysisError(f"profile mode: unknown {quote(mode)}; expected one of {', '.join(MODES)}")
    if input_hw is not None:
        cfg = cfg.with_input(tuple(input_hw))
    try:
        dev = resolve_device(device)
    except ValueError as err:
        raise AnalysisError(f"device: {err}") from None
    check_engine(engine, dev.type)
    for b in batch_sizes:
        check_batch(b)
        check_activations(cfg, b)  # before allocating: the profile runs the model for real
    cuda = dev.type == "cuda"
    warmup = (10 if cuda else 2) if warmup is None else warmup
    iters = (50 if cuda else 5) if iters is None else iters
    if warmup < 0 or iters <= 0:
        raise AnalysisError("profile: warmup must be >= 0 and iters > 0")
    model = (model if model is not None else hc.build_model(cfg)).eval()
    if fast:
        from hrnet_core.fast_path import fast_model

        model = fast_model(model)
    model = prepare(model, dev)
    if network:
        return _network_profile(cfg, model, dev, batch_sizes, mode, warmup, iters, seed, fast, progress)
    parts = model_parts(model, mode)
    per_sample = _analytic_by_part(cfg, None, mode)
    itemsize = 2 if cuda else 4
    dtype = "bfloat16 autocast, channels_last" if cuda else "float32"
    if engine == "onnxruntime":
        dtype = f"float32, onnxruntime {onnxruntime_version()}"
    if fast:
        dtype += ", fast path (BatchNorm folded, channels_last)"
    label = device_label(dev)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    h, w = cfg.input_hw
    runs = {"done": 0, "total": max(1, len(batch_sizes) * (warmup + iters) * len(parts))}

    def tick(n: int, what: str) -> None:
        runs["done"] += n
        if progress is not None:
            progress(min(1.0, runs["done"] / runs["total"]), what)

    for b in batch_sizes:
        x = prepare_input(torch.randn(b, 3, h, w, generator=gen), dev)
        if fast:
            x = x.contiguous(memory_format=torch.channels_last)
        timed = onnxruntime_parts(parts, x, model) if engine == "onnxruntime" else parts
        with torch.inference_mode(), autocast(dev):
            what = f"batch {b} on {label}: {warmup} warm-up + {iters} timed passes of {len(parts)} parts"
            per_part, totals = _time(timed, x, dev, warmup, iters, partial(tick, what=what))
            mem = _memory(timed, x, dev)
        medians = [statistics.median(t) for t in per_part]
        medians_sum = sum(medians)
        total_median = statistics.median(totals)
        total_macs = total_acts = 0
        for p, times, med, (peak, work) in zip(parts, per_part, medians, mem):
            macs, acts = per_sample.get(p.name, (0, 0))
            total_macs += macs * b
            total_acts += acts * b
            rows.append({
                "part": p.name, "stage": p.stage, "module": p.module, "branch": p.branch, "component": p.component,
                "batch": b, "median_ms": med, "min_ms": min(times), "share": med / medians_sum if medians_sum else 0.0,
                "gmacs": macs * b / 1e9, "gmacs_per_s": (macs * b / 1e9) / (med / 1e3) if med > 0 else float("nan"),
                "activation_mib": acts * b * itemsize / 2**20, "peak_mib": peak, "workspace_mib": work,
                "device": label, "dtype": dtype, "iters": iters,
            })
        peaks = [m[0] for m in mem]
        rows.append({
            "part": "total", "stage": None, "module": None, "branch": None, "component": "total", "batch": b,
            "median_ms": total_median, "min_ms": min(totals), "share": 1.0, "gmacs": total_macs / 1e9,
            "gmacs_per_s": (total_macs / 1e9) / (total_median / 1e3) if total_median > 0 else float("nan"),
            "activation_mib": total_acts * itemsize / 2**20, "peak_mib": max(peaks),
            "workspace_mib": max(m[1] for m in mem), "device": label, "dtype": dtype, "iters": iters,
        })
        del x
    df = pd.DataFrame(rows, columns=list(PROFILE_COLUMNS))
    for col in ("module", "branch"):
        df[col] = df[col].astype("Int64")
    return df


def _network_profile(cfg, model, dev, batch_sizes, mode, warmup, iters, seed, fast, progress) -> pd.DataFrame:
    """``profile`` of another registered network: its parts timed by hooks (``analysis.complexity.network_profile``)."""
    from analysis.complexity.network_profile import frame, passes, profile_network

    cuda = dev.type == "cuda"
    itemsize = 2 if cuda else 4
    dtype = ("bfloat16 autocast, channels_last" if cuda else "float32") + (
        ", fast path (BatchNorm folded, channels_last)" if fast else "")
    label = device_label(dev)
    gen = torch.Generator().manual_seed(seed)
    h, w = cfg.input_hw
    runs = {"done": 0, "total": max(1, passes(warmup, iters, batch_sizes))}
    rows = []
    for b in batch_sizes:
        x = prepare_input(torch.randn(b, 3, h, w, generator=gen), dev)
        if fast:
            x = x.contiguous(memory_format=torch.channels_last)
        what = f"batch {b} on {label}: {warmup} warm-up + {iters} timed passes, hooked and plain"

        def tick(n: int, what=what) -> None:
            runs["done"] += n
            if progress is not None:
                progress(min(1.0, runs["done"] / runs["total"]), what)

        with torch.inference_mode(), autocast(dev):
            for row in profile_network(cfg, model, x, dev, mode, warmup, iters, tick):
                acts = row.pop("activations")
                rows.append({**row, "activation_mib": acts * itemsize / 2**20, "peak_mib": float("nan"),
                             "workspace_mib": float("nan"), "device": label, "dtype": dtype, "iters": iters})
        del x
    df = frame(rows, PROFILE_COLUMNS)
    for col in ("module", "branch"):
        df[col] = df[col].astype("Int64")
    return df


def format_profile(df: pd.DataFrame) -> str:
    """A fixed-width text table of a ``profile`` frame (the CLI and the latency bench print it)."""
    show = df[["part", "batch", "median_ms", "share", "gmacs", "gmacs_per_s", "activation_mib", "peak_mib"]].copy()
    show["share"] = (show["share"] * 100).map(lambda v: f"{v:5.1f}%")
    for col, fmt in (("median_ms", "{:.3f}"), ("gmacs", "{:.3f}"), ("gmacs_per_s", "{:.1f}"), ("activation_mib", "{:.1f}"),
                     ("peak_mib", "{:.1f}")):
        show[col] = show[col].map(lambda v, f=fmt: "-" if pd.isna(v) else f.format(v))
    return show.to_string(index=False)


__all__ = ["MODES", "PROFILE_COLUMNS", "Part", "format_profile", "model_parts", "onnxruntime_parts", "profile",
           "run_parts"]
