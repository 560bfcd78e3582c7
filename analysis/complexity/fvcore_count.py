"""The measured backend of ``analysis.complexity.analytic``: build the model and count it with the tools themselves.

- ``fvcore``: one ``fvcore.nn.FlopCountAnalysis`` trace in eval mode (TorchScript tracing; its warnings are
  silenced). Each operator handle is wrapped so that, besides returning fvcore's own count unchanged, it
  records the call: the module fvcore charges it to (the innermost scope, fvcore's ``owner`` mode), the
  operator, fvcore's flops and the output shape. Operators fvcore does not support (``aten::add``,
  ``aten::avg_pool2d``) get a recording handle that counts 0, so they are listed, exactly as fvcore's
  ``unsupported_ops()`` would list them, and never added to its total.
- ``torch``: one eager forward under ``torch.utils.flop_counter.FlopCounterMode`` (on the meta device:
  shapes only, nothing computed).
- ``paper``: during the same forward, the official ``get_model_summary`` hooks on every Conv2d /
  ConvTranspose2d / Linear (conv and transposed conv: weight elements x output positions; linear: output
  elements x input features; bias excluded).
- activations: during the same forward, a dispatch mode adds up the elements of every tensor an ATen
  operator writes (views and in-place results excluded), a check on the per-row figures from the trace.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from analysis.complexity.report import ComplexityReport
from hrnet_core.config import HRNetConfig
from hrnet_core.graph import ArchGraph, architecture
from hrnet_core.heads import head_spec
from hrnet_core.model import build_on_meta, check_buildable
from hrnet_core.shapes import branch_sizes

# fvcore operator kinds seen in HRNet's traces that fvcore has no flop handle for but we record.
RECORDED_KINDS = ("aten::add", "aten::add_", "aten::relu", "aten::relu_", "aten::cat", "aten::avg_pool2d",
                   "aten::softmax", "aten::mul", "aten::feature_dropout", "aten::dropout")
# Traced operators that write no new tensor in eval mode (besides the in-place ``*_`` ones).
_NO_WRITE_KINDS = ("aten::feature_dropout", "aten::dropout")
# fvcore's defaults, spelled with its public handles (``fvcore.nn.jit_handles``) so nothing reaches into its private
# tables: the operators ``FlopCountAnalysis`` counts (``flop_count._DEFAULT_SUPPORTED_OPS``, fvcore 0.1.5) and, of
# the kinds recorded here, those it ignores silently (``jit_analysis._IGNORED_OPS``); every other recorded kind is
# one fvcore reports as unsupported. tests/test_complexity_fvcore.py checks both against the installed fvcore.
FVCORE_COUNTED_KINDS = ("aten::addmm", "aten::bmm", "aten::_convolution", "aten::einsum", "aten::matmul", "aten::mm",
                        "aten::linear", "aten::batch_norm", "aten::group_norm", "aten::layer_norm",
                        "aten::instance_norm", "aten::upsample_nearest2d", "aten::upsample_bilinear2d",
                        "aten::adaptive_avg_pool2d", "aten::grid_sampler")
FVCORE_IGNORED_KINDS = ("aten::cat", "aten::dropout", "aten::relu", "aten::relu_")


def fvcore_default_handles() -> dict:
    """``{operator kind: handle}`` as ``FlopCountAnalysis`` installs them by default (``FVCORE_COUNTED_KINDS``),
    built from fvcore's public ``jit_handles``."""
    from fvcore.nn import jit_handles as jh

    handles = {
        "aten::addmm": jh.addmm_flop_jit, "aten::bmm": jh.bmm_flop_jit, "aten::_convolution": jh.conv_flop_jit,
        "aten::einsum": jh.einsum_flop_jit, "aten::matmul": jh.matmul_flop_jit, "aten::mm": jh.matmul_flop_jit,
        "aten::linear": jh.linear_flop_jit, "aten::batch_norm": jh.batchnorm_flop_jit,
        "aten::group_norm": jh.norm_flop_counter(2), "aten::layer_norm": jh.norm_flop_counter(2),
        "aten::instance_norm": jh.norm_flop_counter(1),
        "aten::upsample_nearest2d": jh.elementwise_flop_counter(0, 1),
        "aten::upsample_bilinear2d": jh.elementwise_flop_counter(0, 4),
        "aten::adaptive_avg_pool2d": jh.elementwise_flop_counter(1, 0),
        "aten::grid_sampler": jh.elementwise_flop_counter(0, 4),
    }
    assert tuple(handles) == FVCORE_COUNTED_KINDS
    return handles
# ATen operators that allocate without writing, or only re-label memory: not activations.
_NOT_WRITES = ("empty", "_unsafe_view")
_MAC_OPS = ("conv", "conv_transpose", "linear", "addmm")
_PARAM_OPS = ("conv", "conv_transpose", "batch_norm", "linear", "addmm")


@contextlib.contextmanager
def quiet():
    """Silence TorchScript tracer warnings, deprecation notes and fvcore's logger while counting."""
    logger = logging.getLogger("fvcore")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def measurable_model(cfg: HRNetConfig) -> nn.Module:
    """``cfg``'s model in eval mode on CPU, allocated without random initialisation (counting needs shapes,
    not values): weights 0, BatchNorm scale and running variance 1."""
    check_buildable(cfg)  # ConfigError naming the bound, before anything is allocated (milliseconds)
    model = build_on_meta(cfg).to_empty(device="cpu")
    with torch.no_grad():
        for mod in model.modules():
            for t in list(mod.parameters(recurse=False)) + list(mod.buffers(recurse=False)):
                t.zero_()
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.fill_(1.0)
                mod.running_var.fill_(1.0)
    return model.eval()


def own_params(model: nn.Module) -> dict[str, int]:
    """Module name -> parameters the module holds itself (not its children), for modules holding any."""
    out = {}
    for name, mod in model.named_modules():
        n = sum(p.numel() for p in mod.parameters(recurse=False))
        if n:
            out[name] = n
    return out


def _op_name(kind: str, inputs=()) -> str:
    if kind == "aten::_convolution":
        # argument 6 is ``transposed``: fvcore names both "conv", but the conventions count them differently
        transposed = len(inputs) > 6 and bool(inputs[6].toIValue())
        return "conv_transpose" if transposed else "conv"
    name = kind.split("::", 1)[-1]
    return name[:-1] if name.endswith("_") else name


def _shape(value) -> tuple[int, ...] | None:
    return tuple(value.type().sizes()) if value.isCompleteTensor() else None


@dataclass(frozen=True)
class TraceCall:
    """One operator call in fvcore's trace: owner module (fvcore's name), operator, fvcore flops, shapes."""

    name: str
    kind: str
    operator: str
    flops: int
    output_shape: tuple[int, ...] | None
    input_shape: tuple[int, ...] | None
    writes: bool  # False for in-place operators and eval-mode dropout


@dataclass(frozen=True)
class FvcoreTrace:
    calls: tuple[TraceCall, ...]
    total: int  # FlopCountAnalysis.total()
    unsupported_ops: dict[str, int]  # as FlopCountAnalysis(...).unsupported_ops() with fvcore's default handles
    by_module_and_operator: dict  # FlopCountAnalysis.by_module_and_operator() (ancestors included)


def fvcore_trace(model: nn.Module, x: torch.Tensor) -> FvcoreTrace:
    """Trace ``model(x)`` once with ``FlopCountAnalysis`` and record every operator call (see module doc)."""
    with quiet():  # importing fvcore scripts a few helpers: torch.jit deprecation warnings
        from fvcore.nn import FlopCountAnalysis

    calls: list[TraceCall] = []

    def record(kind, handle):
        def _handle(inputs, outputs):
            flops = handle(inputs, outputs) if handle is not None else 0
            value = sum(flops.values()) if hasattr(flops, "values") else flops
            out = outputs[0]
            scope = out.node().scopeName().split("/")[-1]
            calls.append(TraceCall(scope, kind, _op_name(kind, inputs), int(value), _shape(out),
                                   _shape(inputs[0]) if inputs else None,
                                   not (kind.endswith("_") or kind in _NO_WRITE_KINDS)))
            return flops if handle is not None else 0
        return _handle

    fca = FlopCountAnalysis(model, x)
    handles = {k: record(k, h) for k, h in fvcore_default_handles().items()}
    handles.update({k: record(k, None) for k in RECORDED_KINDS})
    fca.set_op_handle(**handles)
    fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    with quiet(), torch.no_grad():
        total = int(fca.total())
        bmo = {k: dict(v) for k, v in fca.by_module_and_operator().items()}
        unsupported = dict(fca.unsupported_ops())  # kinds we did not record (none expected)
    for c in calls:
        if c.kind not in FVCORE_COUNTED_KINDS and c.kind not in FVCORE_IGNORED_KINDS:
            unsupported[c.kind] = unsupported.get(c.kind, 0) + 1
    return FvcoreTrace(tuple(calls), total, unsupported, bmo)


class _WriteCounter(TorchDispatchMode):
    """Adds up the elements of every tensor an ATen operator writes (first output; views and in-place
    results, whose schema marks an alias, excluded)."""

    def __init__(self):
        super().__init__()
        self.elements = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        returns = func._schema.returns
        if returns and returns[0].alias_info is None and func._schema.name.split("::")[-1] not in _NOT_WRITES:
            first = out[0] if isinstance(out, (tuple, list)) else out
            if isinstance(first, torch.Tensor):
                self.elements += first.numel()
        return out


@dataclass(frozen=True)
class EagerCounts:
    torch_flops: int  # FlopCounterMode total
    official_macs: dict[str, int]  # module name -> get_model_summary multiply-adds (Conv2d / Linear)
    written_elements: int  # elements of every tensor written by the forward pass
    output_shapes: dict[str, tuple[int, ...]]  # Conv2d / BatchNorm2d / Linear module name -> output shape


def eager_counts(model: nn.Module, x: torch.Tensor) -> EagerCounts:
    """One eager forward under FlopCounterMode, the official get_model_summary hooks and ``_WriteCounter``."""
    from torch.utils.flop_counter import FlopCounterMode

    macs: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []

    def hook(name):
        def _h(module, inputs, output):
            shapes[name] = tuple(output.shape)
            if isinstance(module, nn.BatchNorm2d):
                return
            if isinstance(module, nn.Linear):
                n = math.prod(output.shape) * inputs[0].shape[1]
            else:  # official, also for ConvTranspose2d: prod(weight.size()) * prod(output.size()[2:]), times the batch
                n = math.prod(module.weight.shape) * math.prod(output.shape[2:]) * output.shape[0]
            macs[name] = macs.get(name, 0) + int(n)
        return _h

    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm2d)):
            hooks.append(mod.register_forward_hook(hook(name)))
    try:
        with quiet(), torch.no_grad(), FlopCounterMode(display=False) as fc, _WriteCounter() as wc:
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return EagerCounts(int(fc.get_total_flops()), macs, wc.elements, shapes)


# ---- locating fvcore's rows in the architecture (names, and sizes for fusion sums) ---------------------

def _branch_of_size(cfg: HRNetConfig) -> dict[tuple[int, int], int]:
    """Output (H, W) -> branch index (the lowest index where two branches share a size)."""
    return {hw: k for k, hw in reversed(list(enumerate(branch_sizes(cfg))))}




def _higher_stride(out: tuple, sizes: dict) -> int | None:
    """Stride of a HigherHRNet head output: 4 on branch 0's grid, halved per doubling (each transposed conv
    doubles branch 0's size exactly, whatever the input's rounding)."""
    if len(out) != 4:
        return None
    h0 = next(hw for hw, k in sizes.items() if k == 0)[0]
    factor = out[2] // h0 if h0 and out[2] % h0 == 0 else 0
    return 4 // factor if factor in (1, 2, 4) else None


_COMPONENTS = {"stem": "stem", "layer1": "layer1", "transition": "transition", "branch": "branch_blocks",
               "fusion": "fusion"}


def _locate(name: str, call: TraceCall, sizes, cfg: HRNetConfig, graph: ArchGraph):
    """(stage, module, branch, source_branch, component, resolution) of a traced call: backbone parts from the
    architecture graph (``hrnet_core.architecture``), head parts by the head's layout."""
    parts = name.split(".") if name else []
    out = call.output_shape or ()
    by_size = sizes.get(tuple(out[2:4])) if len(out) == 4 else None

    def res(b):
        return None if b is None else f"1/{4 * 2**b}"

    if call.operator in ("linear", "adaptive_avg_pool2d"):
        return "head", None, None, None, "head", "global"
    part = graph.owner(name) if name else None
    if not parts:  # run by the head outside its sub-modules
        branch = None
        if call.operator.startswith("upsample") and call.input_shape and len(call.input_shape) == 4:
            branch = sizes.get(tuple(call.input_shape[2:4]))  # V2 concat: the branch brought up
        elif call.operator == "add":
            branch = by_size  # classification head: the strided merge into branch k
        elif cfg.head.kind == "higher" and _higher_stride(out, sizes) is not None:
            # HigherHRNet's concat of features and prediction, at 1/4 or above (no branch there)
            return "head", None, None, None, "head", f"1/{_higher_stride(out, sizes)}"
        return "head", None, branch, None, "head", res(by_size)
    if part is not None and part.kind == "stem":
        h, w = cfg.input_hw
        stem_half = (-(-h // 2), -(-w // 2))
        return "stem", None, None, None, "stem", "1/2" if tuple(out[2:4]) == stem_half else "1/4"
    if part is not None and part.kind == "layer1":
        return part.stage, None, 0, None, "layer1", "1/4"
    if part is not None and part.kind in ("transition", "branch", "fusion"):
        return part.stage, part.module, part.branch, part.source, _COMPONENTS[part.kind], res(by_size)
    exchange = graph.exchange_module(name)
    if exchange is not None:  # the module's own sums, upsamplings and ReLUs: the fusion
        src = None
        if call.operator.startswith("upsample") and call.input_shape and len(call.input_shape) == 4:
            src = sizes.get(tuple(call.input_shape[2:4]))
        return exchange[0], exchange[1], by_size, src, "fusion", res(by_size)
    top = parts[0]
    if cfg.head.kind == "higher" and top in head_spec("higher").state_dict_names:
        stride = _higher_stride(out, sizes)
        return "head", None, 0 if stride == 4 else None, None, "head", None if stride is None else f"1/{stride}"
    if cfg.head.kind == "ocr" and top in head_spec("ocr").state_dict_names:
        obj = (top == "ocr_gather_head" and call.operator == "matmul") or (
            len(parts) >= 3 and parts[2] in ("f_object", "f_down"))
        return "head", None, None, None, "head", "global" if obj else "1/4"
    branch = None
    if top == "final_layer" and cfg.head.kind == "v1":
        branch = 0
    elif top == "incre_modules":
        branch = int(parts[1])
    elif top == "downsamp_modules":
        branch = int(parts[1]) + 1
    return "head", None, branch, None, "head", res(by_size)


def _located(name, call, sizes, cfg, graph):
    stage, module, branch, source, component, resolution = _locate(name, call, sizes, cfg, graph)
    return stage, module, branch, source, resolution, component


def analyze_fvcore(cfg: HRNetConfig, batch: int = 1) -> ComplexityReport:
    """``analyze(cfg, backend='fvcore')``: the report from fvcore's trace, FlopCounterMode and the official
    conv/linear hooks on the built model (eval mode, float32, CPU)."""
    model = measurable_model(cfg)
    h, w = cfg.input_hw
    x = torch.zeros(batch, 3, h, w)
    trace = fvcore_trace(model, x)
    # The eager counters need shapes only: run them on the meta device (no compute, no memory).
    meta_model = build_on_meta(cfg).eval()
    eager = eager_counts(meta_model, torch.zeros(batch, 3, h, w, device="meta"))
    modules = dict(model.named_modules())
    params_left = own_params(model)
    total_params = sum(params_left.values())
    sizes = _branch_of_size(cfg)
    graph = architecture(cfg, tuple(cfg.input_hw), batch)
    rows = []
    macs_left = dict(eager.official_macs)
    for c in trace.calls:
        params = macs = 0
        if c.operator in _PARAM_OPS:
            params = params_left.pop(c.name, 0)
        if c.operator in _MAC_OPS:
            macs = macs_left.pop(c.name, 0)
        shape = c.output_shape
        acts = math.prod(shape) if (c.writes and shape is not None) else 0
        # FlopCounterMode: 2 per multiply-add; for matrix products and transposed convs that is twice fvcore's
        # count (the official hooks charge a transposed conv per output position, FlopCounterMode per input one)
        torch_flops = 2 * c.flops if c.operator in ("matmul", "bmm", "mm", "conv_transpose") else 2 * macs
        rows.append((c.name, *_located(c.name, c, sizes, cfg, graph), c.operator, params, c.flops, macs, torch_flops, acts,
                     shape, True))
    # Modules PyTorch ran but the trace dropped as dead code (branches the V1 head never reads): their layers
    # from the eager hooks (fvcore would count a conv's multiply-adds and 2 flops per BatchNorm element).
    untraced = 0
    for name in [n for n in modules if n in params_left or n in macs_left]:
        mod, shape = modules[name], eager.output_shapes.get(name)
        op = ("conv" if isinstance(mod, nn.Conv2d) else "conv_transpose" if isinstance(mod, nn.ConvTranspose2d)
              else "batch_norm" if isinstance(mod, nn.BatchNorm2d) else "linear")
        macs = macs_left.pop(name, 0)
        acts = math.prod(shape) if shape else 0
        untraced += macs if op != "batch_norm" else 2 * acts
        call = TraceCall(name, "", op, 0, shape, None, True)
        rows.append((name, *_located(name, call, sizes, cfg, graph), op, params_left.pop(name, 0), 0, macs, 2 * macs, acts,
                     shape, False))
    unsupported = dict(trace.unsupported_ops)
    uncounted = {}
    for c in trace.calls:
        if c.kind in unsupported and c.output_shape is not None:
            uncounted[c.kind] = uncounted.get(c.kind, 0) + math.prod(c.output_shape)
    conv_linear_macs = sum(eager.official_macs.values())
    acts = sum(r[12] for r in rows)
    return ComplexityReport.of(
        cfg, "fvcore", batch, params=total_params, conv_linear_macs=conv_linear_macs, fvcore_flops=trace.total,
        torch_flops=eager.torch_flops, activations=acts, unsupported_ops=unsupported, uncounted_elements=uncounted,
        untraced_flops=untraced, rows=rows,
    )


__all__ = ["EagerCounts", "FvcoreTrace", "TraceCall", "analyze_fvcore", "eager_counts", "fvcore_trace",
           "measurable_model", "own_params", "quiet"]
