"""The complexity a space sample reports: exactly the totals ``analysis.complexity.analyze(cfg)`` reports (analytic
backend: closed form from the config's shapes, no model built, batch 1), from the same counter.

``params`` (parameters), ``conv_linear_macs`` (Conv2d + Linear multiply-adds, bias excluded), ``gflops``
(``analyze``'s ``gflops_paper`` = ``conv_linear_macs / 2**30``: the official ``get_model_summary``, Sun et al. 2019
Table 1) and ``activations`` (elements, ``analysis.complexity``'s convention for the network).

Why not ``analyze`` itself: it also builds the per-operator breakdown ``DataFrame``, about 6 of its 8.5 ms for a
pose HRNet on this 2-core machine (profiled over 1682 sampled configs), which a sample never reads. So the totals
are taken where ``analyze`` takes them, with nothing counted anew: ``analysis.complexity.analytic_counts`` (its
cached counter; ``analyze`` returns ``params``, ``macs``, ``acts`` of it) after ``hrnet_core.budget.check_depth``
(its depth bound) for the classic HRNet, and for another network the sums over
``analysis.complexity.network_counts.plans_and_counts`` that ``analyze_network`` reports.
``tests/test_design_space.py`` holds every sample to ``analyze``'s numbers.
"""

from __future__ import annotations

from analysis.complexity import analytic_counts
from analysis.complexity.network_counts import plans_and_counts
from hrnet_core.budget import check_depth
from hrnet_core.networks.model_config import NetworkConfig

COUNT_FIELDS = ("params", "conv_linear_macs", "gflops", "activations")


def complexity_counts(cfg) -> dict:
    """``{params, conv_linear_macs, gflops, activations}`` of the parsed config ``cfg`` at batch 1, equal to
    ``analyze(cfg)``'s ``params``, ``conv_linear_macs``, ``gflops_paper`` and ``activations`` (module docstring).
    Raises ``ConfigError`` where ``analyze`` does (an input size the model cannot take, a model too deep)."""
    if isinstance(cfg, NetworkConfig):
        plans, counts = plans_and_counts(cfg)
        params = sum(counts[p.key].params for p in plans)
        macs = sum(counts[p.key].conv_linear_macs for p in plans)
        acts = sum(counts[p.key].activations for p in plans)
    else:
        check_depth(cfg)
        em = analytic_counts(cfg, 1)
        params, macs, acts = em.params, em.macs, em.acts
    return {"params": int(params), "conv_linear_macs": int(macs), "gflops": macs / 2**30, "activations": int(acts)}


__all__ = ["COUNT_FIELDS", "complexity_counts"]
