"""Complexity of an HRNet config: params, FLOPs in three conventions, activations, by stage, resolution
(branch) and component.

``analyze(cfg)`` answers the recurring questions about HRNet's FLOPs ("why only conv and linear?",
"why divide by 1024**3?", "ptflops says 45 G, the paper 63.7 G") by counting every operator of the
forward pass once and reporting the totals in three conventions side by side (``CONVENTIONS``):

- ``paper``: multiply-adds of Conv2d and Linear only, bias excluded, divided by 2**30 (the official
  ``get_model_summary``, behind every published GFLOPs figure);
- ``fvcore``: ``fvcore.nn.FlopCountAnalysis`` in eval mode (one multiply-add = one flop, BatchNorm,
  upsampling, adaptive pooling and matrix products included). fvcore has no handle for ``aten::add`` (the
  fusion sums) nor ``aten::add_`` (the residual units' in-place additions, as in the official code), ``aten::avg_pool2d`` (the V2p pyramid) nor the OCR head's
  ``softmax`` / ``mul`` / ``feature_dropout``: its total leaves them out and lists them as unsupported
  operators. We keep fvcore's total exactly as fvcore computes it and report those operators (calls and
  output elements) in ``unsupported_ops`` / ``uncounted_elements`` instead of silently adding or hiding
  them. fvcore counts a TorchScript trace, which drops operators whose result never reaches the output:
  with the V1 head (it reads branch 0 only) and final modules that do not fuse, the other branches run
  in PyTorch but are not in fvcore's total; such rows have ``live`` False and fvcore flops 0, and
  ``untraced_flops`` says what fvcore would have counted for them;
- ``torch``: ``torch.utils.flop_counter.FlopCounterMode`` (two flops per multiply-add of convolutions and
  matrix products; nothing else), kept because fvcore relies on TorchScript tracing.

Transposed convolutions (the HigherHRNet head's ``deconv_layers.i.0.0``, stride 2) are where the three
conventions part ways, and each is kept as its tool computes it: ``paper`` follows the official
``get_model_summary`` (HigherHRNet ``lib/utils/utils.py``: any module whose class name contains "Conv" is
charged weight elements x *output* positions), i.e. C_in x C_out x k**2 x H_out x W_out, four times the
multiply-adds actually done; ``fvcore`` charges weight elements x *input* positions
(``conv_flop_count(..., transposed=True)``), C_in x C_out x k**2 x H_in x W_in; ``torch`` (FlopCounterMode)
twice fvcore's figure. Their rows have the operator ``conv_transpose``.

Backends: ``analytic`` (default) derives every count from the config's shapes without building or
running the model (fast enough for the UI's every edit); ``fvcore`` builds the model and measures it
(``analysis.complexity.fvcore_count``). The analytic numbers equal fvcore's per module and operator
(``tests/test_complexity_fvcore.py``).

Breakdown rows (``ComplexityReport.breakdown``, one per operator call, in forward order):

- ``name``: the module whose forward runs the operator, as fvcore names it (``stage3.2.fuse_layers.1.0.0.0``
  for a conv; ``stage3.2`` for the fusion upsampling and sums, which ``HighResolutionModule.forward`` runs;
  ``''`` for what the head runs outside its sub-modules, since the head object sits outside the module tree);
- ``stage``: ``stem``, ``stage1`` .. ``stage4`` (a transition belongs to the stage it opens), ``head``;
- ``module``: index of the exchange block within its stage, NA outside stages 2..4's modules;
- ``branch``: the branch the output belongs to (for fusion rows the *target* branch; ``source_branch``
  is where the fused input comes from); NA for the stem and head parts that merge branches;
- ``resolution``: output stride as a fraction of the input (``1/4`` .. ``1/32``; ``global`` after pooling);
- ``component``: ``stem``, ``layer1``, ``transition``, ``branch_blocks``, ``fusion``, ``head``;
- ``operator``: fvcore's operator names (``conv``, ``batch_norm``, ``relu``, ``add``, ``upsample_nearest2d``,
  ``upsample_bilinear2d``, ``cat``, ``avg_pool2d``, ``adaptive_avg_pool2d``, ``linear``, ``conv_transpose``
  (fvcore's ``conv`` on a ``ConvTranspose2d``, named apart because the conventions differ on it); OCR head:
  ``matmul``, ``softmax``, ``mul``, ``feature_dropout``);
- ``params``; ``flops`` (fvcore convention); ``macs`` (paper convention: conv/linear multiply-adds, bias
  excluded, 0 for other operators); ``torch_flops``; ``activations`` (elements of the tensor the operator
  writes; 0 for in-place ReLUs and eval-mode dropout); ``output_shape``; ``live`` (the result reaches the
  model's output, see ``fvcore`` above).

All counts are for a batch of ``batch`` (1 is the published convention) in eval mode.
"""

from __future__ import annotations

from analysis.complexity.report import (
    BACKENDS,
    AnalysisError,
    ComplexityReport,
    check_batch,
)
from hrnet_core.budget import check_activations, check_depth
from hrnet_core.config import HRNetConfig
from hrnet_core.errors import quote
from hrnet_core.loader import load_config
from hrnet_core.networks.hrnet.operator_counts import operator_counts

# The analytic backend's engine lives with the network it counts (hrnet_core.networks.hrnet): the network
# registry's per-part counts read the same rows.
analytic_counts = operator_counts


def _resolve(cfg, input_hw) -> HRNetConfig:
    cfg = load_config(cfg)
    if input_hw is not None:
        if len(tuple(input_hw)) != 2:
            raise AnalysisError(f"input_size: must be two integers H W, got {quote(input_hw)}")
        cfg = cfg.with_input(tuple(input_hw))
    return cfg


def analyze(cfg, input_hw: tuple[int, int] | None = None, backend: str = "analytic", batch: int = 1) -> ComplexityReport:
    """Complexity of ``cfg`` (an ``HRNetConfig``, a YAML path or a mapping) for an input ``(batch, 3, H, W)``
    with ``input_hw`` = (H, W) in pixels (default: the config's), in eval mode.

    ``backend="analytic"`` (default) derives every count from the config's shapes (no model built, cached
    per config, input size and batch: a few ms for pose W48 384x288); ``"fvcore"`` builds the model on the
    CPU and counts it with fvcore, FlopCounterMode and the official conv/linear hooks (seconds to minutes).
    Totals are plain counts (``params``, ``conv_linear_macs``, ``fvcore_flops``, ``torch_flops``,
    ``activations`` in elements) plus ``gflops_paper`` = ``conv_linear_macs / 2**30`` (official
    ``get_model_summary`` in ``lib/utils/utils.py``; Sun et al. 2019 Table 1 and every README).

    Raises ``ConfigError`` for an input size the model cannot take (e.g. not a multiple of the lowest
    stride with nearest upsampling) and ``AnalysisError`` for a bad backend or batch (both
    ``UserInputError``)."""
    if backend not in BACKENDS:
        raise AnalysisError(f"backend: unknown {quote(backend)}; expected one of {', '.join(BACKENDS)}")
    check_batch(batch)
    cfg = _resolve(cfg, input_hw)
    if not isinstance(cfg, HRNetConfig):  # another registered network (hrnet_core.networks)
        from analysis.complexity.network_counts import analyze_network

        return analyze_network(cfg, backend, batch)
    check_depth(cfg)  # before any per-layer walk
    if backend == "fvcore":
        from analysis.complexity.fvcore_count import analyze_fvcore

        check_activations(cfg, batch)  # fvcore runs the model for real
        return analyze_fvcore(cfg, batch)
    em = analytic_counts(cfg, batch)
    return ComplexityReport.of(
        cfg, "analytic", batch, params=em.params, conv_linear_macs=em.macs, fvcore_flops=em.flops,
        torch_flops=em.torch_flops, activations=em.acts, unsupported_ops=dict(em.unsupported),
        uncounted_elements=dict(em.uncounted), untraced_flops=em.dead_flops, rows=em.rows,
    )


__all__ = ["analytic_counts", "analyze"]  # the report type and its helpers: analysis.complexity.report
