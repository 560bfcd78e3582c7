"""Tables behind the Complexity page: readable group labels of the by-views, and the side-by-side
comparison of two complexity reports with the differences marked."""

from __future__ import annotations

import pandas as pd

from analysis.complexity import activation_memory_mib
from app.logic.networks import module_counts
from hrnet_core import HRNetConfig

COMPARE_FUSIONS = ("final_only", "across_stage", "all", "none")
CHANGED = "background-color: rgba(255, 196, 0, 0.35); font-weight: 600"
DELTA = "Δ"
DELTA_PCT = "Δ %"
ACTIVATIONS_ROW = "activations (MiB, float32, batch 1)"  # MiB, as everywhere else in the app
ATTENTION_ROW = "attention GMACs (window attention's matrix products / 2^30)"


def compare_totals(rep_a, rep_b, cfg_a: HRNetConfig, cfg_b: HRNetConfig, label_a: str, label_b: str) -> pd.DataFrame:
    """One row per quantity: A, B, B - A and the relative change; rows that differ are what to highlight. Either
    config may be a classic HRNet or another network's (attention MACs then get their own row where non-zero)."""
    rows = [
        ("params", rep_a.params, rep_b.params),
        ("GFLOPs (paper, conv+linear MACs / 2^30)", rep_a.gflops_paper, rep_b.gflops_paper),
        ("fvcore GFLOPs (/1e9)", rep_a.fvcore_flops / 1e9, rep_b.fvcore_flops / 1e9),
        ("torch GFLOPs (/1e9)", rep_a.torch_flops / 1e9, rep_b.torch_flops / 1e9),
        (ACTIVATIONS_ROW, activation_memory_mib(rep_a), activation_memory_mib(rep_b)),
        ("fusing modules", module_counts(cfg_a)[0], module_counts(cfg_b)[0]),
        ("modules", module_counts(cfg_a)[1], module_counts(cfg_b)[1]),
    ]
    if rep_a.attention_macs or rep_b.attention_macs:  # HRFormer's window attention, outside the paper's GFLOPs
        rows.insert(2, (ATTENTION_ROW, rep_a.attention_macs / 2**30, rep_b.attention_macs / 2**30))
    df = pd.DataFrame(rows, columns=["quantity", label_a, label_b]).set_index("quantity")
    df[DELTA] = df[label_b] - df[label_a]
    df[DELTA_PCT] = (100 * df[DELTA] / df[label_a].where(df[label_a] != 0)).round(2)
    return df


def compare_groups(rep_a, rep_b, by: str, label_a: str, label_b: str, labels) -> pd.DataFrame:
    """Params and paper GFLOPs per group (``report.by(by)``, labelled by ``labels(df, by)``) of A and B,
    with the differences; groups only one side has count 0 on the other."""
    def table(rep, label):
        df = rep.by(by)
        return pd.DataFrame({by: labels(df, by).to_numpy(), f"params {label}": df["params"].to_numpy(),
                             f"GFLOPs {label}": (df["macs"] / 2**30).to_numpy()})

    a, b = table(rep_a, label_a), table(rep_b, label_b)
    order = list(dict.fromkeys([*a[by], *b[by]]))  # forward order, A's groups first
    merged = a.merge(b, on=by, how="outer").set_index(by).loc[order].reset_index().fillna(0)
    merged[f"{DELTA} params"] = merged[f"params {label_b}"] - merged[f"params {label_a}"]
    merged[f"{DELTA} GFLOPs"] = merged[f"GFLOPs {label_b}"] - merged[f"GFLOPs {label_a}"]
    return merged


def changed_mask(df: pd.DataFrame, pair: list[str] | None) -> pd.DataFrame:
    """True where a cell shows a difference: a delta column that is non-zero, or both values of a
    row that differ between ``pair``'s two columns."""
    mask = pd.DataFrame(False, index=df.index, columns=df.columns)
    deltas = [c for c in df.columns if str(c).startswith(DELTA)]
    for c in deltas:
        mask[c] = df[c].fillna(0).abs() > 1e-12
    if pair:
        rows = (df[pair[0]] - df[pair[1]]).abs() > 1e-12
        for c in pair:
            mask[c] = rows
    return mask


def highlight_changes(df: pd.DataFrame, pair: list[str] | None):
    """A pandas Styler marking every difference (``changed_mask``) and formatting the numbers."""
    mask = changed_mask(df, pair)
    styler = df.style.apply(lambda _: mask.replace({True: CHANGED, False: ""}), axis=None)
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    return styler.format(_number, subset=numeric, na_rep="–")


def _number(value) -> str:
    """Whole numbers with thousands separators, others with three decimals."""
    value = float(value)
    return f"{value:,.0f}" if value.is_integer() else f"{value:,.3f}"


def group_labels(df: pd.DataFrame, by: str) -> pd.Series:
    """Readable labels of a ``report.by(by)`` table: ``1/8`` for branches, ``stage3.m2`` for modules."""
    if by == "branch":
        return df["resolution"].fillna("merged (stem, head)").astype(str)
    if by == "module":
        return pd.Series([s if pd.isna(m) else f"{s}.m{int(m)}" for s, m in zip(df["stage"], df["module"])],
                         index=df.index)
    return df[by].astype(str)
