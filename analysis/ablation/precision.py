"""Training precision and memory format: bf16 autocast + channels_last or float32, chosen per device.

On CUDA the recipe's ``bf16`` / ``channels_last`` flags hold. On a CPU, bf16 autocast is only a gain
where the CPU has bf16 instructions (AVX-512 BF16 or AMX) *and* the model is large enough for its
kernels to pay off: for HRNet-W32 at 256x192 it is 1.6x faster than float32 on an AVX-512 BF16 core,
for a width-16 HRNet at 128x96 slower. ``choose_precision`` therefore times a few training steps of
both paths on the run's own model and batch shape and keeps the faster one (recipe ``cpu_precision:
auto``), or takes the recipe's ``fp32`` / ``bf16`` as given.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from analysis.ablation.step import cpu_training_state, train_step

CPU_PRECISIONS = ("auto", "fp32", "bf16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Precision:
    """How a run trains: ``amp`` (bf16 autocast), ``channels_last``, and why (``reason``).

    ``measured`` holds the images/s of each path when the choice was measured."""

    amp: bool
    channels_last: bool
    device: str
    reason: str
    measured: dict | None = None

    @property
    def label(self) -> str:
        """``bf16 autocast + channels_last on cpu`` or ``float32 on cpu``: printed beside figures."""
        if self.amp:
            return f"bf16 autocast{' + channels_last' if self.channels_last else ''} on {self.device}"
        return f"float32{' + channels_last' if self.channels_last else ''} on {self.device}"

    def to_dict(self) -> dict:
        return {**asdict(self), "label": self.label}

    @classmethod
    def from_dict(cls, d: dict) -> Precision:
        return cls(bool(d["amp"]), bool(d["channels_last"]), str(d["device"]), str(d.get("reason", "")),
                   d.get("measured"))


def cpu_bf16_flags() -> tuple[str, ...]:
    """The bf16 instruction sets this CPU reports (``/proc/cpuinfo`` flags; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ()
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
            break
    return tuple(f for f in BF16_FLAGS if f in flags)


def steps_per_s(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], amp: bool,
                channels_last: bool, steps: int = 2, warmup: int = 1) -> float:
    """Training steps per second (forward, weighted heatmap MSE, backward, Adam) of a copy of ``model``
    on ``batch`` = ``(x (N, 3, H, W), target (N, J, h, w), weight (N, J, 1))``."""
    x = batch[0]
    # As in training: without flush-to-zero the N(0, 0.001) init makes float32 steps crawl through
    # subnormal numbers, and bf16 would win for the wrong reason.
    with cpu_training_state() if x.device.type == "cpu" else contextlib.nullcontext():
        return _steps_per_s(model, batch, amp, channels_last, steps, warmup)


def _steps_per_s(model: nn.Module, batch, amp: bool, channels_last: bool, steps: int, warmup: int) -> float:
    net = copy.deepcopy(model).train()
    x, target, weight = batch
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    for _ in range(warmup):
        train_step(net, opt, x, target, weight, amp)
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(net, opt, x, target, weight, amp)
    return steps / (time.perf_counter() - t0)


def choose_precision(device: torch.device, recipe, model: nn.Module | None = None,
                     batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> Precision:
    """The precision a run of ``recipe`` trains with on ``device``.

    CUDA: the recipe's ``bf16`` and ``channels_last``. CPU: ``recipe.cpu_precision`` -- ``fp32``,
    ``bf16`` (autocast + channels_last), or ``auto``: float32 where the CPU has no bf16 instructions,
    else whichever of the two is faster on ``model`` and ``batch`` (a few timed steps each, seconds).
    """
    if device.type == "cuda":
        return Precision(bool(recipe.bf16), bool(recipe.channels_last), "cuda", "recipe (CUDA)")
    mode = getattr(recipe, "cpu_precision", "auto")
    if mode == "fp32":
        return Precision(False, False, "cpu", "recipe cpu_precision: fp32")
    if mode == "bf16":
        return Precision(True, True, "cpu", "recipe cpu_precision: bf16")
    flags = cpu_bf16_flags()
    if not flags:
        return Precision(False, False, "cpu", "no bf16 instructions on this CPU")
    if model is None or batch is None:
        return Precision(False, False, "cpu", "not measured")
    fp32 = steps_per_s(model, batch, amp=False, channels_last=False)
    bf16 = steps_per_s(model, batch, amp=True, channels_last=True)
    n = int(batch[0].shape[0])
    measured = {"fp32_images_per_s": round(fp32 * n, 2), "bf16_channels_last_images_per_s": round(bf16 * n, 2),
                "batch": n, "cpu_flags": list(flags)}
    if bf16 > fp32:
        return Precision(True, True, "cpu", f"measured faster ({bf16 / fp32:.2f}x float32)", measured)
    return Precision(False, False, "cpu", f"measured faster (bf16 autocast {bf16 / fp32:.2f}x float32)", measured)
