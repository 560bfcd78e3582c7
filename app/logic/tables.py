"""How the app shows a table: every column's kind, header (with its unit) and number format, decided from
the data, so that integers carry thousands separators, shares (fractions of a total) read in percent, small
values in scientific notation, missing values are empty cells and no text column is cut.

``table_spec(df)`` returns one ``ColumnSpec`` per column; ``display_frame(df)`` the frame to show (missing
values and tuples as text). ``app.common.show_table`` turns them into ``st.column_config`` entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Units of the columns the analyses name (their headers gain them).
UNITS = {
    "params": "count", "flops": "FLOPs", "macs": "MACs", "torch_flops": "FLOPs", "activations": "elements",
    "activation_mib": "MiB", "peak_mib": "MiB", "median_ms": "ms", "p90_ms": "ms", "mean_ms": "ms", "gmacs": "GMACs",
    "gmacs_per_s": "GMAC/s", "gflops": "GFLOPs", "gflops_paper": "GFLOPs", "energy": "mean L2 per position",
    "sparsity": "fraction of zeros", "confidence": "heatmap max", "size_hw": "px", "channels": "count",
}
SMALL = 1e-3  # below this (and above 0) a float column is shown in scientific notation
LARGE = 1e6


@dataclass(frozen=True)
class ColumnSpec:
    """``kind``: ``int``, ``float``, ``share`` (a fraction of a total, shown in percent), ``small`` (scientific),
    ``bool`` or ``text``; ``label``: the header (with
    its unit); ``width``: ``medium`` or ``large`` for long text (so it is not cut), else ``None`` (auto)."""

    name: str
    kind: str
    label: str
    width: str | None


def _is_share(name: str) -> bool:
    """A fraction of a total (the analyses' ``*_share`` and ``share`` columns): percent, whatever its size."""
    return name == "share" or name.endswith("_share")


def _kind(s: pd.Series) -> str:
    if pd.api.types.is_float_dtype(s) and _is_share(str(s.name)):
        return "share"
    if pd.api.types.is_bool_dtype(s):
        return "bool"
    if pd.api.types.is_integer_dtype(s):
        return "int"
    if pd.api.types.is_float_dtype(s):
        v = s.dropna().abs()
        v = v[v > 0]
        if len(v) and (v.min() < SMALL or v.max() >= LARGE * 1e3):
            return "small"
        return "int" if len(v) and bool(np.all(np.mod(s.dropna(), 1) == 0)) and v.max() >= 1000 else "float"
    return "text"


def table_spec(df: pd.DataFrame) -> list[ColumnSpec]:
    """One ``ColumnSpec`` per column of ``df``."""
    out = []
    for col in df.columns:
        kind = _kind(df[col])
        unit = "%" if kind == "share" else UNITS.get(str(col))
        label = f"{col} ({unit})" if unit and unit != "count" else str(col)
        longest = max((len(str(v)) for v in df[col].head(500)), default=0)  # values: a header may wrap
        width = "large" if kind == "text" and longest > 24 else "medium" if kind == "text" and longest > 12 else None
        out.append(ColumnSpec(str(col), kind, label, width))
    return out


def _text(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return ""
    if isinstance(v, tuple):
        return "(" + ", ".join(str(x) for x in v) + ")"
    return str(v)


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` ready to show: text columns, and integer columns with gaps, as text with missing values as empty
    strings (Streamlit draws a missing number as "None") and tuples spelled out; shares as percentages (their
    header says "%")."""
    out = df.copy()
    for spec in table_spec(df):
        column = df[spec.name]
        if spec.kind == "share":
            out[spec.name] = 100 * column
        if spec.kind == "text" or (spec.kind == "int" and column.isna().any()):  # e.g. a stem row has no module
            out[spec.name] = [_text(v) for v in column]
    return out
