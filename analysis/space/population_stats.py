"""Statistics of trained model populations (Radosavovic et al. 2019, "On Network Design Spaces for Visual
Recognition", sec. 3-4): error EDFs, complexity-normalized EDFs, the two-sample Kolmogorov-Smirnov test, Spearman
rank correlations (both from scipy, never our own test) and the 2-D Pareto front.

- ``error_edf``: the error empirical distribution function F(e) = (1/n) sum 1[e_i <= e], as pycls plots it
  (facebookresearch/pycls ``pycls/sweep/plotting.py`` ``plot_edf``: sorted errors against ``cumsum(1 / n)``); equal to
  ``scipy.stats.ecdf(errors).cdf`` at the errors.
- ``normalized_weights`` / ``normalized_edf``: the normalized comparison of the paper's sec. 3.2: each model gets a
  weight w_i (sum 1) so that every complexity bin holds the same mass, F^(e) = sum w_i 1[e_i <= e]; the weights
  are those of facebookresearch/nds ``notebooks/complexity.ipynb`` ``compute_norm_ws`` (``num_bins`` equal bins of
  the complexity range, w_i = 1 / (count of model i's bin) / num_bins, every bin non-empty). ``common_bins`` picks
  the range (the complexities every population covers) and the most bins (at most ``MAX_BINS``, the notebook's 40)
  that leave no population with an empty bin.
- ``pareto_front``: the points no other point dominates when both coordinates are minimized (error and a
  complexity): sort by x then y, keep each point whose y is below every y of a strictly smaller x (ties kept).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

MAX_BINS = 40


def error_edf(errors) -> tuple[list[float], list[float]]:
    """``(sorted errors, F at each)``: F = i / n for the i-th smallest (pycls ``plot_edf``). Empty in, empty out."""
    e = np.sort(np.asarray(errors, dtype=float))
    return e.tolist(), (np.arange(1, len(e) + 1) / max(len(e), 1)).tolist()


def normalized_weights(complexities, num_bins: int, c_range: tuple[float, float]) -> np.ndarray:
    """Per-model weights of the normalized EDF (nds ``compute_norm_ws``): ``num_bins`` equal bins over ``c_range``
    (the last bin closed, as ``np.histogram``'s), w_i = 1 / count(bin of i) / num_bins. Raises ``ValueError`` when a
    complexity is outside ``c_range`` or a bin is empty (the weights would not sum to 1)."""
    cs = np.asarray(complexities, dtype=float)
    lo, hi = c_range
    if cs.size and (cs.min() < lo or cs.max() > hi):
        raise ValueError(f"complexities outside the range [{lo}, {hi}]")
    hist, edges = np.histogram(cs, bins=num_bins, range=c_range)
    if np.count_nonzero(hist) != num_bins:
        raise ValueError(f"{num_bins - np.count_nonzero(hist)} of {num_bins} complexity bins are empty")
    inds = np.minimum(np.digitize(cs, bins=edges) - 1, num_bins - 1)  # the top edge belongs to the last bin
    return 1.0 / hist[inds] / num_bins


def normalized_edf(errors, weights) -> tuple[list[float], list[float]]:
    """``(sorted errors, cumulative weight at each)``: F^(e) = sum w_i 1[e_i <= e] at the errors."""
    e, w = np.asarray(errors, dtype=float), np.asarray(weights, dtype=float)
    order = np.argsort(e, kind="stable")
    return e[order].tolist(), np.cumsum(w[order]).tolist()


def common_bins(populations: list, max_bins: int = MAX_BINS) -> tuple[int, tuple[float, float]] | None:
    """``(num_bins, (lo, hi))`` for normalizing several populations' complexities together: the range every one
    covers (the largest minimum to the smallest maximum) and the most bins, at most ``max_bins`` and about the square
    root of the smallest population inside it, that leave no population with an empty bin. None when the ranges do
    not overlap or the range is one point."""
    pops = [np.asarray(p, dtype=float) for p in populations]
    if not pops or any(p.size == 0 for p in pops):
        return None
    lo, hi = max(p.min() for p in pops), min(p.max() for p in pops)
    if not hi > lo:
        return None
    inside = [p[(p >= lo) & (p <= hi)] for p in pops]
    start = max(1, min(max_bins, math.isqrt(min(p.size for p in inside))))
    for bins in range(start, 0, -1):
        if all(np.count_nonzero(np.histogram(p, bins=bins, range=(lo, hi))[0]) == bins for p in inside):
            return bins, (float(lo), float(hi))
    return None


def ks_two_sample(a, b) -> dict:
    """``{statistic, p_value}`` of ``scipy.stats.ks_2samp(a, b)`` (two-sided, exact for small samples): the largest
    gap between the two EDFs and the probability of one at least as large under the same distribution."""
    res = stats.ks_2samp(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    return {"statistic": float(res.statistic), "p_value": float(res.pvalue)}


def spearman(x, y) -> dict:
    """``{rho, p_value, n}`` of ``scipy.stats.spearmanr(x, y)``; ``rho`` and ``p_value`` None when fewer than 3 pairs
    or either side is constant (the correlation is undefined)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = int(len(x))
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"rho": None, "p_value": None, "n": n}
    res = stats.spearmanr(x, y)
    return {"rho": float(res.statistic), "p_value": float(res.pvalue), "n": n}


def pareto_front(ids, xs, ys) -> list:
    """The ids of the points on the Pareto front when both ``xs`` and ``ys`` are minimized (module docstring), in
    increasing x. A point is on it when no other point is at most as large in both and smaller in one; points
    equal in both are both on it. O(n log n)."""
    pts = sorted(zip(xs, ys, range(len(ids))))
    front, best, i = [], math.inf, 0
    while i < len(pts):
        j = i
        while j < len(pts) and pts[j][0] == pts[i][0]:  # a group of equal x: its lowest y may be on the front
            j += 1
        low = pts[i][1]
        if low < best:
            front += [ids[k] for _, y, k in pts[i:j] if y == low]
            best = low
        i = j
    return front


__all__ = ["MAX_BINS", "common_bins", "error_edf", "ks_two_sample", "normalized_edf", "normalized_weights",
           "pareto_front", "spearman"]
