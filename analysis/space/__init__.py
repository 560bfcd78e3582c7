"""Design-space exploration (Radosavovic et al. 2019, "On Network Design Spaces for Visual Recognition"; pycls'
sweeps): sample distinct configs of any network from a space file, then compare trained populations.

Public API: ``read_space`` / ``parse_space`` (the space file, ``space_file``), ``sample_space`` (rejection sampling,
``sampler``); ``analysis.space.report.write_report`` is imported where used (scipy, plotly, matplotlib). Modules: ``space_file`` (the YAML, validated into frozen dataclasses),
``knobs`` (what varies and how values are drawn), ``base_mapping`` (the base's concise mapping, dotted keys, sample
ids), ``complexity_counts`` (what ``analysis.complexity.analyze`` reports), ``latency`` (fast-path batch-1 latency),
``space_folder`` (the folders on disk), ``population_stats`` (EDFs, KS, Spearman, Pareto), ``figures`` and
``report``.
"""

from analysis.space.sampler import SampleRun, sample_space
from analysis.space.space_file import Space, SpaceError, parse_space, read_space

__all__ = ["SampleRun", "Space", "SpaceError", "parse_space", "read_space", "sample_space"]
