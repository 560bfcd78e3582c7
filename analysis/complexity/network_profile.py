"""Measured latency of another registered network (Lite-HRNet, HRFormer), part by part, from its parts plan.

HRNet's profiler (``analysis.complexity.profiler``) runs the model piece by piece; another network's forward is its
own code, so here the whole model runs once per iteration with a forward pre- and post-hook on every module a part
owns (``NetworkSpec.parts``: the ``PartPlan`` prefixes). A part's time is the sum of its modules' spans:
``time.perf_counter`` on the CPU (the forward is synchronous there), CUDA events on a GPU. What runs between the
parts' modules — Lite-HRNet's channel split, concatenation and shuffle, HRFormer's padding to whole windows where
it lies outside a module — and the hooks' own cost land in one ``between parts`` row, so the rows add up to the
hooked forward; the ``total`` row is the median of forwards timed without hooks.

``mode="branch"``: one row per part (``stage0.module1.branch2``, ``...cross_resolution``, ``...fuse.1<-0``);
``mode="stage"``: parts summed per stage (``stem``, ``transition<S>``, each stage's modules, ``head``).
``gmacs``: Conv2d + Linear + window-attention multiply-accumulates (1e9) from the closed form, so ``gmacs_per_s``
is what the part achieves; ``activation_mib``: the part's Conv2d / Linear / matmul outputs at the run dtype.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import pandas as pd
import torch

from analysis.complexity.network_counts import COMPONENT, plans_and_counts
from hrnet_core.networks.model_config import NetworkConfig

BETWEEN = "between parts"


def _group(plan, mode: str) -> str:
    if mode == "branch" or plan.kind in ("stem", "layer1", "head"):
        return plan.key if mode == "branch" else ("head" if plan.kind == "head" else plan.kind)
    if plan.kind == "transition":
        return plan.key.split(".")[0]
    return plan.stage


class _PartTimer:
    """Forward hooks that add each part's module spans (ms) of one pass into ``spans``."""

    def __init__(self, model: torch.nn.Module, owners: dict[str, str], cuda: bool):
        self.cuda = cuda
        self.spans: dict[str, float] = {}
        self.events: list[tuple[str, object, object]] = []
        self._open: dict[int, object] = {}
        modules = dict(model.named_modules())
        self.handles = []
        for prefix, group in owners.items():
            mod = modules.get(prefix)
            if mod is None:
                continue  # e.g. a BatchNorm the fast path folded away: its conv's prefix still times the pair
            self.handles.append(mod.register_forward_pre_hook(self._start))
            self.handles.append(mod.register_forward_hook(self._stop(group)))

    def _stamp(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _start(self, module, inputs):
        self._open[id(module)] = self._stamp()

    def _stop(self, group: str):
        def hook(module, inputs, output):
            start, end = self._open.pop(id(module)), self._stamp()
            if self.cuda:
                self.events.append((group, start, end))
            else:
                self.spans[group] = self.spans.get(group, 0.0) + (end - start) * 1e3
        return hook

    def read(self) -> dict[str, float]:
        """This pass's spans (ms per group); CUDA events are read after a synchronize by the caller."""
        for group, start, end in self.events:
            self.spans[group] = self.spans.get(group, 0.0) + start.elapsed_time(end)
        spans, self.spans, self.events = self.spans, {}, []
        return spans

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _wall(device: torch.device, fn: Callable[[], object]) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1e3


def part_groups(cfg: NetworkConfig, mode: str) -> tuple[dict[str, str], list[str]]:
    """``(owners, order)``: the group (a profile row) of every module prefix of ``cfg``'s parts plan, and the
    groups in forward order (``BETWEEN`` not included)."""
    plans, _ = plans_and_counts(cfg)
    owners = {prefix: _group(p, mode) for p in plans for prefix in p.prefixes}
    return owners, list(dict.fromkeys(_group(p, mode) for p in plans))


def profile_network(cfg: NetworkConfig, model: torch.nn.Module, x: torch.Tensor, device: torch.device, mode: str,
                    warmup: int, iters: int, tick: Callable[[int], None]) -> list[dict]:
    """Rows (``analysis.complexity.profiler.PROFILE_COLUMNS`` minus the device / dtype / memory columns, which the
    caller adds) for one batch ``x`` ``(N, 3, H, W)`` on ``model`` (eval, on ``device``), in forward order: one
    per group of parts (module docstring), ``between parts`` and ``total``. Times in ms (median of ``iters``
    passes after ``warmup``); ``tick(1)`` after each pass."""
    plans, counts = plans_and_counts(cfg)
    owners, order = part_groups(cfg, mode)
    meta = {}
    for p in plans:
        g = _group(p, mode)
        c = counts[p.key]
        component = COMPONENT.get(p.kind, p.kind) if mode == "branch" or p.kind not in ("branch", "fusion") \
            else "modules"
        prev = meta.get(g, {"stage": p.stage, "module": p.module if mode == "branch" else None,
                            "branch": p.branch if mode == "branch" else None, "component": component,
                            "macs": 0, "acts": 0})
        prev["macs"] += c.conv_linear_macs + c.attention_macs
        prev["acts"] += c.activations
        meta[g] = prev
    cuda = device.type == "cuda"
    per_group: dict[str, list[float]] = {g: [] for g in order}
    between, totals = [], []
    timer = _PartTimer(model, owners, cuda)
    try:
        for it in range(warmup + iters):
            wall = _wall(device, lambda: model(x))
            spans = timer.read()
            if it >= warmup:
                for g in order:
                    per_group[g].append(spans.get(g, 0.0))
                between.append(max(0.0, wall - sum(spans.values())))
            tick(1)
    finally:
        timer.remove()
    for it in range(warmup + iters):
        plain = _wall(device, lambda: model(x))
        if it >= warmup:
            totals.append(plain)
        tick(1)
    b = x.shape[0]
    rows = []
    medians = {g: statistics.median(per_group[g]) for g in order}
    medians[BETWEEN] = statistics.median(between)
    whole = sum(medians.values())
    for g in [*order, BETWEEN]:
        m = meta.get(g, {"stage": None, "module": None, "branch": None, "component": "glue", "macs": 0, "acts": 0})
        times = per_group.get(g, between)
        med = medians[g]
        gmacs = m["macs"] * b / 1e9
        rows.append({"part": g, "stage": m["stage"], "module": m["module"], "branch": m["branch"],
                     "component": m["component"], "batch": b, "median_ms": med, "min_ms": min(times),
                     "share": med / whole if whole else 0.0, "gmacs": gmacs,
                     "gmacs_per_s": gmacs / (med / 1e3) if med > 0 and gmacs else float("nan"),
                     "activations": m["acts"] * b})
    total_macs = sum(m["macs"] for m in meta.values()) * b / 1e9
    med = statistics.median(totals)
    rows.append({"part": "total", "stage": None, "module": None, "branch": None, "component": "total", "batch": b,
                 "median_ms": med, "min_ms": min(totals), "share": 1.0, "gmacs": total_macs,
                 "gmacs_per_s": total_macs / (med / 1e3) if med > 0 else float("nan"),
                 "activations": sum(m["acts"] for m in meta.values()) * b})
    return rows


def passes(warmup: int, iters: int, batch_sizes: Sequence[int]) -> int:
    """How many forwards ``profile_network`` runs over ``batch_sizes`` (hooked and plain), for a progress bar."""
    return 2 * (warmup + iters) * len(batch_sizes)


def frame(rows: list[dict], columns: Sequence[str]) -> pd.DataFrame:
    """``rows`` as a frame with ``columns`` (missing ones NaN)."""
    return pd.DataFrame(rows).reindex(columns=list(columns))


__all__ = ["BETWEEN", "frame", "part_groups", "passes", "profile_network"]
