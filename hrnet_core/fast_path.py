"""Inference fast path: a folded, channels_last copy of a built HRNet for the tool's own forwards.

The official structure (``hrnet_core.model.HRNet``) stays what loads checkpoints and trains; ``fast_model``
returns a *copy* for inference with

- every ``BatchNorm2d`` that reads a convolution's output folded into that convolution (weights scaled,
  a bias added; ``torch.nn.utils.fusion.fuse_conv_bn_eval``), the BatchNorm replaced by ``nn.Identity``:
  one memory-bound pass over every activation fewer (292 of them in pose W32);
- parameters in channels_last (NHWC), which oneDNN's convolutions prefer on CPU and cuDNN's on GPU;
- optionally ``torch.jit.freeze`` of a trace (``freeze=True``): no Python between operators, constants
  folded; whole-model forwards only (no hooks, no parts), about 10 % faster than the eager copy at batch 1
  on a 2-core CPU;
- optionally ``torch.compile`` (inductor with ``freezing``: constant weights, prepacked for oneDNN and
  convolution + ReLU / add fused): fastest once compiled, but the first call compiles for a minute or more.

Tried and left out: ``torch.jit.enable_onednn_fusion`` (oneDNN Graph) ran 2x faster but its outputs were
wrong by 0.1 on outputs of magnitude 0.5 (torch 2.13, AVX-512 CPU); ``torch.jit.optimize_for_inference``
(MKL-DNN layout) ran 4x slower; eager ``torch.ops.mkldnn._convolution_pointwise`` refuses add + ReLU.

Which BatchNorm follows which convolution is read from the data flow of one forward pass on a small
input (hooks: a BatchNorm whose input *is* a convolution's output tensor), not from module names, so every
head is covered with no list to keep. The folded copy is checked against the original on that input
(max |diff| <= ``FOLD_TOLERANCE`` * max(1, max |y|)); a mismatch raises ``FastPathError``.

``fast_inputs`` puts an ``(N, 3, H, W)`` batch in the layout the copy wants; ``fast_inference`` is the
context (``torch.inference_mode`` plus bf16 autocast when asked). Measured in ``bench/latency.py``.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .errors import UserInputError

FOLD_TOLERANCE = 1e-4
_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


class FastPathError(UserInputError):
    """The fast copy cannot be made as asked (folding changed the outputs, or a bad option)."""


def _outputs(y) -> list[torch.Tensor]:
    if isinstance(y, torch.Tensor):
        return [y]
    if isinstance(y, dict):
        return [t for v in y.values() for t in _outputs(v)]
    return [t for v in y for t in _outputs(v)]


def max_abs_diff(a, b) -> float:
    """Largest |a - b| over every output tensor of two forward results (a tensor, list or dict), in float32."""
    xs, ys = _outputs(a), _outputs(b)
    if len(xs) != len(ys):
        raise ValueError(f"the two results have {len(xs)} and {len(ys)} tensors")
    return max(float((x.float() - y.float()).abs().max()) for x, y in zip(xs, ys))


def _owners(model: nn.Module) -> list[nn.Module]:
    """Every module holding children, including a head or backbone kept out of the tree (``HRNet.head_module``,
    ``NetworkModel.backbone``, whose children the model registers under their own names)."""
    seen: dict[int, nn.Module] = {}
    roots = [model] + [getattr(model, a) for a in ("head_module", "backbone")
                       if isinstance(getattr(model, a, None), nn.Module)]
    for root in roots:
        for m in root.modules():
            seen.setdefault(id(m), m)
    return list(seen.values())


def conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[nn.Module, nn.BatchNorm2d]]:
    """(convolution, BatchNorm2d) pairs where the BatchNorm's input is that convolution's output, in forward
    order, from one forward of ``model`` on ``example`` ``(N, 3, H, W)``."""
    produced: dict[int, tuple[torch.Tensor, nn.Module]] = {}  # tensor kept alive so its id is not reused
    pairs: list[tuple[nn.Module, nn.BatchNorm2d]] = []
    handles = []

    def after_conv(mod, _inputs, out):
        produced[id(out)] = (out, mod)

    def before_bn(mod, inputs):
        hit = produced.get(id(inputs[0]))
        if hit is not None and hit[0] is inputs[0]:
            pairs.append((hit[1], mod))

    for m in _owners(model):
        if isinstance(m, _CONVS):
            handles.append(m.register_forward_hook(after_conv))
        elif isinstance(m, nn.BatchNorm2d):
            handles.append(m.register_forward_pre_hook(before_bn))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return pairs


def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, int]:
    """An eval-mode copy of ``model`` with every BatchNorm2d that reads a convolution's output folded into
    it (running statistics, so eval semantics); ``model`` itself is untouched. Returns (copy, pairs folded).
    Raises ``FastPathError`` when the copy's outputs on ``example`` differ from the original's by more than
    ``FOLD_TOLERANCE`` * max(1, max |y|) (a convolution output also read elsewhere would do that)."""
    was_training = model.training
    model.eval()
    try:
        return _fold(model, example)
    finally:
        model.train(was_training)


def _fold(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, int]:
    folded = copy.deepcopy(model).eval()
    # a module run twice per forward (Lite-HRNet calls each fuse_layers[i][0] twice) pairs the same conv and BN twice
    pairs = list({(id(c), id(n)): (c, n) for c, n in conv_bn_pairs(folded, example)}.values())
    swap: dict[int, nn.Module] = {}
    for conv, norm in pairs:
        if id(conv) in swap:  # one convolution feeding two BatchNorms cannot fold into both
            raise FastPathError("fast path: a convolution feeds two BatchNorms; cannot fold")
        swap[id(conv)] = fuse_conv_bn_eval(conv, norm, transpose=isinstance(conv, nn.ConvTranspose2d))
        swap[id(norm)] = nn.Identity()
    for owner in _owners(folded):
        for name, child in list(owner._modules.items()):
            if child is not None and id(child) in swap:
                owner._modules[name] = swap[id(child)]
    with torch.no_grad():
        ref, out = model(example), folded(example)
    scale = max(1.0, max(float(t.abs().max()) for t in _outputs(ref)))
    diff = max_abs_diff(ref, out)
    if not diff <= FOLD_TOLERANCE * scale:
        raise FastPathError(f"fast path: folding BatchNorm changed the outputs by {diff:.3e} (bound "
                            f"{FOLD_TOLERANCE * scale:.1e}); use the official structure")
    return folded, len(pairs)


def example_input(model: nn.Module, input_hw: tuple[int, int] = (64, 64), device=None) -> torch.Tensor:
    """A seeded ``(1, 3, H, W)`` batch on the model's device (64x64 fits every preset: a multiple of 32)."""
    if device is None:
        device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(0)
    return torch.randn(1, 3, *input_hw, generator=gen).to(device)


def fast_model(model: nn.Module, channels_last: bool = True, compile: bool = False, freeze: bool = False,
               input_hw: tuple[int, int] = (64, 64)) -> nn.Module:
    """The inference copy of ``model`` (see the module docstring), on ``model``'s device, eval mode, no grads.

    ``channels_last``: parameters in NHWC (feed it ``fast_inputs``). ``compile``: wrap in ``torch.compile``
    (inductor, ``freezing=True``; call it under ``torch.inference_mode`` or ``no_grad``; it compiles on the
    first call and again for every new input shape). ``freeze``: a frozen TorchScript trace instead (a
    ``torch.jit.ScriptModule``; any batch and size). ``input_hw``: size of the input folding is traced and
    checked on. Raises ``FastPathError`` as ``fold_batchnorm`` does, or for ``compile`` with ``freeze``.
    """
    if compile and freeze:
        raise FastPathError("fast path: compile and freeze exclude each other; choose one")
    example = example_input(model, input_hw)
    folded, _ = fold_batchnorm(model, example)
    for p in folded.parameters():
        p.requires_grad_(False)
    for m in _owners(folded):  # a network's own inference kernels (HRFormer: scaled_dot_product_attention)
        if hasattr(m, "set_fast_attention"):
            m.set_fast_attention(True)
    if channels_last:
        folded = folded.to(memory_format=torch.channels_last)
    if compile:
        return torch.compile(folded, options={"freezing": True})
    if freeze:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings on shape arithmetic: sizes stay traced ops
            return torch.jit.freeze(torch.jit.trace(folded, fast_inputs(example, channels_last), check_trace=False))
    return folded


def fast_inputs(x: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """``x`` ``(N, 3, H, W)`` in the memory format ``fast_model(..., channels_last)`` expects."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively: on CUDA when the GPU supports it; on the CPU when oneDNN has
    bf16 kernels for it (AVX512-BF16 or AMX; otherwise bf16 is emulated and slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@contextlib.contextmanager
def fast_inference(device: torch.device, bf16: bool = False) -> Iterator[None]:
    """``torch.inference_mode`` (no autograd records, no version counters), with bf16 autocast on ``device``
    when ``bf16``."""
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.inference_mode(), amp:
        yield


__all__ = ["FOLD_TOLERANCE", "FastPathError", "bf16_supported", "conv_bn_pairs", "example_input", "fast_inference",
           "fast_inputs", "fast_model", "fold_batchnorm", "max_abs_diff"]
