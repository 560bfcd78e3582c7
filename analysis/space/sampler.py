"""Rejection sampling of a design space: distinct configs, deterministic per seed, within the constraints.

Each draw copies the base's concise mapping, sets every knob (in the space file's order, one seeded
``numpy.random.Generator`` for the whole run), parses the mapping with ``hrnet_core.load_config`` and identifies it
by ``sample_id`` (a hash of its canonical mapping). A draw is rejected, with its reason counted, when the config
does not parse or the counter refuses it (``config: <field>``, e.g. an input size not a multiple of 32), when it
falls outside a constraint (``gflops.max`` ...), or when it repeats an accepted config (``duplicate``); a repeat of
a rejected config counts under that config's reason again, without a second count. Latency (optional) is
measured only for configs inside every other constraint.

The number of draws is bounded (``draw_limit``); when the space cannot give ``n`` configs within it a
``SpaceError`` says which reason rejected most.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import hrnet_core as hc
from analysis.space.base_mapping import canonical_text, sample_id, set_path
from analysis.space.complexity_counts import complexity_counts
from analysis.space.space_file import Space, SpaceError, check_count

EARLY_STOP_DRAWS = 1000  # none accepted after this many draws: the constraints are not met (in practice)
DUPLICATE = "duplicate"


def draw_limit(n: int) -> int:
    """The most draws for ``n`` configs: ``10 n + 1000``."""
    return 10 * n + EARLY_STOP_DRAWS


@dataclass(frozen=True)
class SampleRun:
    """The outcome of ``sample_space``: ``samples`` (one dict per config, the ``samples.jsonl`` rows), ``draws``
    made, ``rejected`` (reason -> draws) and one ``example`` message per reason."""

    samples: tuple[dict, ...]
    draws: int
    rejected: dict[str, int]
    examples: dict[str, str]

    def rejection_text(self, top: int = 3) -> str:
        """The most frequent rejection reasons, ``gflops.max 812 (e.g. ...), duplicate 40``."""
        parts = [f"{r} {c}" + (f" (e.g. {self.examples[r]})" if self.examples.get(r) else "")
                 for r, c in Counter(self.rejected).most_common(top)]
        return ", ".join(parts) or "none"


def _metric_text(metric: str, value: float) -> str:
    return f"{value:.4g}" if metric in ("gflops", "latency_ms") else f"{value:,.0f}"


def sample_space(space: Space, n: int | None = None, seed: int | None = None,
                 latency: Callable[[object], float] | None = None,
                 on_latency: Callable[[int, int], None] | None = None) -> SampleRun:
    """``n`` distinct configs of ``space`` (default ``space.samples``) drawn with ``seed`` (default
    ``space.seed``), each inside every constraint.

    Each sample: ``id``, ``config`` (the canonical concise mapping named ``<space>-<id>``: ``hc.load_config`` builds
    it as is), ``knobs`` (the value drawn per key), ``params``, ``conv_linear_macs``, ``gflops``, ``activations``
    (``analysis.space.complexity_counts``) and, with ``latency`` (a callable: config -> batch-1 ms), ``latency_ms``.
    ``on_latency(measured, accepted)`` is called after each measurement (a progress line).

    Raises ``SpaceError`` (a ``UserInputError``) for a bad ``n`` or ``seed`` and when ``n`` configs are not found
    within ``draw_limit(n)`` draws (or none within the first ``EARLY_STOP_DRAWS``), naming the reason that rejected
    most. A ``latency_ms`` constraint without ``latency`` is a ``SpaceError`` too."""
    n = space.samples if n is None else check_count(n, "-n")
    seed = space.seed if seed is None else seed
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SpaceError("--seed", f"must be a non-negative integer, got {seed!r}")
    if space.bound("latency_ms") is not None and latency is None:
        raise SpaceError(f"{space.source}: constraints.latency_ms", "needs measured latency: run with --latency")
    rng = np.random.default_rng(seed)
    analytic_bounds = [b for b in space.constraints if b.metric != "latency_ms"]
    latency_bound = space.bound("latency_ms")
    accepted: list[dict] = []
    seen: dict[str, str | None] = {}  # id -> the reason it was rejected (None: accepted)
    ids_by_text: dict[str, str] = {}  # a drawn mapping's canonical text -> its config's id (parsed once)
    unparsed: dict[str, str] = {}  # a drawn mapping's canonical text -> why it does not parse
    rejected: Counter = Counter()
    examples: dict[str, str] = {}
    measured = draws = 0
    limit = draw_limit(n)

    def reject(reason: str, example: str = "") -> str:
        rejected[reason] += 1
        if example and reason not in examples:
            examples[reason] = example
        return reason

    while len(accepted) < n and draws < limit and not (draws >= EARLY_STOP_DRAWS and not accepted):
        draws += 1
        mapping = space.base_mapping()
        knobs = {}
        for knob in space.knobs:
            value = knob.draw(rng)
            knobs[knob.key] = value
            set_path(mapping, knob.path, value)
        text = canonical_text(mapping)
        if text in unparsed:  # the same mapping again: it does not parse, as before
            reject(unparsed[text])
            continue
        sid = ids_by_text.get(text)
        if sid is None:
            try:
                cfg = hc.load_config(mapping)
            except hc.ConfigError as err:
                unparsed[text] = reject(f"config: {err.field or 'config'}", err.message)
                continue
            sid, canon = sample_id(cfg)
            ids_by_text[text] = sid
        if sid in seen:  # a repeat: of an accepted config, or of a rejected one (its reason again)
            reject(DUPLICATE if seen[sid] is None else seen[sid])
            continue
        try:
            counts = complexity_counts(cfg)
        except hc.ConfigError as err:
            seen[sid] = reject(f"config: {err.field or 'config'}", err.message)
            continue
        failed = next(((b, side) for b in analytic_bounds if (side := b.failure(counts[b.metric]))), None)
        if failed:
            b, side = failed
            limit_value = b.low if side == "min" else b.high
            seen[sid] = reject(f"{b.metric}.{side}", f"{b.metric} {_metric_text(b.metric, counts[b.metric])} "
                               f"{'<' if side == 'min' else '>'} {_metric_text(b.metric, limit_value)}")
            continue
        row = {"id": sid, "config": {"name": f"{space.name}-{sid}", **canon}, "knobs": knobs, **counts}
        if latency is not None:
            try:
                ms = float(latency(cfg))
            except hc.UserInputError as err:  # too large to build, the fast path refusing it ...
                seen[sid] = reject("latency: not measurable", str(err))
                continue
            measured += 1
            row["latency_ms"] = ms
            side = latency_bound.failure(ms) if latency_bound else None
            if side:
                limit_value = latency_bound.low if side == "min" else latency_bound.high
                seen[sid] = reject(f"latency_ms.{side}", f"latency_ms {ms:.4g} {'<' if side == 'min' else '>'} "
                                   f"{limit_value:.4g}")
                if on_latency:
                    on_latency(measured, len(accepted))
                continue
        seen[sid] = None
        accepted.append(row)
        if on_latency and latency is not None:
            on_latency(measured, len(accepted))
    run = SampleRun(tuple(accepted), draws, dict(rejected), examples)
    if len(accepted) < n:
        why = (f"no config in the first {draws} draws" if not accepted else
               f"only {len(accepted)} of {n} distinct configs in {draws} draws (the limit)")
        top = Counter(rejected).most_common(1)
        most = top[0][0] if top else "none"
        field = f"constraints.{most}" if most.split(".")[0] in {b.metric for b in space.constraints} else "sample"
        hint = " (the space has fewer distinct configs than asked?)" if most == DUPLICATE else ""
        raise SpaceError(f"{space.source}: {field}", f"{why}; rejected most by {most}{hint}; rejections: "
                         f"{run.rejection_text()}")
    return run


def value_range(samples, field: str) -> tuple[float, float]:
    """``(min, max)`` of ``field`` over the samples (``(nan, nan)`` for none)."""
    vals = [s[field] for s in samples if s.get(field) is not None]
    return (min(vals), max(vals)) if vals else (math.nan, math.nan)


__all__ = ["DUPLICATE", "EARLY_STOP_DRAWS", "SampleRun", "draw_limit", "sample_space", "value_range"]
