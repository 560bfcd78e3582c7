"""The effect of fusion: per-seed paired differences between variants, with a 95 % t interval.

Every variant of an ablation is trained with the same seeds, data order and augmentation, so seed
``k`` of one variant and seed ``k`` of another differ only by their fusion schedule: the paired
difference ``metric(b, k) - metric(a, k)`` removes the seed's own luck. Its mean over the seeds gets a
Student t confidence interval (``scipy.stats.t``, n - 1 degrees of freedom), and the verdict says
whether that interval excludes zero. This is the comparison behind the paper's Table 6 (Sun et al.
2019, section 4.4: 1 / 3 / 8 fusions), which reports single runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

EFFECT_METRICS = ("AP", "PCK@0.1", "LR-swap")
LOWER_IS_BETTER = frozenset({"LR-swap"})
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Effect:
    """``better`` minus ``base`` in ``metric`` (fractions 0-1) over the seeds both finished."""

    better: str  # the variant with more fusions
    base: str
    better_fusions: int
    base_fusions: int
    metric: str
    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    mean: float
    ci_low: float | None  # None with fewer than two seeds
    ci_high: float | None
    verdict: str

    @property
    def label(self) -> str:
        return f"{self.better_fusions} vs {self.base_fusions}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["seeds"], d["differences"] = list(self.seeds), list(self.differences)
        d["label"] = self.label
        return d


def t_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """The ``confidence`` Student t interval of the mean of ``values``; ``(None, None)`` for n < 2.
    Identical values give a zero-width interval."""
    # scipy.stats on first use: importing it costs about 0.5 s, and every app page imports this module
    # (through the feature maps' keypoints), most never showing an interval
    from scipy import stats

    n = len(values)
    if n < 2:
        return None, None
    mean = float(np.mean(values))
    sem = float(stats.sem(values))
    if sem == 0 or not math.isfinite(sem):
        return mean, mean
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return float(low), float(high)




def verdict(metric: str, better: int, base: int, mean: float, low: float | None, high: float | None, n: int) -> str:
    """One line: "8 fusions beat 1 by 2.3 AP, CI [0.4, 4.1]" or "no difference detectable at this scale"."""
    name = {"AP": "AP", "PCK@0.1": "PCK@0.1", "LR-swap": "left/right swaps"}[metric]
    ci = f", {int(CONFIDENCE * 100)} % CI [{100 * low:.1f}, {100 * high:.1f}]" if low is not None else ""
    if low is None:
        return f"{better} vs {base} fusions, {name}: {100 * mean:+.1f} from {n} seed(s); a confidence interval needs 2 or more"
    if low <= 0 <= high:
        return f"{better} vs {base} fusions, {name}: no difference detectable at this scale ({100 * mean:+.1f}{ci})"
    gain = -mean if metric in LOWER_IS_BETTER else mean
    if metric in LOWER_IS_BETTER:
        word = "fewer" if gain > 0 else "more"
        return f"{better} fusions make {100 * abs(mean):.1f} points {word} left/right swaps than {base}{ci}"
    word = "beat" if gain > 0 else "fall behind"
    by = f"{100 * abs(mean):.1f} AP" if metric == "AP" else f"{100 * abs(mean):.1f} points in {name}"
    return f"{better} fusions {word} {base} by {by}{ci}"


def final_per_seed(metrics: pd.DataFrame, done: set[tuple[str, int]] | None = None) -> pd.DataFrame:
    """The last evaluated row of each ``(variant, seed)``; only the finished ones when ``done`` is given."""
    if metrics.empty or "AP" not in metrics:
        return pd.DataFrame(columns=["variant", "seed"])
    ev = metrics[metrics["AP"].notna()]
    last = ev.groupby(["variant", "seed"], sort=False).tail(1)
    if done is None:
        return last
    keep = [(v, int(s)) in done for v, s in zip(last["variant"], last["seed"])]
    return last[keep]


def fusion_effects(finals: pd.DataFrame, fusions: dict[str, int]) -> list[Effect]:
    """Paired effects of every pair of variants with different fusion counts (more minus fewer, pairs
    ordered as 8 vs 1, 3 vs 1, 8 vs 3 for the paper's trio), for ``EFFECT_METRICS``."""
    names = sorted(fusions, key=lambda v: fusions[v])
    pairs = [(b, a) for i, a in enumerate(names) for b in names[i + 1:] if fusions[b] != fusions[a]]
    pairs.sort(key=lambda p: (fusions[p[1]], -fusions[p[0]]))
    effects = []
    for b, a in pairs:
        fa = finals[finals["variant"] == a].set_index("seed")
        fb = finals[finals["variant"] == b].set_index("seed")
        seeds = sorted(set(fa.index) & set(fb.index))
        if not seeds:
            continue
        for metric in EFFECT_METRICS:
            if metric not in finals:
                continue
            d = np.array([float(fb.loc[s, metric]) - float(fa.loc[s, metric]) for s in seeds])
            mean = float(d.mean())
            low, high = t_interval(d)
            effects.append(Effect(b, a, fusions[b], fusions[a], metric, tuple(int(s) for s in seeds),
                                  tuple(float(x) for x in d), mean, low, high,
                                  verdict(metric, fusions[b], fusions[a], mean, low, high, len(seeds))))
    return effects


def effects_table(effects: list[Effect]) -> pd.DataFrame:
    """The human table: one row per pair and metric, differences in percentage points."""
    rows = []
    for e in effects:
        rows.append({
            "comparison": f"{e.better} - {e.base} ({e.label})",
            "metric": e.metric,
            "per-seed differences (pts)": ", ".join(f"{100 * x:+.1f}" for x in e.differences),
            "mean (pts)": f"{100 * e.mean:+.2f}",
            f"{int(CONFIDENCE * 100)} % CI (pts)": (f"[{100 * e.ci_low:+.2f}, {100 * e.ci_high:+.2f}]"
                                                    if e.ci_low is not None else "-"),
            "seeds": len(e.seeds),
        })
    return pd.DataFrame(rows)


def effects_figure(effects: list[Effect]):
    """Plotly: per metric, the per-seed differences (dots) and their mean with the CI (bars)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    metrics = [m for m in EFFECT_METRICS if any(e.metric == m for e in effects)]
    fig = make_subplots(rows=1, cols=max(1, len(metrics)),
                        subplot_titles=[f"{m} difference (pts)" for m in metrics])
    for c, m in enumerate(metrics, 1):
        es = [e for e in effects if e.metric == m]
        labels = [e.label for e in es]
        means = [100 * e.mean for e in es]
        plus = [100 * (e.ci_high - e.mean) if e.ci_high is not None else 0 for e in es]
        minus = [100 * (e.mean - e.ci_low) if e.ci_low is not None else 0 for e in es]
        fig.add_trace(go.Scatter(x=labels, y=means, mode="markers", marker={"size": 14, "symbol": "diamond",
                                                                             "color": "#d62728"},
                                 error_y={"type": "data", "array": plus, "arrayminus": minus, "visible": True,
                                          "thickness": 2, "width": 10},
                                 name=f"mean, {int(CONFIDENCE * 100)} % CI", legendgroup="mean",
                                 showlegend=c == 1), row=1, col=c)
        xs = [e.label for e in es for _ in e.differences]
        ys = [100 * x for e in es for x in e.differences]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", marker={"size": 7, "color": "black"},
                                 name="one seed", legendgroup="seed", showlegend=c == 1), row=1, col=c)
        fig.add_hline(y=0, line={"color": "#888", "dash": "dot"}, row=1, col=c)
    fig.update_layout(title="Effect of fusion: paired differences per seed (more fusions minus fewer)", height=440)
    return fig
