"""Complexity of an HRNet config: parameters, GFLOPs / MACs by part, activation memory, latency, summary.

Public API (``analysis.complexity``): ``analyze(config) -> ComplexityReport`` and the report's columns and
conventions. Modules: ``report`` (the result type), ``analytic`` (the closed-form counter and ``analyze``),
``fvcore_count`` (the traced counters it equals), ``profiler`` (latency by part), ``summary`` (per-stage table).
"""

from analysis.complexity.analytic import analytic_counts, analyze
from analysis.complexity.report import (
    BACKENDS,
    BY_KEYS,
    COLUMNS,
    COMPONENTS,
    CONVENTIONS,
    COUNT_COLUMNS,
    OPTIONAL_CONVENTIONS,
    AnalysisError,
    ComplexityReport,
    Convention,
    activation_memory_mib,
    check_batch,
    frame_records,
    group_breakdown,
)

__all__ = [
    "BACKENDS",
    "BY_KEYS",
    "COLUMNS",
    "COMPONENTS",
    "CONVENTIONS",
    "COUNT_COLUMNS",
    "OPTIONAL_CONVENTIONS",
    "AnalysisError",
    "ComplexityReport",
    "Convention",
    "activation_memory_mib",
    "analytic_counts",
    "analyze",
    "check_batch",
    "frame_records",
    "group_breakdown",
]
