"""Why HRNet runs slower than its FLOPs suggest, measured: achieved GFLOP/s and % of this machine's peak per
part (stage, or each branch's residual units and each fusion), operator calls and memory traffic.

- **Peak** (``measure_peak``): the best of a few square matrix products (2048 on the CPU, 8192 on CUDA) in
  the dtype the profile runs in, timed here and now: what a dense kernel reaches on this machine with these
  threads, not the data sheet's FMA peak (a 2048 float32 matmul reaches about 2/3 of the FMA peak on AVX-512).
- **Work**: GFLOP = 2 x the paper convention's multiply-adds (conv / linear, ``analysis.complexity``) / 1e9,
  from the profiler's ``gmacs`` column; time from ``analysis.profiler.profile`` (same parts, same order).
- **Operator calls and memory traffic** (``part_traffic``): one untimed pass of the profiler's parts under a
  dispatch mode that sees every ATen operator: calls (views excluded), bytes of every tensor an operator
  reads (weights counted apart) and writes. No cache reuse between operators is assumed, so the traffic is
  an upper bound on DRAM traffic and ``intensity`` (FLOP per byte) a lower bound.
- ``roofline_frame`` joins them per part, ``group_parts`` rolls parts up (per branch: stem, layer1,
  transitions, branch k at 1/(4*2^k), fusions, head), ``reading`` says what the numbers mean in a paragraph.

Everything returns DataFrames or frozen dataclasses; the CLI (``analyze --profile``) and the Complexity page
draw them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import hrnet_core as hc
from analysis.complexity.profiler import Part, model_parts, profile
from analysis.complexity.report import AnalysisError
from hrnet_core.device import autocast, device_label, prepare, prepare_input, resolve_device

ROOFLINE_COLUMNS = (
    "part", "group", "batch", "median_ms", "share", "gflop", "flop_share", "gflop_per_s", "pct_of_peak", "op_calls",
    "read_mib", "weight_mib", "written_mib", "intensity",
)
PEAK_SIZES = {"cpu": 2048, "cuda": 8192}
BANDWIDTH_MIB = 128


@dataclass(frozen=True)
class Peak:
    """Measured dense-matmul rate: ``gflop_per_s`` (2 flops per multiply-add, 1e9), the best of ``repeats``
    ``size`` x ``size`` products in ``dtype`` on ``device`` with ``threads`` CPU threads."""

    gflop_per_s: float
    dtype: str
    device: str
    threads: int
    size: int
    repeats: int
    gb_per_s: float  # memory bandwidth: best copy of a BANDWIDTH_MIB tensor (read + write), 1e9 bytes/s

    def describe(self) -> str:
        return (f"peak {self.gflop_per_s:.1f} GFLOP/s: best of {self.repeats} {self.dtype} {self.size}x{self.size} "
                f"matmuls on {self.device}, {self.threads} CPU threads; memory {self.gb_per_s:.1f} GB/s "
                f"(a {BANDWIDTH_MIB} MiB copy)")


def measure_peak(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, size: int | None = None,
                 repeats: int = 4) -> Peak:
    """Time ``repeats`` matrix products of ``size`` x ``size`` (default ``PEAK_SIZES``) after one warm-up;
    about 0.5 s on a 2-core CPU. Raises ``AnalysisError`` for a bad size or repeat count."""
    dev = torch.device(device)
    size = PEAK_SIZES.get(dev.type, 2048) if size is None else size
    if size < 16 or repeats < 1:
        raise AnalysisError("peak: size must be >= 16 and repeats >= 1")
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(dev, dtype)
    b = torch.randn(size, size, generator=gen).to(dev, dtype)
    src = torch.empty(BANDWIDTH_MIB * 2**18, device=dev).fill_(1.0)
    dst = torch.empty_like(src)
    with torch.inference_mode():
        best = _best(lambda: torch.mm(a, b), dev, repeats)
        copy = _best(lambda: dst.copy_(src), dev, repeats)
    return Peak(2 * size**3 / best / 1e9, str(dtype).replace("torch.", ""), device_label(dev), torch.get_num_threads(),
                size, repeats, 2 * src.numel() * src.element_size() / copy / 1e9)


def _best(fn, dev: torch.device, repeats: int) -> float:
    """Fastest of ``repeats`` timed calls of ``fn`` after one warm-up, in seconds."""
    best = float("inf")
    for i in range(repeats + 1):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t = time.perf_counter()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i:
            best = min(best, time.perf_counter() - t)
    return best


def roof(peak: Peak, intensities: Sequence[float] = (), points: int = 48) -> pd.DataFrame:
    """The roof of the roofline model: ``intensity`` (FLOP/byte, log-spaced over a range covering
    ``intensities``) and ``gflop_per_s`` = min(peak, bandwidth x intensity)."""
    finite = [v for v in intensities if v == v and v > 0]
    lo = min([0.5] + [v / 2 for v in finite])
    hi = max([4 * peak.gflop_per_s / peak.gb_per_s] + [2 * v for v in finite])
    xs = [lo * (hi / lo) ** (i / (points - 1)) for i in range(points)]
    return pd.DataFrame({"intensity": xs, "gflop_per_s": [min(peak.gflop_per_s, peak.gb_per_s * v) for v in xs]})


@dataclass(frozen=True)
class Traffic:
    """What one part does in one forward: ATen operator calls (views excluded) and bytes read (activations
    and weights; ``weight_bytes`` is the weights' part of it) and written."""

    op_calls: int
    read_bytes: int
    weight_bytes: int
    written_bytes: int


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)


class _TrafficCounter(TorchDispatchMode):
    def __init__(self, weights: set[int]):
        super().__init__()
        self.weights = weights
        self.calls = self.read = self.weight = self.written = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            self.calls += 1
            for t in _tensors((args, kwargs or {})):
                n = t.numel() * t.element_size()
                self.read += n
                if t.data_ptr() in self.weights:
                    self.weight += n
            self.written += sum(t.numel() * t.element_size() for t in _tensors(out))
        return out


def part_traffic(parts: Sequence[Part], x: torch.Tensor, model: torch.nn.Module) -> list[Traffic]:
    """One untimed forward of ``parts`` (``analysis.profiler.model_parts``) on ``x`` ``(N, 3, H, W)``, counting
    each part's operator calls and bytes; ``model`` is the module whose parameters and buffers are weights.
    Run it under the same autocast as the timing, so bytes are at the dtype that runs."""
    weights = {t.data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    out = []
    state = x
    with torch.inference_mode():
        for p in parts:
            with _TrafficCounter(weights) as c:
                state = p.fn(state)
            out.append(Traffic(c.calls, c.read, c.weight, c.written))
    return out


def network_traffic(cfg, x: torch.Tensor, model: torch.nn.Module, mode: str) -> list[Traffic]:
    """``part_traffic`` for another registered network (a ``NetworkConfig``), whose forward is not split into
    pieces: one untimed forward under the counter, each operator charged to the profile row
    (``analysis.complexity.network_profile``) whose module is running, the rest to ``between parts``. Same
    order as that profile's rows (``total`` excluded)."""
    from analysis.complexity.network_profile import BETWEEN, part_groups

    owners, order = part_groups(cfg, mode)
    weights = {t.data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    counters = {g: _TrafficCounter(weights) for g in [*order, BETWEEN]}
    active = [counters[BETWEEN]]
    modules = dict(model.named_modules())
    handles = []

    def enter(group):
        def hook(module, inputs):
            active[-1].__exit__(None, None, None)
            active.append(counters[group])
            active[-1].__enter__()
        return hook

    def leave(module, inputs, output):
        active.pop().__exit__(None, None, None)
        active[-1].__enter__()

    for prefix, group in owners.items():
        if prefix in modules:
            handles.append(modules[prefix].register_forward_pre_hook(enter(group)))
            handles.append(modules[prefix].register_forward_hook(leave))
    try:
        with torch.inference_mode():
            active[-1].__enter__()
            try:
                model(x)
            finally:
                active[-1].__exit__(None, None, None)
    finally:
        for handle in handles:
            handle.remove()
    return [Traffic(c.calls, c.read, c.weight, c.written) for c in counters.values()]


def group_label(component: str, branch) -> str:
    """The roll-up group of a profiler part: ``branch k (1/x)`` for a branch's residual units, else the
    component in the plural where there are many (transitions, fusions) or stages as they are."""
    if component == "branch_blocks" and branch is not None and branch is not pd.NA:
        return f"branch {int(branch)} (1/{4 * 2 ** int(branch)})"
    return {"transition": "transitions", "fusion": "fusions"}.get(component, component)


def roofline_frame(profile: pd.DataFrame, traffic: Sequence[Traffic], peak: Peak) -> pd.DataFrame:
    """Per part of one batch size's ``profile`` frame (``total`` row excluded; ``traffic`` in the same order):
    ``ROOFLINE_COLUMNS``: ms, shares of time and of GFLOP, achieved GFLOP/s, % of ``peak``, operator calls,
    MiB read (weights apart) and written, intensity in FLOP per byte moved. Raises ``AnalysisError`` when the
    frame holds several batch sizes or the traffic does not match its parts."""
    body = profile[profile["part"] != "total"]
    if body["batch"].nunique() != 1:
        raise AnalysisError("roofline: pass one batch size's rows of the profile")
    if len(body) != len(traffic):
        raise AnalysisError(f"roofline: {len(body)} parts but {len(traffic)} traffic counts")
    rows = []
    total_ms, total_gflop = float(body["median_ms"].sum()), 2 * float(body["gmacs"].sum())
    for (_, r), t in zip(body.iterrows(), traffic):
        gflop = 2 * float(r["gmacs"])
        rate = gflop / (r["median_ms"] / 1e3) if r["median_ms"] > 0 else float("nan")
        moved = t.read_bytes + t.written_bytes
        rows.append({
            "part": r["part"], "group": r["part"] if r["component"] == "modules" else group_label(r["component"], r["branch"]),
            "batch": int(r["batch"]), "median_ms": float(r["median_ms"]), "share": r["median_ms"] / total_ms,
            "gflop": gflop, "flop_share": gflop / total_gflop if total_gflop else 0.0, "gflop_per_s": rate,
            "pct_of_peak": 100 * rate / peak.gflop_per_s, "op_calls": t.op_calls, "read_mib": t.read_bytes / 2**20,
            "weight_mib": t.weight_bytes / 2**20, "written_mib": t.written_bytes / 2**20,
            "intensity": 1e9 * gflop / moved if moved else float("nan"),
        })
    return pd.DataFrame(rows, columns=list(ROOFLINE_COLUMNS))


def group_parts(frame: pd.DataFrame, peak: Peak) -> pd.DataFrame:
    """``frame`` (``roofline_frame``) rolled up by ``group`` in first-seen order, rates recomputed from the
    sums; same columns with ``part`` = the group."""
    sums = ["median_ms", "share", "gflop", "flop_share", "op_calls", "read_mib", "weight_mib", "written_mib"]
    g = frame.groupby("group", sort=False)[sums].sum().reset_index()
    g["part"] = g["group"]
    g["batch"] = int(frame["batch"].iloc[0])
    g["gflop_per_s"] = g["gflop"] / (g["median_ms"] / 1e3)
    g["pct_of_peak"] = 100 * g["gflop_per_s"] / peak.gflop_per_s
    moved = (g["read_mib"] + g["written_mib"]) * 2**20
    g["intensity"] = 1e9 * g["gflop"] / moved
    return g[list(ROOFLINE_COLUMNS)]


def reading(grouped: pd.DataFrame, peak: Peak) -> str:
    """One paragraph on a ``group_parts`` frame: the whole forward's share of peak, the most and least
    efficient groups with their FLOP and time shares, and where time goes beyond the FLOP share."""
    ms, gflop = float(grouped["median_ms"].sum()), float(grouped["gflop"].sum())
    overall = gflop / (ms / 1e3) if ms > 0 else float("nan")
    batch = int(grouped["batch"].iloc[0])
    heavy = grouped[grouped["flop_share"] >= 0.01]
    best = heavy.loc[heavy["pct_of_peak"].idxmax()]
    worst = heavy.loc[heavy["pct_of_peak"].idxmin()]

    def say(r) -> str:
        return (f"{r['part']}: {100 * r['flop_share']:.0f} % of the FLOPs in {100 * r['share']:.0f} % of the time at "
                f"{r['pct_of_peak']:.0f} % of peak ({r['gflop_per_s']:.0f} GFLOP/s, {int(r['op_calls'])} operator "
                f"calls, {r['intensity']:.0f} FLOP/byte)")

    over = grouped[grouped["share"] > grouped["flop_share"]].sort_values("share", ascending=False)
    extra = ", ".join(f"{r['part']} ({100 * r['share']:.0f} % of the time, {100 * r['flop_share']:.0f} % of the FLOPs)"
                      for _, r in over.head(3).iterrows())
    calls = int(grouped["op_calls"].sum())
    text = (f"At batch {batch} on {peak.device} the forward pass does {gflop:.1f} GFLOP in {ms:.1f} ms: "
            f"{overall:.0f} GFLOP/s, {100 * overall / peak.gflop_per_s:.0f} % of the measured peak "
            f"({peak.gflop_per_s:.0f} GFLOP/s, {peak.dtype} {peak.size}x{peak.size} matmul). "
            f"Most efficient, {say(best)}; least efficient, {say(worst)}. ")
    if extra:
        text += f"Slower than their FLOPs: {extra}. "
    slow = heavy[(heavy["pct_of_peak"] < 100 * overall / peak.gflop_per_s)]
    low_ai = slow.sort_values("intensity").head(2)
    text += f"The {calls} operator calls take {1e3 * ms / calls:.0f} µs each on average"
    if len(low_ai):
        names = " and ".join(f"{r['part']} ({r['intensity']:.0f} FLOP/byte, {r['op_calls'] / max(r['gflop'], 1e-9):.0f} "
                             "calls per GFLOP)" for _, r in low_ai.iterrows())
        text += (f"; below the average rate, the lowest arithmetic intensity is in {names}: there memory traffic and "
                 "per-call overhead, not arithmetic, set the time")
    text += "."
    return text


@dataclass(frozen=True)
class Roofline:
    """``roofline`` for one batch size: per-part and grouped frames, the peak they are measured against,
    and the reading."""

    parts: pd.DataFrame
    grouped: pd.DataFrame
    peak: Peak
    text: str


def roofline(profile: pd.DataFrame, traffic: Sequence[Traffic], peak: Peak) -> Roofline:
    """The frames and the reading of one batch size's ``profile`` rows (see ``roofline_frame``)."""
    parts = roofline_frame(profile, traffic, peak)
    grouped = group_parts(parts, peak)
    return Roofline(parts, grouped, peak, reading(grouped, peak))


def peak_dtype(profile: pd.DataFrame) -> torch.dtype:
    """The dtype the profile ran in (its ``dtype`` column): bfloat16 for autocast, else float32."""
    return torch.bfloat16 if "bfloat16" in str(profile["dtype"].iloc[0]) else torch.float32


def format_roofline(frame: pd.DataFrame) -> str:
    """A fixed-width table of a ``roofline_frame`` or ``group_parts`` frame (the CLI prints it)."""
    show = pd.DataFrame({
        "part": frame["part"], "ms": frame["median_ms"].map("{:.2f}".format),
        "time %": (100 * frame["share"]).map("{:.1f}".format), "GFLOP": frame["gflop"].map("{:.3f}".format),
        "FLOP %": (100 * frame["flop_share"]).map("{:.1f}".format),
        "GFLOP/s": frame["gflop_per_s"].map("{:.1f}".format), "% peak": frame["pct_of_peak"].map("{:.1f}".format),
        "op calls": frame["op_calls"].astype(int), "MiB read": frame["read_mib"].map("{:.1f}".format),
        "MiB written": frame["written_mib"].map("{:.1f}".format), "FLOP/byte": frame["intensity"].map("{:.1f}".format),
    })
    return show.to_string(index=False)


def measured(cfg, device: str = "auto", batch: int = 1, mode: str = "branch", warmup: int | None = None,
             iters: int | None = None, input_hw=None, model=None, fast: bool = False,
             peak: Peak | None = None) -> tuple[pd.DataFrame, Roofline]:
    """Profile ``cfg`` (``analysis.profiler.profile``) at one ``batch`` and build its ``Roofline``: the parts are
    counted with ``part_traffic`` on the same prepared model, the peak measured in the profile's dtype unless
    given. Returns (profile frame, roofline). Raises what ``profile`` raises."""
    cfg = hc.load_config(cfg)
    if input_hw is not None:
        cfg = cfg.with_input(tuple(input_hw))
    base = (model if model is not None else hc.build_model(cfg)).eval()
    prof = profile(cfg, device=device, batch_sizes=(batch,), mode=mode, warmup=warmup, iters=iters, model=base,
                   fast=fast)
    traffic = count_traffic(cfg, base, device, mode, batch, fast)
    if peak is None:
        peak = measure_peak(resolve_device(device), peak_dtype(prof))
    return prof, roofline(prof, traffic, peak)


def count_traffic(cfg, model, device: str = "auto", mode: str = "branch", batch: int = 1,
                  fast: bool = False) -> list[Traffic]:
    """``part_traffic`` of ``model`` (built for ``cfg``) prepared as ``analysis.profiler.profile`` prepares it
    (device, channels_last on CUDA or with ``fast``, bf16 autocast on CUDA), on a seeded batch of ``batch``."""
    dev = resolve_device(device)
    base = model.eval()
    if fast:
        from hrnet_core.fast_path import fast_model

        base = fast_model(base)
    prepared = prepare(base, dev)
    x = prepare_input(torch.randn(batch, 3, *cfg.input_hw, generator=torch.Generator().manual_seed(0)), dev)
    if fast:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(dev):
        if not isinstance(cfg, hc.HRNetConfig):
            return network_traffic(cfg, x, prepared, mode)
        return part_traffic(model_parts(prepared, mode), x, prepared)


__all__ = ["BANDWIDTH_MIB", "PEAK_SIZES", "ROOFLINE_COLUMNS", "Peak", "Roofline", "Traffic", "count_traffic",
           "format_roofline", "group_label", "group_parts", "measure_peak", "measured", "network_traffic", "part_traffic", "peak_dtype",
           "reading", "roof", "roofline", "roofline_frame"]
