"""The result of a complexity analysis, whichever backend made it: ``ComplexityReport`` (totals in each counting
convention and the per-operator breakdown), its column names and views, and the activation-memory estimate.

Conventions and columns are described in ``analysis.complexity.analytic``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import pandas as pd

from hrnet_core.budget import MAX_BATCH
from hrnet_core.config import HRNetConfig, named_fusion
from hrnet_core.errors import UserInputError, quote

BACKENDS = ("analytic", "fvcore")
BY_KEYS = ("stage", "branch", "component", "module")
COMPONENTS = ("stem", "layer1", "transition", "branch_blocks", "fusion", "head")
COLUMNS = (
    "name", "stage", "module", "branch", "source_branch", "resolution", "component", "operator",
    "params", "flops", "macs", "torch_flops", "activations", "output_shape", "live",
)
COUNT_COLUMNS = ("params", "flops", "macs", "torch_flops", "activations")
DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "float64": 8, "double": 8, "int8": 1}


class AnalysisError(UserInputError):
    """A bad request to the analysis (unknown backend, view or dtype; bad batch or input size)."""


class Convention(NamedTuple):
    """One counting convention: what it counts (one sentence) and how to read it off a report (giga-units)."""

    description: str
    value: Callable[[ComplexityReport], float]


CONVENTIONS: OrderedDict[str, Convention] = OrderedDict(
    paper=Convention(
        "Multiply-adds of Conv2d and Linear layers only, bias excluded, batch 1, divided by 2**30: the official "
        "get_model_summary figure behind every published HRNet GFLOPs column.",
        lambda r: r.gflops_paper,
    ),
    fvcore=Convention(
        "fvcore FlopCountAnalysis in eval mode, divided by 1e9: one multiply-add of conv, linear or matmul = one flop, plus "
        "BatchNorm (2 per element), upsampling (nearest 1, bilinear 4 per output element) and adaptive pooling; "
        "the element-wise sums (fusion, residual) and other operators fvcore does not support are not counted.",
        lambda r: r.fvcore_flops / 1e9,
    ),
    torch=Convention(
        "torch.utils.flop_counter.FlopCounterMode, divided by 1e9: two flops per multiply-add of convolutions and "
        "matrix products, nothing else (no bias, BatchNorm, upsampling or sums).",
        lambda r: r.torch_flops / 1e9,
    ),
)
# Conventions only some reports carry (their value is None elsewhere): ``ComplexityReport.conventions`` lists them
# where they have a value. ``torchstat``: Lite-HRNet's published FLOPs (``analysis.complexity.torchstat_count``).
OPTIONAL_CONVENTIONS: OrderedDict[str, Convention] = OrderedDict(
    torchstat=Convention(
        "torchstat Flops as Lite-HRNet publishes them (its summary_network.py, batch 1, backbone and head), divided "
        "by 2**30: conv multiply-adds plus bias adds, BatchNorm (2 per element), ReLU, pooling and nn.Upsample "
        "(1 per output pixel), each leaf module once at its last call; the published M figures are this times 1024.",
        lambda r: None if r.torchstat_flops is None else r.torchstat_flops / 2**30,
    ),
)


@dataclass(frozen=True)
class ComplexityReport:
    """Totals and the per-operator breakdown of one config at one input size and batch.

    ``gflops_paper`` = ``conv_linear_macs / 2**30``; ``fvcore_flops`` is what ``FlopCountAnalysis.total()``
    returns; ``torch_flops`` what ``FlopCounterMode`` returns; ``activations`` the elements of every tensor
    the forward pass writes. ``unsupported_ops`` maps fvcore's unsupported operators to their call counts
    (as ``FlopCountAnalysis.unsupported_ops()``), ``uncounted_elements`` to their output elements;
    ``untraced_flops`` is what fvcore would count for operators its trace drops (``live`` False rows).
    ``description`` is the config's own note (e.g. where a preset reproduces the code, not a README).
    """

    name: str
    family: str
    head: str
    backend: str
    input_hw: tuple[int, int]
    batch: int
    fusion: str
    params: int
    conv_linear_macs: int
    gflops_paper: float
    fvcore_flops: int
    torch_flops: int
    activations: int
    unsupported_ops: dict[str, int]
    uncounted_elements: dict[str, int]
    untraced_flops: int
    breakdown: pd.DataFrame = field(compare=False, repr=False)
    description: str = ""
    arch: str = "hrnet"  # the network (hrnet_core.networks): hrnet, litehrnet, hrformer
    attention_macs: int = 0  # window-attention matrix products (HRFormer): neither Conv2d nor Linear
    torchstat_flops: int | None = None  # Lite-HRNet's published convention; None where not counted

    @classmethod
    def of(cls, cfg: HRNetConfig, backend: str, batch: int, *, params: int, conv_linear_macs: int,
           fvcore_flops: int, torch_flops: int, activations: int, unsupported_ops: dict[str, int],
           uncounted_elements: dict[str, int], untraced_flops: int, rows: list) -> ComplexityReport:
        """A report of ``cfg`` from one backend's counts: the config's identity fields, ``gflops_paper``
        and the breakdown frame are derived here, once for every backend."""
        return cls(
            name=cfg.name, family=cfg.family, head=cfg.head.kind, backend=backend, input_hw=tuple(cfg.input_hw),
            batch=batch, fusion=named_fusion(cfg) or "custom", params=params, conv_linear_macs=conv_linear_macs,
            gflops_paper=conv_linear_macs / 2**30, fvcore_flops=fvcore_flops, torch_flops=torch_flops,
            activations=activations, unsupported_ops=unsupported_ops, uncounted_elements=uncounted_elements,
            untraced_flops=untraced_flops, breakdown=breakdown_frame(rows), description=cfg.description,
        )

    def by(self, key: str) -> pd.DataFrame:
        """Sums by ``stage``, ``branch`` (with its resolution), ``component`` or ``module`` (stage, module).

        Columns: the key column(s), ``params``, ``flops`` (fvcore), ``macs`` (paper), ``torch_flops``,
        ``activations`` and ``params_share``, ``flops_share``, ``macs_share``, ``activations_share`` (fractions
        of the totals; each share column sums to 1). Rows in forward order; for ``branch``, branches 0.. then
        NA (the stem and the head parts that merge branches).
        """
        return group_breakdown(self.breakdown, key)

    def activation_mib(self, batch: int | None = None, dtype="float32") -> float:
        return activation_memory_mib(self, batch if batch is not None else self.batch, dtype)

    def conventions(self) -> list[dict]:
        """``[{name, description, value}]`` in ``CONVENTIONS`` order (values in giga-units), then the
        ``OPTIONAL_CONVENTIONS`` this report has a value for (``torchstat`` for Lite-HRNet)."""
        out = [{"name": k, "description": c.description, "value": c.value(self)} for k, c in CONVENTIONS.items()]
        return out + [{"name": k, "description": c.description, "value": c.value(self)}
                      for k, c in OPTIONAL_CONVENTIONS.items() if c.value(self) is not None]

    def to_json_dict(self, views: tuple[str, ...] = BY_KEYS) -> dict:
        """The ``analyze --json`` object: totals, conventions, ``breakdown`` rows and the ``by`` views."""
        return {
            "name": self.name,
            "arch": self.arch,
            "family": self.family,
            "head": self.head,
            "backend": self.backend,
            "input_hw": list(self.input_hw),
            "batch": self.batch,
            "fusion": self.fusion,
            "params": self.params,
            "conv_linear_macs": self.conv_linear_macs,
            "gflops_paper": self.gflops_paper,
            "attention_macs": self.attention_macs,
            "fvcore_flops": self.fvcore_flops,
            "torch_flops": self.torch_flops,
            "activations": self.activations,
            "torchstat_flops": self.torchstat_flops,
            "activation_mib_float32": self.activation_mib(dtype="float32"),
            "unsupported_ops": dict(self.unsupported_ops),
            "uncounted_elements": dict(self.uncounted_elements),
            "untraced_flops": self.untraced_flops,
            "description": self.description,
            "conventions": {
                c["name"]: {"description": c["description"], "value": c["value"]} for c in self.conventions()
            },
            "breakdown": frame_records(self.breakdown),
            "by": {k: frame_records(self.by(k)) for k in views},
        }


def frame_records(df: pd.DataFrame) -> list[dict]:
    """Rows of ``df`` as JSON-ready dicts: NA -> None, numpy scalars -> Python, tuples -> lists."""
    cols = list(df.columns)
    out = []
    for row in df.itertuples(index=False, name=None):
        rec = {}
        for c, v in zip(cols, row):
            if isinstance(v, tuple):
                v = list(v)
            elif v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
                v = None
            elif hasattr(v, "item"):
                v = v.item()
            rec[c] = v
        out.append(rec)
    return out


def _dtype_bytes(dtype) -> int:
    if isinstance(dtype, str):
        key = dtype.removeprefix("torch.")
        if key not in DTYPE_BYTES:
            raise AnalysisError(f"dtype: unknown {quote(dtype)}; expected one of {', '.join(DTYPE_BYTES)}")
        return DTYPE_BYTES[key]
    size = getattr(dtype, "itemsize", None)
    if not isinstance(size, int):
        raise AnalysisError(f"dtype: unknown {quote(dtype)}")
    return size


def check_batch(batch) -> int:
    """``batch`` if it is an int in 1..``hrnet_core.budget.MAX_BATCH``; else ``AnalysisError`` naming ``batch``."""
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise AnalysisError(f"batch: must be an integer in 1..{MAX_BATCH}, got {quote(batch)}")
    return batch


def activation_memory_mib(report: ComplexityReport, batch: int = 1, dtype="float32") -> float:
    """Forward activation footprint in MiB: every tensor the forward pass writes (``report.activations``,
    rescaled from the report's batch to ``batch``) at ``dtype`` (a name such as ``bfloat16`` or a torch dtype).
    In-place ReLUs write nothing new; weights are not included. Raises ``AnalysisError`` for a bad batch or dtype."""
    check_batch(batch)
    per_sample = report.activations / report.batch
    return per_sample * batch * _dtype_bytes(dtype) / 2**20


def breakdown_frame(rows: list[tuple]) -> pd.DataFrame:
    """The breakdown DataFrame from row tuples in ``COLUMNS`` order (nullable ints for module/branch)."""
    df = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    for col in ("module", "branch", "source_branch"):
        df[col] = df[col].astype("Int64")
    for col in COUNT_COLUMNS:
        df[col] = df[col].astype("int64")
    return df


def group_breakdown(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """See ``ComplexityReport.by``."""
    if key not in BY_KEYS:
        raise AnalysisError(f"by: unknown view {quote(key)}; expected one of {', '.join(BY_KEYS)}")
    keys = ["stage", "module"] if key == "module" else [key]
    g = df.groupby(keys, sort=False, dropna=False)[list(COUNT_COLUMNS)].sum().reset_index()
    if key == "branch":
        g = g.sort_values("branch", na_position="last", kind="stable").reset_index(drop=True)
        g.insert(1, "resolution", [None if pd.isna(b) else f"1/{4 * 2 ** int(b)}" for b in g["branch"]])
    for col in ("params", "flops", "macs", "activations"):
        total = g[col].sum()
        g[f"{col}_share"] = g[col] / total if total else 0.0
    return g
